#!lua name=orderpulse_2
--[[ orderpulse's Redis functions, layout 2 (docs/REDIS.md).

Every function takes KEYS[1] = <prefix>:meta; the other keys it touches are
derived from that prefix, which is one Cluster hash tag ({op}), so they all
live in the same slot. Each call is atomic, so each one either applies all of
its effect or none: every check comes before the first write.

The engine also declares, after KEYS[1], every other key a call touches, so
that a Redis Cluster refuses the call whole (TRYAGAIN) while the slot is
half migrated, instead of failing at the first key that already left. The
one key set a call cannot name beforehand (the category keys of minutes cut
from the view) is touched in the checks too: a key that left makes the call
fail before it writes.

Every log entry has an id, "<writer>:<cseq>"; <prefix>:meta `last` is the id
of the last entry (the log's end), `snap_last` the id of the last entry a
snapshot replaced. A position alone cannot tell whether Redis went back in
time and then forward again (a failover lost entries, other engines
committed since): a position and the id of the entry there can.

  op_init    creates the state (layout, generation id) if there is none
  op_claim   makes a writer the owner of partitions; returns where they are
  op_commit  one commit: fences, log entry, partition progress, the readable view
  op_log     the log from a position on, and where it starts (read only)
  op_compact replaces a prefix of the log by a snapshot
]]

local LAYOUT = '2'

local function pfx(meta)
  return string.sub(meta, 1, -6) -- strip ":meta"
end

local function fail(code, msg)
  return redis.error_reply('ORDERPULSE_' .. code .. ' ' .. msg)
end

-- The state's identity and integrity; nil when all is well, else an error
-- reply. Integrity: the log ends where the meta record says (no entry lost)
-- and every partition record it created is there (none evicted or deleted).
local function check(meta, gen)
  local m = redis.call('HMGET', meta, 'layout', 'id', 'base', 'pos', 'nparts')
  if not m[1] then
    return fail('NOSTATE', 'no orderpulse state at ' .. meta)
  end
  local P = string.sub(meta, 1, -6)
  if m[4] and tonumber(m[3]) + redis.call('LLEN', P .. ':log') ~= tonumber(m[4]) then
    return fail('DAMAGED', P .. ':log ends at ' .. (tonumber(m[3]) + redis.call('LLEN', P .. ':log')) ..
                ' but ' .. meta .. ' says ' .. m[4] .. ': entries were evicted or deleted')
  end
  if m[5] and redis.call('HLEN', P .. ':parts') ~= tonumber(m[5]) then
    return fail('DAMAGED', P .. ':parts holds ' .. redis.call('HLEN', P .. ':parts') ..
                ' partitions but ' .. meta .. ' says ' .. m[5] ..
                ': their offsets were evicted or deleted, and reading them again would count twice')
  end
  if m[1] ~= LAYOUT then
    return fail('LAYOUT', 'layout ' .. m[1] .. ' at ' .. meta .. ', this engine knows ' .. LAYOUT)
  end
  if gen ~= '' and m[2] ~= gen then
    return fail('GENERATION', 'the state at ' .. meta .. ' was replaced (generation ' .. m[2] ..
                ', expected ' .. gen .. ')')
  end
  return nil
end

-- A partition's record: "epoch owner next max_event lost".
local function part_get(parts, field)
  local v = redis.call('HGET', parts, field)
  if not v then
    return {epoch = 0, owner = '-', next = -1, max = '-9223372036854775808', lost = 0}
  end
  local e, o, n, mx, l = string.match(v, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
  return {epoch = tonumber(e), owner = o, next = tonumber(n), max = mx, lost = l}
end

local function part_str(p)
  return string.format('%d %s %d %s %s', p.epoch, p.owner, p.next, p.max, p.lost)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Readers silent this long no longer hold compaction back (a dead engine).
local READER_TTL_MS = 30000

local function log_len(meta, P)
  local base = tonumber(redis.call('HGET', meta, 'base') or '0')
  return base, redis.call('LLEN', P .. ':log')
end

-- "D <writer> <cseq> ..." -> "<writer>:<cseq>"
local function entry_id(e)
  local w, c = string.match(e, '^%S+ (%S+) (%S+)')
  return w .. ':' .. c
end

-- The id of the entry ending at position `at` ('' at 0), or nil when a
-- snapshot replaced it and did not record it (a log compacted by an older
-- engine).
local function id_at(meta, P, base, len, at)
  if at == 0 then return '' end
  if at == base + len then
    local l = redis.call('HGET', meta, 'last')
    if l then return l end
  end
  local idx = at - 1 - base
  if idx < 0 then return nil end
  local e = redis.call('LINDEX', P .. ':log', idx)
  if not e then return nil end
  if string.sub(e, 1, 1) == 'S' then return redis.call('HGET', meta, 'snap_last') or nil end
  return entry_id(e)
end

-- op_init(meta; id, now): the generation id of the state, creating it.
local function op_init(keys, args)
  local meta = keys[1]
  local m = redis.call('HMGET', meta, 'layout', 'id')
  if m[1] then
    local err = check(meta, '')
    if err then return err end
    return m[2]
  end
  redis.call('HSET', meta, 'layout', LAYOUT, 'id', args[1], 'created', args[2], 'base', '0',
             'pos', '0', 'last', '', 'nparts', '0', 'snap_bytes', '0', 'delta_bytes', '0')
  return args[1]
end

-- op_claim(meta; gen, writer, field...): for each partition field, makes
-- writer its owner (a new epoch when the owner changes, so that the previous
-- owner's commits are refused from now on) and returns
-- {epoch, next, max_event, lost} per field.
local function op_claim(keys, args)
  local meta = keys[1]
  local err = check(meta, args[1])
  if err then return err end
  local parts = pfx(meta) .. ':parts'
  local writer = args[2]
  local out = {}
  for i = 3, #args do
    local p = part_get(parts, args[i])
    if p.owner ~= writer then
      if p.epoch == 0 then redis.call('HINCRBY', meta, 'nparts', 1) end
      p.epoch = p.epoch + 1
      p.owner = writer
      redis.call('HSET', parts, args[i], part_str(p))
    end
    table.insert(out, {p.epoch, p.next, p.max, p.lost})
  end
  return out
end

-- The view operations of a commit: a list of
--   'H' key n f1 v1 ... fn vn     HSET
--   'Z' key n s1 m1 ... sn mn     ZADD
--   'R' key n s1 m1 ...           replace a sorted set: DEL, then ZADD
--   'D' key n f1 ... fn           HDEL
--   'X' key                       DEL
--   'E' key ms                    PEXPIRE
--   'C' key ms                    HDEL the fields whose leading number is below ms;
--                                 for <prefix>:minutes also DEL that minute's category keys
-- Walks them once to check the key types (so that nothing is written when
-- one is wrong), then again to apply them.
local WANT = {H = 'hash', D = 'hash', Z = 'zset', R = 'zset', C = 'hash'}

local function cut(key, below)
  local minutes = string.sub(key, -8) == ':minutes'
  local P = string.sub(key, 1, -9)
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local ms = tonumber(string.match(f, '^(%d+)'))
    if ms and ms < below then
      redis.call('HDEL', key, f)
      if minutes then
        local c = P .. ':catmin:' .. f
        redis.call('DEL', c, c .. ':a', c .. ':o')
      end
    end
  end
end

local function view_walk(args, i, apply)
  while i <= #args do
    local op, key = args[i], args[i + 1]
    if op == 'X' then
      if apply then redis.call('DEL', key) end
      i = i + 2
    elseif op == 'E' then
      if apply then redis.call('PEXPIRE', key, args[i + 2]) end
      i = i + 3
    elseif op == 'C' and apply then
      cut(key, tonumber(args[i + 2]))
      i = i + 3
    elseif op == 'C' then
      local t = redis.call('TYPE', key)['ok']
      if t ~= 'none' and t ~= 'hash' then
        return fail('WRONGTYPE', key .. ' holds a ' .. t .. ', orderpulse writes a hash there')
      end
      if t == 'hash' and string.sub(key, -8) == ':minutes' then
        -- the category keys cut() deletes: touched now (see the top)
        local below, P = tonumber(args[i + 2]), string.sub(key, 1, -9)
        for _, f in ipairs(redis.call('HKEYS', key)) do
          local ms = tonumber(string.match(f, '^(%d+)'))
          if ms and ms < below then
            local c = P .. ':catmin:' .. f
            redis.call('EXISTS', c, c .. ':a', c .. ':o')
          end
        end
      end
      i = i + 3
    else
      local n = tonumber(args[i + 2])
      local width = (op == 'D') and 1 or 2
      if not WANT[op] or not n then
        return fail('PROTOCOL', 'bad view operation ' .. tostring(op))
      end
      if not apply then
        local t = redis.call('TYPE', key)['ok']
        if t ~= 'none' and t ~= WANT[op] then
          return fail('WRONGTYPE', key .. ' holds a ' .. t .. ', orderpulse writes a ' .. WANT[op] ..
                      ' there (left by another program?)')
        end
      else
        if op == 'R' then redis.call('DEL', key) end
        local first = i + 3
        local last = first + n * width - 1
        local cmd = (op == 'H' and 'HSET') or (op == 'D' and 'HDEL') or 'ZADD'
        local step = 1000 * width
        for s = first, last, step do
          local e = math.min(s + step - 1, last)
          redis.call(cmd, key, unpack(args, s, e))
        end
      end
      i = i + 3 + n * width
    end
  end
  return nil
end

-- op_commit(meta, every other key it touches; gen, writer, cseq, expect_pos,
--           expect_last, nparts,
--           {field, epoch, expect_next, next, max_event, lost} x nparts,
--           nblobs, blob keys..., bytes, view operations...)
-- Returns {'OK', pos, last}, {'BEHIND', pos} (the log grew since expect_pos:
-- read it first), {'BACK', pos} (the log is shorter than expect_pos, or the
-- entry there is not expect_last: Redis lost commits) or {'FENCED', field,
-- owner, epoch, next} (a partition has another owner, or moved on without
-- this writer).
local function op_commit(keys, args)
  local meta = keys[1]
  local P = pfx(meta)
  local err = check(meta, args[1])
  if err then return err end
  local writer, cseq, expect_pos, expect_last = args[2], args[3], tonumber(args[4]), args[5]
  local base, len = log_len(meta, P)
  local pos = base + len
  if pos > expect_pos then return {'BEHIND', pos} end
  if pos < expect_pos then return {'BACK', pos} end
  local last = id_at(meta, P, base, len, pos)
  if last and last ~= expect_last then return {'BACK', pos} end

  local parts = P .. ':parts'
  local nparts = tonumber(args[6])
  local i = 7
  local updates = {}
  for _ = 1, nparts do
    local field, epoch, expect_next = args[i], tonumber(args[i + 1]), tonumber(args[i + 2])
    local p = part_get(parts, field)
    if p.owner ~= writer or p.epoch ~= epoch or p.next ~= expect_next then
      return {'FENCED', field, p.owner, p.epoch, p.next}
    end
    p.next, p.max, p.lost = tonumber(args[i + 3]), args[i + 4], args[i + 5]
    table.insert(updates, field)
    table.insert(updates, part_str(p))
    i = i + 6
  end
  local nblobs = tonumber(args[i])
  local blobs = {}
  for b = 1, nblobs do
    blobs[b] = args[i + b]
    if redis.call('EXISTS', blobs[b]) == 0 then
      return fail('BLOB', blobs[b] .. ' is gone before its commit (evicted? maxmemory-policy ' ..
                  'must be noeviction)')
    end
  end
  i = i + nblobs + 1
  local bytes = args[i]
  i = i + 1
  err = view_walk(args, i, false)
  if err then return err end

  if #updates > 0 then redis.call('HSET', parts, unpack(updates)) end
  if nblobs > 0 then
    for b = 1, nblobs do redis.call('PERSIST', blobs[b]) end
    redis.call('RPUSH', P .. ':log', 'D ' .. writer .. ' ' .. cseq .. ' ' .. bytes .. ' ' ..
               table.concat(blobs, ' '))
    redis.call('HINCRBY', meta, 'delta_bytes', bytes)
    pos = pos + 1
    last = writer .. ':' .. cseq
    redis.call('HSET', meta, 'pos', pos, 'last', last)
  end
  view_walk(args, i, true)
  redis.call('HSET', P .. ':view', 'pos', pos)
  redis.call('HSET', P .. ':readers', writer, pos .. ' ' .. now_ms())
  return {'OK', pos, last or ''}
end

-- op_log(meta, log, parts; gen, from[, from_last]): {'LOG', base, end,
-- last, entries from position `from` on}; `from` = 'load' reads the whole
-- log (snapshot included). A reader that has folded everything before `from`
-- gets {'RELOAD', base} when that point now lies inside a snapshot (it must
-- load again), {'BACK', end} when the log no longer reaches `from`, or the
-- entry there is not from_last (Redis lost entries).
local function op_log(keys, args)
  local meta = keys[1]
  local P = pfx(meta)
  local err = check(meta, args[1])
  if err then return err end
  local base, len = log_len(meta, P)
  local from = base
  if args[2] ~= 'load' then
    from = tonumber(args[2])
    local folded = base -- a snapshot at `base` stands for every position before base + 1
    if len > 0 and string.sub(redis.call('LINDEX', P .. ':log', 0), 1, 1) == 'S' then
      folded = base + 1
    end
    if from < folded then return {'RELOAD', base} end
    if from > base + len then return {'BACK', base + len} end
    if args[3] then
      local there = id_at(meta, P, base, len, from)
      if there and there ~= args[3] then return {'BACK', base + len} end
    end
  end
  local out = {'LOG', base, base + len, id_at(meta, P, base, len, base + len) or ''}
  for _, e in ipairs(redis.call('LRANGE', P .. ':log', from - base, -1)) do
    table.insert(out, e)
  end
  return out
end

-- op_compact(meta, every other key it touches; gen, writer, cseq, upto,
-- nblobs, blob keys..., bytes): the snapshot in the blobs holds everything up
-- to position `upto`, where the writer's own commit cseq ends; it replaces
-- those log entries, whose blobs go to <prefix>:garbage for deletion.
local function op_compact(keys, args)
  local meta = keys[1]
  local P = pfx(meta)
  local err = check(meta, args[1])
  if err then return err end
  local writer, cseq, upto, nblobs = args[2], args[3], tonumber(args[4]), tonumber(args[5])
  local base, len = log_len(meta, P)
  local n = upto - base
  if n < 1 or n > len then return {'STALE', base + len} end
  local upto_id = id_at(meta, P, base, len, upto)
  if upto_id ~= writer .. ':' .. cseq then return {'STALE', base + len} end
  -- An engine still reading before `upto` would have to reload everything:
  -- wait until the live ones are past it (the dead are forgotten).
  local readers = P .. ':readers'
  local r = redis.call('HGETALL', readers)
  local now = now_ms()
  for k = 1, #r, 2 do
    local rpos, rms = string.match(r[k + 1], '^(%S+) (%S+)$')
    if now - tonumber(rms) > READER_TTL_MS then
      redis.call('HDEL', readers, r[k])
    elseif r[k] ~= writer and tonumber(rpos) < upto then
      return {'STALE', base + len}
    end
  end
  local log = P .. ':log'
  for b = 1, nblobs do
    if redis.call('EXISTS', args[5 + b]) == 0 then
      return fail('BLOB', args[5 + b] .. ' is gone before its compaction')
    end
  end
  local old = redis.call('LRANGE', log, 0, n - 1)
  for _, e in ipairs(old) do
    local words = {}
    for w in string.gmatch(e, '%S+') do table.insert(words, w) end
    for k = 5, #words do redis.call('RPUSH', P .. ':garbage', words[k]) end
  end
  redis.call('LTRIM', log, n, -1)
  local blobs = {}
  for b = 1, nblobs do
    blobs[b] = args[5 + b]
    redis.call('PERSIST', blobs[b])
  end
  local bytes = args[6 + nblobs]
  redis.call('LPUSH', log, 'S ' .. writer .. ' 0 ' .. bytes .. ' ' .. table.concat(blobs, ' '))
  local rest = 0
  for _, e in ipairs(redis.call('LRANGE', log, 1, -1)) do
    rest = rest + tonumber(string.match(e, '^%S+ %S+ %S+ (%S+)'))
  end
  redis.call('HSET', meta, 'base', upto - 1, 'snap_bytes', bytes, 'delta_bytes', rest,
             'snap_last', upto_id)
  return {'OK', upto}
end

-- op_reader(meta; gen, writer, pos): this writer has read the log up to pos.
local function op_reader(keys, args)
  local meta = keys[1]
  local err = check(meta, args[1])
  if err then return err end
  redis.call('HSET', pfx(meta) .. ':readers', args[2], args[3] .. ' ' .. now_ms())
  return 1
end

redis.register_function('op_init', op_init)
redis.register_function('op_reader', op_reader)
redis.register_function('op_claim', op_claim)
redis.register_function('op_commit', op_commit)
redis.register_function{function_name = 'op_log', callback = op_log, flags = {'no-writes'}}
redis.register_function('op_compact', op_compact)
