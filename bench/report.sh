#!/bin/sh
# Turns the SUMMARY lines of bench/run.sh into docs/BENCHMARKS.md (stdout).
#   bench/report.sh SUMMARY_FILE
# Beside SUMMARY_FILE it reads machine.txt (key=value: the machine and the
# commit) and commands.txt (every command the run executed), both written by
# bench/run.sh.
set -eu
summary=$1
dir=$(dirname "$summary")
val() { grep "bench=$1 " "$summary" | grep -- "${3:-}" | sed -n "s/.* $2=\([^ ]*\).*/\1/p" | head -1; }
machine() { sed -n "s/^$1=//p" "$dir/machine.txt" 2>/dev/null | head -1; }
tick=$(val freshness tick_ms)
tick=${tick:-1000}
cat <<MD
# Benchmarks

Produced by \`make bench\` (\`bench/run.sh\`) on $(machine date).

| machine | |
|---------|-|
| CPU | $(machine cpu) |
| CPUs (cores) | $(machine cpus) ($(machine cores)) |
| kernel | $(machine kernel) |
| commit | $(machine commit) |

Every number is a ratio to a ceiling measured **in the same run on the same
data**: these machines are shared and noisy, so absolute rates move between
runs; the ratios are what to compare.

| benchmark | result | ceiling (same run) | ratio | target |
|-----------|--------|--------------------|-------|--------|
| simulator → JSONL file | $(val sim_file rate) orders/s | \`dd bs=4M\` copying the same bytes: $(val sim_file dd_orders_per_s) orders/s | $(val sim_file ratio) | ≥ 1 000 000 orders/s |
| order parser (\`op_parse_order\`) | $(val parse_ratio parser_rate) orders/s | simdjson On-Demand, same 7 fields: $(val parse_ratio simdjson_rate) orders/s | $(val parse_ratio ratio) | — |
| engine \`--source file --once\`, 1 worker | $(val engine_file rate "workers=1") orders/s | simdjson pass | $(val engine_file ratio "workers=1") | ≥ 1.0 |
| engine \`--source file --once\`, 2 workers | $(val engine_file rate "workers=2") orders/s | engine, 1 worker | $(val engine_file ratio "workers=2") | ≥ 1.9 |
| memory per distinct user | $(val memory bytes_per_user) bytes | — | — | ≤ 100 bytes |
| engine \`--once\` with \`--archive\` (MariaDB), 2 workers | $(val archive_once seconds) s to the final snapshot; $(val archive_once wall_seconds) s until all $(val archive_once rows) rows are in MariaDB | the same without \`--archive\`: $(val archive_once ceiling_seconds) s ($(val archive_once ceiling_wall_seconds) s to exit) | $(val archive_once ratio) (to exit: $(val archive_once wall_ratio)) | ≥ 0.95 |
| memory per user and day with \`--archive\` | $(val archive_memory bytes_per_user_day) bytes | — | — | — |
| Redis: one tick flushing $(val redis_flush users) users | $(val redis_flush seconds) s, $(val redis_ratio flush_rate) commands/s | \`redis-benchmark -c 1 -P 1000\` HINCRBY one field: $(val redis_ratio ceiling_rate)/s (1 M random fields: $(val redis_ratio ceiling_random_fields)/s) | $(val redis_ratio ratio) ($(val redis_ratio ratio_random_fields)) | ≥ 0.7 |
| HTTP \`/api/v1/snapshot\`, h2load -c 16 -m 32 (h2c) | $(val http_snapshot rate) req/s, p50 $(val http_snapshot p50_ms) ms, p99 $(val http_snapshot p99_ms) ms | Debian h2o, same bytes as a static file: $(val http_snapshot ceiling_rate) req/s | $(val http_snapshot ratio) | ≥ 0.7 |
| Kafka end to end: dev broker → engine \`--once\`, 2 workers, whole process | $(val kafka_e2e seconds) s, $(val kafka_e2e rate) orders/s ($(val kafka_e2e orders) orders, $(val kafka_e2e partitions) partitions) | \`kcat -C -o beginning -e\` draining the same topic: $(val kafka_e2e kcat_seconds) s | $(val kafka_e2e ratio_kcat) | ≥ 0.9 |
| the same | | bare librdkafka consumer (\`bench/kafka_ceiling\`: the engine's consumer, no parsing): $(val kafka_e2e ceiling_seconds) s | $(val kafka_e2e ratio_ceiling) | — |
| freshness: order produced → visible in \`/api/v1/snapshot\`, live at $(val freshness rate) orders/s, $(val freshness tick_ms) ms tick | p50 $(val freshness p50_ms) ms, p99 $(val freshness p99_ms) ms ($(val freshness ticks) ticks; pipeline beyond the tick: p50 $(val freshness pipeline_p50_ms) ms) | the tick, $(val freshness tick_ms) ms (zero pipeline delay would give p50 $((tick / 2)) ms, p99 $((tick * 99 / 100)) ms) | p50/tick $(val freshness ratio_p50), p99/tick $(val freshness ratio_p99) | p99 ≤ 250 ms |

### What limits each figure

From \`perf record\` profiles of each step on this machine (cpu-clock
sampling: the VM exposes no hardware counters), and \`make profile\` for the
engine.

- **simulator → file**: the kernel's page-cache write path — about two thirds of the
  simulator's samples are in \`copy_folio_from_iter_atomic\` (writing the file);
  generating the orders (\`op_gen_next\`, number formatting, Zipf and normal draws)
  is about a quarter.
- **parser**: compute, not memory: a 10 MB slice of the file that stays in cache
  parses at the same rate as the 339 MB file. The time is the scanner itself
  (\`op_parse_order\` ~38 %), number parsing (~16 %), the whole-record UTF-8
  validation (\`valid_avx2\` ~13 %) and string scanning (~7 %).
- **engine, 1 worker**: parsing (~55 % of the samples) plus the shard's user
  table (\`op_users_upsert\` ~18 %: three dependent loads per order — index slot,
  entry, name in the arena — which is where the samples pile up) and the
  per-worker intern caches (\`op_intern_cache_id\` ~11 %, three names per order).
  The \`--once\` figure also contains up to 100 ms after the final snapshot:
  \`engine/main.c\` waits in 100 ms \`sigtimedwait\` steps and reads the clock after
  joining the threads (profiled: worker done at 0.58 s, 0.68 s reported).
- **engine, 2 workers**: two workers on the machine's two cores, plus the
  merger's last merge; the same ≤ 100 ms end-of-run wait is ~30 % of a ~0.3 s run
  (profiled: workers done at 0.21 s, 0.32 s reported), so the scaling ratio
  understates the workers.
- **memory per user**: the merger's user table by design (\`engine/users.h\`: a
  24-byte entry, a 4-byte index slot, the name in an arena), plus the slack of
  power-of-two index sizes and arrays that grow by doubling.
- **archive**: with \`--archive\` the workers do one compare per order (the day
  of an order against the shard's base day) and the merger one more table update
  per user per tick (the user's day); rows are copied out only when windows turn
  final — for \`--once\`, all at the end — and MariaDB writes them after the
  final snapshot, on the archive's thread. Time to exit is MariaDB's: InnoDB
  upserting the rows in 1 000-row statements (the users of each day dominate).
  Memory per user and day: the state's day table (a 32-byte slot, at most half
  full) plus, at the end of \`--once\`, the rows waiting for MariaDB.
- **Redis**: the single-threaded redis-server (~80 % busy during the flush):
  hash-table work dominates its samples (\`dictFind\`, \`dictRehash\`,
  \`dictSdsHash\`, key compares ≈ 45 %: 1 M new hash fields and sorted-set members
  grow their dicts through incremental rehashing), then ZINCRBY's skiplist inserts
  and score formatting; all queued inside one MULTI and run at EXEC. The one-field
  ceiling has none of that growth, so the random-field ratio is the fairer one.
- **HTTP**: the kernel, not the API: the engine's one HTTP thread runs at ~95 % of
  a core, ~70 % of it in the kernel copying the 7 KB bodies into sockets
  (\`_copy_from_iter\` ~29 %), ~21 % in h2o, ~1 % in orderpulse; h2load takes the
  other core (client and servers share the same 2 cores).
- **Kafka end to end**: the two cores. The engine needs ~1.3 CPU-s for 2 M orders
  (\`perf record\` of the whole process): librdkafka's broker thread ~36 % of the
  samples (LZ4 decompression ~13 %, then message-set parsing, one op per message,
  page faults of fresh fetch buffers), the two workers ~62 % (parsing and the
  shard's tables as in the file runs, plus ~4 % in librdkafka's per-message queue
  lock and message destroy), the merger ~1 %. The bare consumer needs ~0.65 CPU-s,
  all of it the same broker thread: its time is that one thread's, while the
  engine's is its whole work spread over two cores shared with the broker thread
  (which is the serial part: one fetch in flight, one message set per partition
  per round). kcat needs ~1.1 CPU-s on one core (formatting and writing every
  offset). Start-up to the first message is ~10 ms (one ListOffsets request each
  for the ends and starts, one OffsetFetch, every partition assigned at a concrete
  offset), the end ~10 ms (the last records are taken as they come; the merger's
  final merge and render) and the exit ~3 ms.
- **freshness**: the tick — an order waits for the next snapshot, uniformly
  0–$(val freshness tick_ms) ms. The rest (p50 $(val freshness pipeline_p50_ms) ms) is the simulator's producer
  \`linger.ms=20\`, the consumer's \`fetch.wait.max.ms=10\`, the workers' hand-over at
  the tick, merge and render ($(val freshness publish_p50_ms) ms from \`as_of\` to the poll seeing it),
  and the 10 ms poll interval.

### Published anchors, for context (not measured here)

| system and benchmark | published throughput per core | setup |
|----------------------|-------------------------------|-------|
| Apache Flink, Nexmark q0 (pass-through) | ≈ 155 K events/s | Flink 1.13, 3 × 8-core workers, datagen source, exactly-once checkpoints ([nexmark/nexmark](https://github.com/nexmark/nexmark) README) |
| Apache Flink, Nexmark q5 (hot items, sliding windows) | ≈ 22 K events/s | same |
| Apache Flink, Yahoo! Streaming Benchmark, from Kafka | ≈ 75 K events/s | J. Grier, data Artisans, "Extending the Yahoo! Streaming Benchmark" (2016): 10 compute nodes × 4-core Xeon E3-1230 v2 |

These are other systems' published figures, for other workloads on other
hardware; they are here for orientation only and are not comparable to the
ratios above.

### Data and method

Data: $(val sim_file orders) orders from \`orderpulse-sim --rate 0 --seed 7 --zipf 1.1 --start 2024-11-11T00:00:00 --jitter 2s\`
($(val sim_file bytes) bytes). Engine rates are records per second from the
start of the workers to the final snapshot (its \`--once\` summary line), best of 3.
Memory: anonymous RSS after \`--once\` over 3 M orders of $(val memory users) distinct users
minus the same for $(val memory baseline_users) users, divided by the difference in users.

Kafka (\`bench/kafka_bench.sh\`): $(val kafka_e2e orders) orders (\`--key random\`) produced first
into the dev broker (\`orderpulse-devbroker --partitions $(val kafka_e2e partitions)\`, librdkafka's
mock cluster, which keeps only ~5 MB per partition: lz4 takes ~66 bytes an order
there, so ~2 MB a partition), then read alternately, whole process each (start-up
and exit included), by \`kcat -C -o beginning -e -q -f '%o\\n' | wc -l\`, by
\`build/bench/kafka_ceiling\` (\`bench/kafka_ceiling.c\`: one consumer with the consumer
properties of \`engine/io/source_kafka.c\`, every partition assigned at its log start
into one queue drained as the engine's workers drain theirs, messages and bytes
counted, done when every partition reaches the end offset seen at start or
reports EOF) and by the engine (\`--once --workers 2 --redis none\`, a fresh consumer
group per run). Best of $(val kafka_e2e runs) each; ratios are the other's time over the
engine's. All three check they read every order, and the ceiling that the broker
still held the start of every partition. The engine's own \`--once\` figure (workers'
start to final snapshot): $(val kafka_e2e once_rate) orders/s.

Freshness (\`bench/freshness_bench.sh\`, \`bench/freshness.py\`): the engine consumes
live (consumer group, \`--tick $(val freshness tick_ms)ms --lateness 0s --redis none\`: snapshots are
published every tick whatever Redis does, so the Redis path is not measured here)
while the simulator produces $(val freshness orders) orders at $(val freshness rate)/s on the live clock
into 8 partitions; \`/api/v1/snapshot\` is polled every
10 ms. An order's event time is the wall clock when the simulator made it; with
no lateness the snapshot's \`watermark\` is the minimum over partitions of the
newest event time read, so every order up to it is visible: an order made at t
is visible at the first poll that sees watermark ≥ t. Latencies are taken for t
on a 1 ms grid over the stream after a 2 s warm-up (every order weighs the same at
a constant rate); p50/p99 are over those, from $(val freshness ticks) ticks.

## Raw summary lines

\`\`\`
$(cat "$summary")
\`\`\`

## The exact commands

Every command the run executed, in order (\`bench/run.sh\` and the scripts it
calls; polling loops once; repeated identical commands collapsed with ×N).
Temporary directories and ports are the ones of this run.

\`\`\`
$(awk 'NR > 1 && $0 == prev { n++; next }
       NR > 1 { print prev (n > 1 ? "    # ×" n : "") }
       { prev = $0; n = 1 }
       END { if (NR) print prev (n > 1 ? "    # ×" n : "") }' "$dir/commands.txt" 2>/dev/null)
\`\`\`
MD
