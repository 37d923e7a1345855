#!/bin/sh
# Runs every benchmark and writes docs/BENCHMARKS.md. Each result is a ratio
# against a ceiling measured in the same run on the same data, because these
# machines are shared and noisy; absolute numbers are printed alongside.
#
#   bench/run.sh [ORDERS]         (make bench; ORDERS defaults to 1000000)
#
# Every benchmark prints one SUMMARY line; the report collects them.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
orders=${1:-1000000}
B=build/bench
data=$B/orders-$orders.jsonl
users_data=$B/users-1m.jsonl
out=$B/summary.txt
mkdir -p $B
: > $out

say() { echo "$*" | tee -a $out; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

# --- data: the simulator, timed (its own ceiling is writing the same bytes with dd)
sim_line=$(bin/orderpulse-sim --out $data --rate 0 --count "$orders" --seed 7 \
    --start 2024-11-11T00:00:00 --jitter 2s --quiet 2>&1 | tail -1)
sim_rate=$(echo "$sim_line" | sed -n 's/.*rate=\([0-9]*\)\/s.*/\1/p')
bytes=$(stat -c %s $data)
dd_rate=$(dd if=$data of=$B/copy.tmp bs=4M 2>&1 | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
rm -f $B/copy.tmp
say "SUMMARY bench=sim_file orders=$orders rate=$sim_rate bytes=$bytes dd_copy_seconds=$dd_rate"

# --- the parser next to simdjson On-Demand extracting the same seven fields
p_line=$($B/parse_bench $data 5)
s_line=$($B/simdjson_pass $data 5)
p_rate=$(echo "$p_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
s_rate=$(echo "$s_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
say "$p_line"
say "$s_line"
say "SUMMARY bench=parse_ratio parser_rate=$p_rate simdjson_rate=$s_rate ratio=$(ratio "$p_rate" "$s_rate")"

# --- the engine, --once over the same file, 1 and 2 workers (best of 3)
engine_rate() {
    best=0
    for _ in 1 2 3; do
        r=$(bin/orderpulse --source file:$data --once --workers "$1" --redis none 2>&1 >/dev/null |
            sed -n 's/.* s, \([0-9]*\) records\/s.*/\1/p')
        [ "${r:-0}" -gt "$best" ] && best=$r
    done
    echo "$best"
}
e1=$(engine_rate 1)
e2=$(engine_rate 2)
say "SUMMARY bench=engine_file workers=1 orders=$orders rate=$e1 ceiling=simdjson ceiling_rate=$s_rate ratio=$(ratio "$e1" "$s_rate")"
say "SUMMARY bench=engine_file workers=2 orders=$orders rate=$e2 ceiling=engine_1_worker ratio=$(ratio "$e2" "$e1")"

# --- memory per distinct user: 1 M users, uniform, against a 1 000-user baseline
mem() {
    bin/orderpulse-sim --out $users_data --rate 0 --count "$2" --users "$1" --zipf 0 --seed 3 \
        --start 2024-11-11T00:00:00 --quiet 2>/dev/null
    bin/orderpulse --source file:$users_data --once --workers 1 --redis none 2>&1 >/dev/null |
        sed -n 's/.* \([0-9]*\) users, rss_anon \([0-9]*\) KiB.*/\1 \2/p'
}
set -- $(mem 1000 3000000)
base_users=$1 base_kib=$2
set -- $(mem 1000000 3000000)
many_users=$1 many_kib=$2
rm -f $users_data
per_user=$(awk -v m="$many_kib" -v b="$base_kib" -v mu="$many_users" -v bu="$base_users" \
    'BEGIN { printf "%.0f", (m - b) * 1024 / (mu - bu) }')
say "SUMMARY bench=memory users=$many_users rss_anon_kib=$many_kib baseline_users=$base_users baseline_kib=$base_kib bytes_per_user=$per_user"

# --- Redis: one tick flushing 1 M touched users, next to redis-benchmark
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no > /dev/null &
rpid=$!
i=0; until redis-cli -p "$rport" ping > /dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.1; done
r_line=$($B/redis_bench "$rport" 1000000)
say "$r_line"
# redis-benchmark has no built-in hincrby test: the same command, explicitly.
ceil=$(redis-benchmark -p "$rport" -c 1 -P 1000 -n 2000000 -q hincrby h f 1 2>/dev/null | tr '\r' '\n' |
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
ceil_rand=$(redis-benchmark -p "$rport" -c 1 -P 1000 -n 2000000 -r 1000000 -q hincrby h2 f__rand_int__ 1 \
    2>/dev/null | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
kill $rpid; wait $rpid 2>/dev/null || true
r_rate=$(echo "$r_line" | sed -n 's/.*commands_per_s=\([0-9]*\).*/\1/p')
say "SUMMARY bench=redis_ratio flush_rate=$r_rate ceiling=redis-benchmark_hincrby_P1000 ceiling_rate=$ceil ratio=$(ratio "$r_rate" "$ceil") ceiling_random_fields=$ceil_rand ratio_random_fields=$(ratio "$r_rate" "$ceil_rand")"

# --- HTTP: h2load on /api/v1/snapshot next to h2o serving the same bytes
h_line=$(bench/http_bench.sh 200000 200000 | grep '^SUMMARY' | tail -1)
say "$h_line"

bench/report.sh $out > docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md"
