#!/bin/sh
# Turns the SUMMARY lines of bench/run.sh into docs/BENCHMARKS.md (stdout).
set -eu
summary=$1
val() { grep "bench=$1 " "$summary" | grep "${3:-}" | sed -n "s/.* $2=\([^ ]*\).*/\1/p" | head -1; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cat <<MD
# Benchmarks

Produced by \`make bench\` (\`bench/run.sh\`) on $(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu).
Every number is a ratio to a ceiling measured **in the same run on the same
data**: these machines are shared and noisy, so absolute rates move between
runs; the ratios are what to compare.

| benchmark | result | ceiling (same run) | ratio | target |
|-----------|--------|--------------------|-------|--------|
| simulator → JSONL file | $(val sim_file rate) orders/s | — | — | ≥ 1 000 000 orders/s |
| order parser (\`op_parse_order\`) | $(val parse_ratio parser_rate) orders/s | simdjson On-Demand, same 7 fields: $(val parse_ratio simdjson_rate) orders/s | $(val parse_ratio ratio) | — |
| engine \`--source file --once\`, 1 worker | $(val engine_file rate "workers=1") orders/s | simdjson pass | $(val engine_file ratio "workers=1") | ≥ 1.0 |
| engine \`--source file --once\`, 2 workers | $(val engine_file rate "workers=2") orders/s | engine, 1 worker | $(val engine_file ratio "workers=2") | ≥ 1.9 |
| memory per distinct user | $(val memory bytes_per_user) bytes | — | — | ≤ 100 bytes |
| Redis: one tick flushing $(val redis_flush users) users | $(val redis_flush seconds) s, $(val redis_ratio flush_rate) commands/s | \`redis-benchmark -c 1 -P 1000\` HINCRBY one field: $(val redis_ratio ceiling_rate)/s (1 M random fields: $(val redis_ratio ceiling_random_fields)/s) | $(val redis_ratio ratio) ($(val redis_ratio ratio_random_fields)) | ≥ 0.7 |
| HTTP \`/api/v1/snapshot\`, h2load -c 16 -m 32 (h2c) | $(val http_snapshot rate) req/s, p50 $(val http_snapshot p50_ms) ms, p99 $(val http_snapshot p99_ms) ms | Debian h2o, same bytes as a static file: $(val http_snapshot ceiling_rate) req/s | $(val http_snapshot ratio) | ≥ 0.7 |

Data: $(val sim_file orders) orders from \`orderpulse-sim --rate 0 --seed 7 --start 2024-11-11T00:00:00 --jitter 2s\`
($(val sim_file bytes) bytes). Engine rates are records per second from the
start of the workers to the final snapshot (its \`--once\` summary line), best of 3.
Memory: anonymous RSS after \`--once\` over 3 M orders of $(val memory users) distinct users
minus the same for $(val memory baseline_users) users, divided by the difference in users.

## Raw summary lines

\`\`\`
$(cat "$summary")
\`\`\`
MD
