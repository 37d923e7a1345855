/* test_redis.c — layout 2 against a real redis-server: the blob format round
 * trip, and each verdict of the protocol's functions (claims and epochs,
 * fences, BEHIND/BACK, a lost reply, a wrong key type that applies nothing, a
 * damaged or foreign state refused, compaction). */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/hash.h"
#include "engine/intern.h"
#include "engine/io/delta.h"
#include "engine/io/redis.h"
#include "engine/io/redis_sink.h"
#include "engine/shard.h"
#include "engine/state.h"
#include "tests/unit/redisserver.h"

static redisserver_t server;
static op_intern_t *dict;
static op_intern_cache_t cache;
static char err[512];

static void setup(void)
{
    rcu_register_thread();
    cr_assert_eq(redisserver_start(&server), 0, "redis-server did not start");
    cr_assert_eq(op_intern_create(&dict), 0);
    op_intern_cache_init(&cache, dict);
}

static void teardown(void)
{
    op_intern_cache_dispose(&cache);
    op_intern_destroy(dict);
    redisserver_stop(&server);
    rcu_unregister_thread();
}

static op_redis_t *open_or_fail(void)
{
    op_redis_conf_t conf = {.host = "127.0.0.1", .port = server.port, .timeout_ms = 2000};
    op_redis_t *r = NULL;
    cr_assert_eq(op_redis_create(&r, &conf), 0);
    cr_assert_eq(op_redis_open(r, err, sizeof(err)), 0, "%s", err);
    return r;
}

static redisReply *cmd(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", server.port, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

static long long integer(const char *fmt, const char *key)
{
    redisReply *rep = cmd(fmt, key);
    long long v = rep->type == REDIS_REPLY_INTEGER  ? rep->integer
                  : rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                                                    : -1;
    freeReplyObject(rep);
    return v;
}

/* One order into a shard, as a worker would add it. */
static void add(op_shard_t *s, const char *user, const char *gender, const char *cat,
                const char *brand, int64_t num, int64_t cents, int64_t ms, int32_t part,
                int64_t offset)
{
    int32_t g = op_intern_cache_id(&cache, OP_DIM_GENDER, gender, strlen(gender));
    int32_t c = op_intern_cache_id(&cache, OP_DIM_CATEGORY, cat, strlen(cat));
    int32_t b = op_intern_cache_id(&cache, OP_DIM_BRAND, brand, strlen(brand));
    op_tally_t *ts[] = {
        &s->totals,
        op_ktable_upsert(&s->brands, (uint32_t)b),
        op_ktable_upsert(&s->genders, (uint32_t)g),
        op_ktable_upsert(&s->minutes, (uint64_t)(ms / OP_MINUTE_MS)),
        op_ktable_upsert(&s->catmin, op_ktable_pair((uint64_t)(ms / OP_MINUTE_MS), (uint32_t)c)),
        op_ktable_upsert(&s->gslots, op_ktable_pair((uint64_t)(ms / OP_SLOT_MS), (uint32_t)g))};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        ts[i]->orders++;
        ts[i]->quantity += num;
        ts[i]->amount += cents;
    }
    uint32_t e = op_users_upsert(&s->users, user, strlen(user), op_hash_bytes(user, strlen(user)));
    s->users.ent[e].amount += cents;
    s->users.ent[e].orders++;
    s->touched[part >> 6] |= 1ULL << (part & 63);
    s->parts[part].next_offset = offset + 1;
    if (ms > s->parts[part].max_event_ms)
        s->parts[part].max_event_ms = ms;
    s->parts[part].records++;
}

static op_shard_t *sample(void)
{
    op_shard_t *s = op_shard_create(0);
    const int64_t t0 = 1731283200000LL;
    add(s, "张伟", "男", "手机数码", "Apple", 1, 599900, t0, 0, 10);
    add(s, "李娜", "女", "美妆个护", "SK-II", 2, 159800, t0 + 61000, 1, 4);
    add(s, "张伟", "男", "手机数码", "Huawei", 1, 399900, t0 + 700000, 0, 11);
    s->bad[1] = 3;
    s->late = 1;
    s->parts[1].lost = 5;
    return s;
}

static void same_shard(const op_shard_t *a, const op_shard_t *b)
{
    cr_assert_eq(a->totals.orders, b->totals.orders);
    cr_assert_eq(a->totals.quantity, b->totals.quantity);
    cr_assert_eq(a->totals.amount, b->totals.amount);
    cr_assert_eq(a->late, b->late);
    for (int r = 0; r < OP_BAD_REASON_COUNT; r++)
        cr_assert_eq(a->bad[r], b->bad[r]);
    for (int i = 0; i < op_ntables; i++) {
        const op_ktable_t *x = op_table_in_shard(&op_tables[i], (op_shard_t *)a);
        const op_ktable_t *y = op_table_in_shard(&op_tables[i], (op_shard_t *)b);
        cr_assert_eq(x->count, y->count, "table %s", op_tables[i].name);
        for (uint32_t k = 0; k < x->cap; k++) {
            if (!op_ktable_used(x, k))
                continue;
            const op_tally_t *t = op_ktable_find(y, op_ktable_key(x, k));
            cr_assert_not_null(t, "table %s", op_tables[i].name);
            cr_assert_eq(t->amount, x->vals[k].amount);
            cr_assert_eq(t->orders, x->vals[k].orders);
            cr_assert_eq(t->quantity, x->vals[k].quantity);
        }
    }
    cr_assert_eq(a->users.count, b->users.count);
    for (uint32_t e = 0; e < a->users.count; e++) {
        size_t len;
        const char *name = op_users_name(&a->users, e, &len);
        uint32_t f = op_users_find(&b->users, name, len, op_hash_bytes(name, len));
        cr_assert_neq(f, UINT32_MAX);
        cr_assert_eq(b->users.ent[f].amount, a->users.ent[e].amount);
        cr_assert_eq(b->users.ent[f].orders, a->users.ent[e].orders);
    }
    for (int32_t p = 0; p < 2; p++) {
        cr_assert_eq(b->parts[p].next_offset, a->parts[p].next_offset);
        cr_assert_eq(b->parts[p].max_event_ms, a->parts[p].max_event_ms);
        cr_assert_eq(b->parts[p].lost, a->parts[p].lost);
        cr_assert_eq(b->parts[p].records, a->parts[p].records);
    }
}

static op_shard_t *decode_all(const op_delta_buf_t *b)
{
    op_shard_t *s = op_shard_create(-1);
    for (uint32_t i = 0; i < b->n; i++)
        cr_assert_eq(
            op_delta_decode(b->chunks[i].buf, b->chunks[i].len, s, &cache, err, sizeof(err)), 0,
            "%s", err);
    return s;
}

/* n users named prefix-i, one order each, over four partitions (offsets
 * from first_offset). */
static op_shard_t *many_users(int n, const char *prefix, int64_t first_offset)
{
    op_shard_t *s = op_shard_create(0);
    char name[48];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s-%d", prefix, i);
        add(s, name, i % 2 ? "男" : "女", "图书", i % 3 ? "A" : "B", 1, 100 + i,
            1731283200000LL + i, i % 4, first_offset + i);
    }
    return s;
}

TestSuite(delta, .init = setup, .fini = teardown);

Test(delta, a_shard_comes_back_whole)
{
    op_shard_t *s = sample();
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'D');
    op_delta_encode_shard(&b, s, dict);
    cr_assert_eq(b.user_records, 2);
    op_shard_t *back = decode_all(&b);
    same_shard(s, back);
    op_shard_destroy(back);
    op_delta_buf_dispose(&b);
    op_shard_destroy(s);
}

Test(delta, chunks_are_self_contained_and_appends_keep_names_apart)
{
    /* 100 000 users make many chunks; a second buffer appended after them
     * must not reuse the first one's name indices. */
    op_shard_t *big = many_users(100000, "user", 0);
    op_delta_buf_t a, b;
    op_delta_buf_init(&a, 'D');
    op_delta_buf_init(&b, 'D');
    op_delta_encode_shard(&a, big, dict);
    cr_assert_gt(a.n, 1, "expected several chunks, got %u", a.n);
    for (uint32_t i = 0; i < a.n; i++)
        cr_assert_leq(a.chunks[i].len, OP_DELTA_CHUNK + 512);
    op_shard_t *small = sample();
    op_delta_encode_shard(&b, small, dict);
    op_delta_buf_append(&a, &b);
    op_delta_encode_shard(&a, small, dict); /* after the append: a chunk of its own */
    op_shard_t *back = op_shard_create(-1);
    for (uint32_t i = 0; i < a.n; i++) /* each chunk alone, in any order */
        cr_assert_eq(op_delta_decode(a.chunks[a.n - 1 - i].buf, a.chunks[a.n - 1 - i].len, back,
                                     &cache, err, sizeof(err)),
                     0, "%s", err);
    op_shard_add(big, small);
    op_shard_add(big, small);
    cr_assert_eq(back->totals.amount, big->totals.amount);
    cr_assert_eq(back->users.count, big->users.count);
    cr_assert_eq(back->brands.count, big->brands.count);
    op_shard_destroy(back);
    op_shard_destroy(small);
    op_shard_destroy(big);
    op_delta_buf_dispose(&a);
    op_delta_buf_dispose(&b);
}

typedef struct handed {
    op_delta_chunk_t c[64];
    int n;
} handed_t;

static void take_chunk(void *arg, op_delta_chunk_t c)
{
    handed_t *h = arg;
    cr_assert_lt(h->n, 64);
    h->c[h->n++] = c;
}

/* The Redis sink stages a big tick's full chunks while the rest is still
 * being encoded: what is handed over plus what stays, put back together
 * (op_delta_buf_insert), is the whole shard, and the counts go on counting
 * the chunks handed over. */
Test(delta, full_chunks_are_handed_over_and_put_back)
{
    op_shard_t *big = many_users(150000, "user", 0);
    handed_t h = {0};
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'D');
    b.on_full = take_chunk;
    b.on_full_arg = &h;
    op_delta_encode_shard(&b, big, dict);
    cr_assert_geq(h.n, 2, "expected full chunks handed over, got %d", h.n);
    cr_assert_eq(b.user_records, 150000);
    size_t bytes = 0;
    for (int i = 0; i < h.n; i++) {
        cr_assert_geq(h.c[i].len, OP_DELTA_CHUNK, "chunk %d handed over before it was full", i);
        bytes += h.c[i].len;
    }
    for (uint32_t i = 0; i < b.n; i++)
        bytes += b.chunks[i].len;
    cr_assert_eq(b.bytes, bytes);
    for (int i = 0; i < h.n; i++) /* in the middle, as the sink puts them */
        op_delta_buf_insert(&b, i % 2 ? 0 : b.n, h.c[i]);
    op_shard_t *back = decode_all(&b);
    same_shard(big, back);
    op_shard_destroy(back);
    op_delta_buf_dispose(&b);
    op_shard_destroy(big);
}

Test(delta, a_state_snapshot_folds_back_into_the_same_state)
{
    op_shard_t *s = sample();
    op_state_t st, again;
    op_state_init(&st, dict);
    op_state_init(&again, dict);
    op_state_merge(&st, s, 0);
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'S');
    op_delta_encode_state(&b, &st);
    op_shard_t *back = decode_all(&b);
    op_state_merge(&again, back, 0);
    cr_assert_eq(again.totals.amount, st.totals.amount);
    cr_assert_eq(again.users.count, st.users.count);
    cr_assert_eq(again.late, st.late);
    cr_assert_eq(again.bad_total, st.bad_total);
    cr_assert_eq(again.parts[1].lost, 5);
    cr_assert_eq(again.parts[0].next_offset, 12);
    for (int i = 0; i < op_ntables; i++)
        cr_assert_eq(op_table_in_state(&op_tables[i], &again)->count,
                     op_table_in_state(&op_tables[i], &st)->count);
    op_shard_destroy(back);
    op_shard_destroy(s);
    op_delta_buf_dispose(&b);
    op_state_dispose(&st);
    op_state_dispose(&again);
}

Test(delta, damage_is_an_error_not_a_crash)
{
    op_shard_t *s = sample();
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'D');
    op_delta_encode_shard(&b, s, dict);
    op_shard_t *into = op_shard_create(-1);
    for (size_t cut = 0; cut < b.chunks[0].len; cut += 7)
        op_delta_decode(b.chunks[0].buf, cut, into, &cache, err, sizeof(err)); /* no crash */
    cr_assert_lt(op_delta_decode("OPD1D", 5, into, &cache, err, sizeof(err)), 0);
    cr_assert(strstr(err, "another version") != NULL, "%s", err);
    op_shard_destroy(into);
    op_shard_destroy(s);
    op_delta_buf_dispose(&b);
}

/* --- the protocol --------------------------------------------------------------- */

TestSuite(redis, .init = setup, .fini = teardown);

static const char *F0 = "kafka:orders:0";

/* The id of the log's last entry, as a writer that read all of it holds it. */
static void last_id(char *out, size_t len)
{
    redisReply *rep = cmd("HGET %s last", "{op}:meta");
    snprintf(out, len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

static int commit1(op_redis_t *r, const char *writer, uint64_t cseq, int64_t pos, int64_t epoch,
                   int64_t expect_next, int64_t next, const char *blob, op_redis_argv_t *view,
                   op_redis_commit_result_t *res)
{
    op_redis_commit_part_t part = {F0, epoch, expect_next, next, 1731283200000LL, 0};
    const char *blobs[] = {blob};
    char last[OP_REDIS_IDLEN];
    last_id(last, sizeof(last));
    return op_redis_commit(r, writer, cseq, pos, last, 1, &part, blob ? 1 : 0, blobs, 10, view, res,
                           err, sizeof(err));
}

static void stage1(op_redis_t *r, const char *key)
{
    const char *keys[] = {key}, *bufs[] = {"OPD2D"};
    size_t lens[] = {5};
    cr_assert_eq(op_redis_stage(r, 1, keys, bufs, lens, err, sizeof(err)), 0, "%s", err);
}

Test(redis, claims_fence_the_previous_owner)
{
    op_redis_t *a = open_or_fail(), *b = open_or_fail();
    cr_assert_str_eq(op_redis_generation(a), op_redis_generation(b));
    const char *fields[] = {F0};
    op_redis_part_t pa, pb;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &pa, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(pa.epoch, 1);
    cr_assert_eq(pa.next_offset, -1);
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &pa, err, sizeof(err)), 0);
    cr_assert_eq(pa.epoch, 1, "the same owner claiming again keeps its epoch");
    stage1(a, "{op}:b:wa:1");
    op_redis_commit_result_t res;
    cr_assert_eq(commit1(a, "wa", 1, 0, 1, -1, 100, "{op}:b:wa:1", NULL, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    cr_assert_eq(res.pos, 1);
    cr_assert_eq(op_redis_claim(b, "wb", 1, fields, &pb, err, sizeof(err)), 0);
    cr_assert_eq(pb.epoch, 2);
    cr_assert_eq(pb.next_offset, 100);
    cr_assert_eq(pb.max_event_ms, 1731283200000LL);
    /* a, now a zombie: refused, and nothing of its commit is applied */
    stage1(a, "{op}:b:wa:2");
    cr_assert_eq(commit1(a, "wa", 2, 1, 1, 100, 200, "{op}:b:wa:2", NULL, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_FENCED);
    cr_assert_str_eq(res.fence_owner, "wb");
    cr_assert_eq(res.fence_epoch, 2);
    cr_assert_eq(integer("LLEN %s", "{op}:log"), 1);
    op_redis_destroy(a);
    op_redis_destroy(b);
}

Test(redis, behind_back_and_a_lost_reply)
{
    op_redis_t *a = open_or_fail();
    const char *fields[] = {F0};
    op_redis_part_t p;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), 0);
    stage1(a, "{op}:b:wa:1");
    op_redis_commit_result_t res;
    cr_assert_eq(commit1(a, "wa", 1, 0, 1, -1, 10, "{op}:b:wa:1", NULL, &res), 0);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    /* The same commit again, as after a lost reply: refused as BEHIND, and
     * the log shows it is this writer's own cseq 1. */
    cr_assert_eq(commit1(a, "wa", 1, 0, 1, -1, 10, "{op}:b:wa:1", NULL, &res), 0);
    cr_assert_eq(res.verdict, OP_REDIS_BEHIND);
    cr_assert_eq(res.pos, 1);
    op_redis_log_t log;
    cr_assert_eq(op_redis_read_log(a, 0, NULL, &log, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(log.n, 1);
    cr_assert_str_eq(log.entries[0].writer, "wa");
    cr_assert_eq(log.entries[0].cseq, 1);
    op_redis_log_dispose(&log);
    /* Ahead of the log: Redis lost something this writer saw. */
    cr_assert_eq(commit1(a, "wa", 2, 5, 1, 10, 20, NULL, NULL, &res), 0);
    cr_assert_eq(res.verdict, OP_REDIS_BACK);
    cr_assert_eq(op_redis_read_log(a, 7, NULL, &log, err, sizeof(err)), 0);
    cr_assert_eq(log.verdict, OP_REDIS_BACK);
    op_redis_log_dispose(&log);
    op_redis_destroy(a);
}

Test(redis, a_wrong_key_type_applies_nothing)
{
    op_redis_t *a = open_or_fail();
    const char *fields[] = {F0};
    op_redis_part_t p;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), 0);
    freeReplyObject(cmd("SET %s %s", "{op}:totals", "not a hash"));
    stage1(a, "{op}:b:wa:1");
    op_redis_argv_t view;
    op_redis_argv_init(&view);
    const char *ops[] = {"H", "{op}:minutes", "1", "60000",  "1 1 1",
                         "H", "{op}:totals",  "1", "orders", "1"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        op_redis_argv_str(&view, ops[i]);
    op_redis_commit_result_t res;
    int rc = commit1(a, "wa", 1, 0, 1, -1, 10, "{op}:b:wa:1", &view, &res);
    cr_assert_eq(rc, OP_REDIS_EREPLY);
    cr_assert(strstr(err, "WRONGTYPE") && strstr(err, "{op}:totals"), "%s", err);
    cr_assert_eq(integer("LLEN %s", "{op}:log"), 0, "the log entry was written");
    cr_assert_eq(integer("EXISTS %s", "{op}:minutes"), 0, "a view key was written");
    redisReply *rep = cmd("HGET %s %s", "{op}:parts", F0);
    cr_assert(rep->type == REDIS_REPLY_STRING && strstr(rep->str, " -1 "), "offset moved: %s",
              rep->str);
    freeReplyObject(rep);
    freeReplyObject(cmd("DEL %s", "{op}:totals"));
    cr_assert_eq(commit1(a, "wa", 1, 0, 1, -1, 10, "{op}:b:wa:1", &view, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    cr_assert_eq(integer("HGET %s orders", "{op}:totals"), 1);
    op_redis_argv_dispose(&view);
    op_redis_destroy(a);
}

Test(redis, a_damaged_or_foreign_state_is_refused)
{
    op_redis_t *a = open_or_fail();
    const char *fields[] = {F0};
    op_redis_part_t p;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), 0);
    freeReplyObject(cmd("DEL %s", "{op}:parts")); /* evicted, say */
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), OP_REDIS_ESTATE);
    cr_assert(strstr(err, "evicted or deleted"), "%s", err);
    op_redis_t *b = NULL;
    op_redis_conf_t conf = {.host = "127.0.0.1", .port = server.port, .timeout_ms = 2000};
    cr_assert_eq(op_redis_create(&b, &conf), 0);
    cr_assert_eq(op_redis_open(b, err, sizeof(err)), OP_REDIS_ESTATE, "opened a damaged state");
    op_redis_destroy(b);
    /* Layout 1's keys under another prefix: recognised, with the way out. */
    freeReplyObject(cmd("SET %s %s", "{v1}:schema", "1"));
    conf.prefix = "{v1}";
    cr_assert_eq(op_redis_create(&b, &conf), 0);
    cr_assert_eq(op_redis_open(b, err, sizeof(err)), OP_REDIS_ESTATE);
    cr_assert(strstr(err, "layout 1") && strstr(err, "--redis-migrate"), "%s", err);
    op_redis_destroy(b);
    /* The state replaced under a running engine: its calls are refused. */
    freeReplyObject(cmd("HSET %s id %s", "{op}:meta", "someone-else"));
    freeReplyObject(cmd("HSET %s nparts 0", "{op}:meta"));
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), OP_REDIS_ESTATE);
    cr_assert(strstr(err, "replaced"), "%s", err);
    op_redis_destroy(a);
}

Test(redis, compaction_replaces_the_prefix)
{
    op_redis_t *a = open_or_fail();
    const char *fields[] = {F0};
    op_redis_part_t p;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), 0);
    op_redis_commit_result_t res;
    char key[64];
    for (int i = 1; i <= 3; i++) {
        snprintf(key, sizeof(key), "{op}:b:wa:%d", i);
        stage1(a, key);
        cr_assert_eq(commit1(a, "wa", (uint64_t)i, i - 1, 1, i == 1 ? -1 : (i - 1) * 10, i * 10,
                             key, NULL, &res),
                     0, "%s", err);
        cr_assert_eq(res.verdict, OP_REDIS_OK);
    }
    stage1(a, "{op}:b:wa:snap");
    const char *snap[] = {"{op}:b:wa:snap"};
    cr_assert_eq(op_redis_compact(a, "wa", 1, 2, 1, snap, 5, err, sizeof(err)), 0,
                 "compacted up to an entry of another cseq");
    cr_assert_eq(op_redis_compact(a, "wa", 2, 2, 1, snap, 5, err, sizeof(err)), 1, "%s", err);
    op_redis_log_t log;
    cr_assert_eq(op_redis_read_log(a, -1, NULL, &log, err, sizeof(err)), 0);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.entries[0].kind, 'S');
    cr_assert_eq(log.base, 1);
    cr_assert_eq(log.end, 3);
    op_redis_log_dispose(&log);
    cr_assert_eq(op_redis_read_log(a, 1, NULL, &log, err, sizeof(err)), 0);
    cr_assert_eq(log.verdict, OP_REDIS_RELOAD, "position 1 now lies inside the snapshot");
    op_redis_log_dispose(&log);
    cr_assert_eq(op_redis_read_log(a, 2, NULL, &log, err, sizeof(err)), 0);
    cr_assert_eq(log.n, 1);
    op_redis_log_dispose(&log);
    cr_assert_eq(op_redis_collect_garbage(a, 100, err, sizeof(err)), 2);
    cr_assert_eq(integer("EXISTS %s", "{op}:b:wa:1"), 0);
    cr_assert_eq(integer("EXISTS %s", "{op}:b:wa:3"), 1);
    /* the log still ends at 3: a writer at 3 commits on */
    stage1(a, "{op}:b:wa:4");
    cr_assert_eq(commit1(a, "wa", 4, 3, 1, 30, 40, "{op}:b:wa:4", NULL, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    cr_assert_eq(res.pos, 4);
    op_redis_destroy(a);
}

Test(redis, another_history_at_the_same_position_is_back)
{
    /* wa commits at 0 -> 1; a failover loses it (the promoted replica never
     * had it); wb commits at 0 -> 1 on the new primary. The log is at 1 again
     * but holds another history: wa must hear BACK, not commit on top. */
    op_redis_t *a = open_or_fail(), *b = open_or_fail();
    const char *fields[] = {F0};
    op_redis_part_t p;
    cr_assert_eq(op_redis_claim(a, "wa", 1, fields, &p, err, sizeof(err)), 0);
    stage1(a, "{op}:b:wa:1");
    op_redis_commit_result_t res;
    cr_assert_eq(commit1(a, "wa", 1, 0, 1, -1, 10, "{op}:b:wa:1", NULL, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    cr_assert_str_eq(res.last, "wa:1");
    /* What the replica holds: the state before wa's commit. */
    freeReplyObject(cmd("RPOP %s", "{op}:log"));
    freeReplyObject(cmd("HSET %s pos 0 last %s", "{op}:meta", ""));
    freeReplyObject(cmd("HSET %s %s %s", "{op}:parts", F0, "1 wa -1 -9223372036854775808 0"));
    cr_assert_eq(op_redis_claim(b, "wb", 1, fields, &p, err, sizeof(err)), 0);
    stage1(b, "{op}:b:wb:1");
    cr_assert_eq(commit1(b, "wb", 1, 0, 2, -1, 20, "{op}:b:wb:1", NULL, &res), 0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_OK);
    cr_assert_eq(res.pos, 1);
    op_redis_commit_part_t part = {F0, 1, 10, 30, 1731283200000LL, 0};
    cr_assert_eq(
        op_redis_commit(a, "wa", 2, 1, "wa:1", 1, &part, 0, NULL, 0, NULL, &res, err, sizeof(err)),
        0, "%s", err);
    cr_assert_eq(res.verdict, OP_REDIS_BACK, "committed on top of another history");
    op_redis_log_t log;
    cr_assert_eq(op_redis_read_log(a, 1, "wa:1", &log, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(log.verdict, OP_REDIS_BACK, "tailing another history");
    op_redis_log_dispose(&log);
    cr_assert_eq(op_redis_read_log(b, 1, "wb:1", &log, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(log.verdict, 0);
    cr_assert_str_eq(log.last, "wb:1");
    op_redis_log_dispose(&log);
    cr_assert_eq(op_redis_read_log(b, 0, "", &log, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(log.n, 1);
    op_redis_log_dispose(&log);
    op_redis_destroy(a);
    op_redis_destroy(b);
}

static long long function_loads(void)
{
    redisReply *rep = cmd("INFO commandstats");
    const char *p = strstr(rep->str, "cmdstat_function|load:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_function|load:calls=")) : 0;
    freeReplyObject(rep);
    return n;
}

/* A new connection loads the functions only when Redis holds other code:
 * reconnecting needs no write (a paused or handing-over primary would block
 * it), and a stale library under the same name is replaced. */
Test(redis, functions_load_only_when_they_differ)
{
    op_redis_t *a = open_or_fail();
    long long loads = function_loads();
    cr_assert_geq(loads, 1, "the first connection to an empty Redis loads them");
    op_redis_t *b = open_or_fail();
    cr_assert_eq(function_loads(), loads, "the same code is not loaded again");
    op_redis_destroy(b);
    redisReply *rep = cmd("FUNCTION LOAD REPLACE %s",
                          "#!lua name=orderpulse_2\n"
                          "redis.register_function('op_init', function() return 'old' end)");
    cr_assert_eq(rep->type, REDIS_REPLY_STRING, "%s", rep->str);
    freeReplyObject(rep);
    b = open_or_fail(); /* op_init of the old library would not answer a generation */
    cr_assert_eq(function_loads(), loads + 2, "other code under the same name is replaced");
    rep = cmd("FUNCTION LIST WITHCODE LIBRARYNAME %s", "orderpulse_2");
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(rep->elements, 1);
    freeReplyObject(rep);
    op_redis_destroy(a);
    op_redis_destroy(b);
}

typedef struct fetched {
    int n;
    size_t len[3];
    int same[3];
    const char *want[3];
} fetched_t;

static int fetched_one(void *arg, const char *buf, size_t len)
{
    fetched_t *f = arg;
    f->len[f->n] = len;
    f->same[f->n] = !memcmp(buf, f->want[f->n], len);
    f->n++;
    return 0;
}

/* Blobs of a large commit skip hiredis's output buffer (sent from the
 * caller's memory, redisconn.c): they arrive whole, in order, next to a
 * small one, and the connection stays in step for the next command. */
Test(redis, large_blobs_arrive_whole)
{
    op_redis_t *r = open_or_fail();
    size_t big = 3 << 20, mid = 300 << 10;
    char *a = malloc(big), *b = malloc(mid);
    for (size_t i = 0; i < big; i++)
        a[i] = (char)(i * 31 + (i >> 12));
    for (size_t i = 0; i < mid; i++)
        b[i] = (char)(i * 7 + 1);
    const char *keys[] = {"{op}:b:t:1", "{op}:b:t:2", "{op}:b:t:3"};
    const char *bufs[] = {a, "small", b};
    size_t lens[] = {big, 5, mid};
    cr_assert_eq(op_redis_stage(r, 3, keys, bufs, lens, err, sizeof(err)), 0, "%s", err);
    fetched_t f = {.want = {a, "small", b}};
    cr_assert_eq(op_redis_fetch(r, 3, (char *const *)keys, fetched_one, &f, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(f.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(f.len[i], lens[i], "blob %d: %zu bytes", i, f.len[i]);
        cr_assert(f.same[i], "blob %d differs", i);
    }
    cr_assert_eq(integer("STRLEN %s", keys[0]), (long long)big);
    free(a);
    free(b);
    op_redis_destroy(r);
}

/* --- the sink: a big tick's chunks staged while it is encoded --------------------- */

TestSuite(sink, .init = setup, .fini = teardown);

static void wake_nobody(void *arg)
{
    (void)arg;
}

/* A sink that owns partitions 0-3. */
static op_redis_sink_t *sink_owning(op_claims_t *claims)
{
    op_claims_init(claims);
    op_redis_sink_conf_t sc = {
        .redis = {.host = "127.0.0.1", .port = server.port, .timeout_ms = 5000},
        .writer = "t",
        .source = "kafka:t",
        .dict = dict,
        .claims = claims,
        .retention_ms = 86400000,
        .wake = wake_nobody,
    };
    op_redis_sink_t *sink = NULL;
    cr_assert_eq(op_redis_sink_create(&sink, &sc, err, sizeof(err)), 0, "%s", err);
    op_redis_t *claimer;
    cr_assert_eq(op_redis_create(&claimer, &sc.redis), 0);
    op_redis_set_generation(claimer, op_redis_sink_generation(sink));
    for (int32_t p = 0; p < 4; p++) {
        char field[64];
        op_redis_sink_field(sc.source, p, field, sizeof(field));
        const char *fields[] = {field};
        op_redis_part_t part;
        cr_assert_eq(op_redis_claim(claimer, "t", 1, fields, &part, err, sizeof(err)), 0, "%s",
                     err);
        op_claims_set(&claims->epoch[p], part.epoch);
        op_claims_set(&claims->committed[p], part.next_offset);
    }
    op_redis_destroy(claimer);
    return sink;
}

/* The log entry i (from 0) folded into a new shard: its blobs, read with
 * redis-cli's eyes (LINDEX, GET). */
static op_shard_t *log_entry(int i)
{
    redisReply *entry = cmd("LINDEX {op}:log %d", i);
    cr_assert_eq(entry->type, REDIS_REPLY_STRING, "no log entry %d", i);
    op_shard_t *s = op_shard_create(-1);
    char *save = NULL;
    int field = 0;
    for (char *w = strtok_r(entry->str, " ", &save); w; w = strtok_r(NULL, " ", &save), field++) {
        if (field == 0)
            cr_assert_str_eq(w, "D");
        if (field < 4)
            continue;
        redisReply *blob = cmd("GET %s", w);
        cr_assert_eq(blob->type, REDIS_REPLY_STRING, "blob %s of entry %d", w, i);
        cr_assert_eq(op_delta_decode(blob->str, blob->len, s, &cache, err, sizeof(err)), 0, "%s",
                     err);
        freeReplyObject(blob);
    }
    cr_assert_gt(field, 4, "entry %d has no blob", i);
    freeReplyObject(entry);
    return s;
}

/* Tick 1's package is submitted before the sink thread runs; tick 2's full
 * chunks are handed over before it runs too. The package takes its own
 * chunks only: each commit is one tick's deltas with that tick's offsets,
 * or a crash between the two would count tick 2's orders twice. */
Test(sink, a_big_tick_staged_early_commits_as_its_own_entry)
{
    op_claims_t *claims = calloc(1, sizeof(*claims));
    op_redis_sink_t *sink = sink_owning(claims);
    op_state_t st;
    op_state_init(&st, dict);
    op_shard_t *a = many_users(150000, "a", 0), *b = many_users(150000, "b", 150000);
    op_state_merge(&st, a, 0);
    op_redis_sink_add_shard(sink, a, 1);
    cr_assert_eq(op_redis_sink_tick(sink, &st, 1, 0), OP_REDIS_SINK_RUN);
    op_state_merge(&st, b, 0);
    op_redis_sink_add_shard(sink, b, 2);
    cr_assert_eq(op_redis_sink_start(sink), 0);
    for (int waited = 0; !op_redis_sink_drained(sink); waited++) {
        cr_assert_lt(waited, 20000, "not committed in 20 s");
        cr_assert_eq(op_redis_sink_tick(sink, &st, 2, 0), OP_REDIS_SINK_RUN);
        usleep(1000);
    }
    cr_assert_eq(integer("LLEN %s", "{op}:log"), 2);
    op_shard_t *first = log_entry(0), *second = log_entry(1);
    same_shard(a, first);
    same_shard(b, second);
    op_shard_destroy(first);
    op_shard_destroy(second);
    op_redis_sink_destroy(sink);
    op_state_dispose(&st);
    op_shard_destroy(a);
    op_shard_destroy(b);
    free(claims);
}
