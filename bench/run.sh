#!/bin/sh
# Runs every benchmark and writes docs/BENCHMARKS.md. Each result is a ratio
# against a ceiling measured in the same run on the same data, because these
# machines are shared and noisy; absolute numbers are printed alongside.
#
#   bench/run.sh [ORDERS]         (make bench; ORDERS defaults to 2000000)
#
# OP_BENCH_CORE_ONLY=1 stops after the engine's own rows (parser, engine at
# both cardinalities, physical limits, memory) and writes the report from
# them: for working on the core without a Redis, HTTP and Kafka run.
#
# Every benchmark prints one SUMMARY line; the report collects them. Every
# command run (here and in the bench/*.sh it calls) is logged to
# build/bench/commands.txt for the report's "exact commands" section, and the
# machine and commit to build/bench/machine.txt. Every process started is
# stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
orders=${1:-2000000}
B=build/bench
lo_data=$B/orders-$orders-low.jsonl
hi_data=$B/orders-$orders-high.jsonl
users_data=$B/users-1m.jsonl
out=$B/summary.txt
mkdir -p $B
: > $out
OP_BENCH_CMDLOG=$top/$B/commands.txt
export OP_BENCH_CMDLOG
: > "$OP_BENCH_CMDLOG"
note "bench/run.sh $orders    # what make bench runs"

rpid=
mpid=
cleanup() { stop_pids $rpid $mpid; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a $out; }

# --- the machine and the commit (docs/BENCHMARKS.md itself does not make the tree dirty)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain -- . ':!docs/BENCHMARKS.md' 2>/dev/null)" ]; then
    commit="$commit-dirty"
fi
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "cpus=$(nproc)"
    echo "cores=$(lscpu -p=core 2>/dev/null | grep -v '^#' | sort -u | wc -l)"
    echo "kernel=$(uname -r)"
    echo "commit=$commit"
} > $B/machine.txt

# --- data: the simulator, timed; its ceiling is dd copying the same bytes.
# Two streams of the same orders but for the users: low cardinality (100 K
# users, Zipf 1.1: ~82 K distinct in 2 M orders) and high (2 M users,
# uniform: ~1.26 M distinct). Every simulator flag that shapes the stream is
# explicit, so that a change of the simulator's defaults changes nothing here.
SIM_FLAGS="--rate 0 --seed 7 --start 2024-11-11T00:00:00 --jitter 2s --time-field both
    --timezone +08:00 --genders 男:0.5,女:0.5 --late-fraction 0 --bad-fraction 0 --quiet"
# shellcheck disable=SC2086
sim_line=$(x bin/orderpulse-sim --out $lo_data --count "$orders" --users 100000 --zipf 1.1 $SIM_FLAGS 2>&1 |
    tail -1)
# shellcheck disable=SC2086
x bin/orderpulse-sim --out $hi_data --count "$orders" --users 2000000 --zipf 0 $SIM_FLAGS 2>/dev/null
sim_rate=$(echo "$sim_line" | sed -n 's/.*rate=\([0-9]*\)\/s.*/\1/p')
bytes=$(stat -c %s $lo_data)
dd_secs=$(x dd if=$lo_data of=$B/copy.tmp bs=4M 2>&1 | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
rm -f $B/copy.tmp
dd_rate=$(awk -v n="$orders" -v s="$dd_secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
say "SUMMARY bench=sim_file orders=$orders rate=$sim_rate bytes=$bytes dd_copy_seconds=$dd_secs" \
    "dd_orders_per_s=$dd_rate ratio=$(ratio "$sim_rate" "$dd_rate")"

# --- the parser next to simdjson On-Demand extracting the same seven fields
p_line=$(x $B/parse_bench $lo_data 5)
s_line=$(x $B/simdjson_pass $lo_data 5)
p_rate=$(echo "$p_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
s_rate=$(echo "$s_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
say "$p_line"
say "$s_line"
say "SUMMARY bench=parse_ratio parser_rate=$p_rate simdjson_rate=$s_rate ratio=$(ratio "$p_rate" "$s_rate")"

# --- the engine, --once, 1 and 2 workers, against the simdjson pass over the
# same file; the simdjson pass on 2 threads over 1, for scale (how far the
# cores themselves scale is physlimit's, below). They alternate, five rounds,
# best of each, so that a burst of load from the machine's other users hits
# all of them alike (a 2-worker run needs both cores free at once: it
# suffers most).
# engine_once FILE WORKERS -> "records/s seconds ended" from the --once
# summary line: ended is when the last worker's input ended; what follows
# it (seconds - ended) is the merger's tail alone.
engine_once() {
    x bin/orderpulse --source file:"$1" --once --workers "$2" --redis none 2>&1 >/dev/null |
        sed -n 's/.* in \([0-9.]*\) s, \([0-9]*\) records\/s.* last input ended at \([0-9.]*\) s.*/\2 \1 \3/p'
}
best() { [ "${2:-0}" -gt "${1:-0}" ] && echo "$2" || echo "${1:-0}"; }
# best_run "RATE SECONDS ENDED" "RATE SECONDS ENDED" -> the one with the higher rate
best_run() { [ "${2%% *}" -gt "${1%% *}" ] 2>/dev/null && echo "$2" || echo "$1"; }
engine_rows() { # name file
    s=0 s2=0 r1="0 0 0" r2="0 0 0"
    for _ in 1 2 3 4 5; do
        s=$(best $s "$(x $B/simdjson_pass "$2" 1 | sed -n 's/.* rate=\([0-9]*\).*/\1/p')")
        s2=$(best $s2 "$(x $B/simdjson_pass "$2" 1 2 | sed -n 's/.* rate=\([0-9]*\).*/\1/p')")
        r1=$(best_run "$r1" "$(engine_once "$2" 1)")
        r2=$(best_run "$r2" "$(engine_once "$2" 2)")
    done
    set -- "$1" $r1 $r2
    e1=$2 e2=$5
    tail1=$(awk -v s="$3" -v e="$4" 'BEGIN { printf "%.0f", (s - e) * 1000 }')
    tail2=$(awk -v s="$6" -v e="$7" 'BEGIN { printf "%.0f", (s - e) * 1000 }')
    say "SUMMARY bench=engine_file users=$1 workers=1 orders=$orders rate=$e1 ceiling=simdjson" \
        "ceiling_rate=$s ratio=$(ratio "$e1" "$s") seconds=$3 inputs_ended=$4 tail_ms=$tail1"
    say "SUMMARY bench=engine_file users=$1 workers=2 orders=$orders rate=$e2 ceiling=engine_1_worker" \
        "ceiling_rate=$e1 ratio=$(ratio "$e2" "$e1")" \
        "simdjson_2_threads_rate=$s2 hardware_scaling=$(ratio "$s2" "$s")" \
        "seconds=$6 inputs_ended=$7 tail_ms=$tail2 workers_scaling=$(ratio "$4" "$7")" \
        "ratio_without_tail=$(ratio "$3" "$7")"
}
engine_rows low $lo_data
engine_rows high $hi_data

# --- the merger's end-of-run work at high cardinality: with 2 workers it runs
# after both have finished (the serial tail the 2-worker ratio pays)
say "$(x $B/merge_bench $hi_data 5)"

# --- the hardware: reading the file (bandwidth) and one dependent DRAM load
# (latency), as orders/s, with the engine's 1-worker rates as fractions; and
# how far two cores scale compute, DRAM latency and reading (the ceiling of
# the 2-worker ratio, by kind of work).
pl_line=$(x $B/physlimit $hi_data 1024 3)
say "$pl_line"
bw=$(echo "$pl_line" | sed -n 's/.* bandwidth_orders_per_s=\([0-9]*\).*/\1/p')
lat=$(echo "$pl_line" | sed -n 's/.* latency_orders_per_s=\([0-9]*\).*/\1/p')
e1lo=$(sed -n 's/.*bench=engine_file users=low workers=1 .* rate=\([0-9]*\) .*/\1/p' $out)
e1hi=$(sed -n 's/.*bench=engine_file users=high workers=1 .* rate=\([0-9]*\) .*/\1/p' $out)
say "SUMMARY bench=physlimit_ratio bandwidth_orders_per_s=$bw latency_orders_per_s=$lat" \
    "low_of_bandwidth=$(ratio "$e1lo" "$bw") high_of_bandwidth=$(ratio "$e1hi" "$bw")" \
    "low_of_latency=$(ratio "$e1lo" "$lat") high_of_latency=$(ratio "$e1hi" "$lat")"

# --- memory per distinct user: 1 M users, uniform, against a 1 000-user baseline
mem() {
    # shellcheck disable=SC2086
    x bin/orderpulse-sim --out $users_data --count "$2" --users "$1" --zipf 0 $SIM_FLAGS 2>/dev/null
    x bin/orderpulse --source file:$users_data --once --workers 1 --redis none 2>&1 >/dev/null |
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

if [ -n "${OP_BENCH_CORE_ONLY:-}" ]; then
    x bench/report.sh $out > docs/BENCHMARKS.md
    echo "wrote docs/BENCHMARKS.md (core rows only)"
    exit 0
fi
# --- the archive (MariaDB): --once with --archive next to without, same file,
#     2 workers, alternating, best of 5; then memory per user-day (1 M users)
mdir=$top/$B/mariadb
rm -rf "$mdir"
x mariadb-install-db --user=root --datadir="$mdir" --auth-root-authentication-method=normal \
    --skip-test-db > /dev/null 2>&1
mport=$(free_port)
xbg mariadbd --user=root --datadir="$mdir" --port="$mport" --bind-address=127.0.0.1 \
    --socket="$mdir/sock" --skip-grant-tables > $B/mariadb.log 2>&1
mpid=$!
sql() { mariadb --protocol=TCP -h 127.0.0.1 -P "$mport" -u root -N -e "$1"; }
note "until mariadb --protocol=TCP -h 127.0.0.1 -P $mport -u root -e 'SELECT 1'; do sleep 0.1; done"
wait_for 30 sql 'SELECT 1'
x sql 'CREATE DATABASE op'
archive=mysql://root@127.0.0.1:$mport/op
# "seconds to the final snapshot" and "seconds until the process exits" (with
# --archive: until every row is in MariaDB)
once_times() {
    _t0=$(date +%s%N)
    _s=$(x bin/orderpulse --source file:$lo_data --once --workers 2 --redis none "$@" 2>&1 >/dev/null |
        sed -n 's/.* in \([0-9.]*\) s,.*/\1/p')
    _t1=$(date +%s%N)
    echo "$_s $(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 < b + 0) ? a : b }'; }
p_s= p_w= a_s= a_w=
for _ in 1 2 3 4 5; do
    set -- $(once_times)
    p_s=$(min "$1" "$p_s") p_w=$(min "$2" "$p_w")
    set -- $(once_times --archive "$archive")
    a_s=$(min "$1" "$a_s") a_w=$(min "$2" "$a_w")
done
rows=$(sql 'SELECT (SELECT COUNT(*) FROM op.op_minute) + (SELECT COUNT(*) FROM op.op_category_minute) +
    (SELECT COUNT(*) FROM op.op_gender_slot) + (SELECT COUNT(*) FROM op.op_brand_day) +
    (SELECT COUNT(*) FROM op.op_gender_day) + (SELECT COUNT(*) FROM op.op_user_day)')
say "SUMMARY bench=archive_once workers=2 orders=$orders seconds=$a_s wall_seconds=$a_w" \
    "ceiling=no_archive ceiling_seconds=$p_s ceiling_wall_seconds=$p_w ratio=$(ratio "$p_s" "$a_s")" \
    "wall_ratio=$(ratio "$p_w" "$a_w") rows=$rows"
x bin/orderpulse-sim --out $users_data --rate 0 --count 3000000 --users 1000000 --zipf 0 --seed 3 \
    --start 2024-11-11T00:00:00 --quiet 2>/dev/null
rss_users() {
    x bin/orderpulse --source file:$users_data --once --workers 1 --redis none "$@" 2>&1 >/dev/null |
        sed -n 's/.* \([0-9]*\) users, rss_anon \([0-9]*\) KiB.*/\1 \2/p'
}
set -- $(rss_users)
plain_kib=$2
set -- $(rss_users --archive "$archive")
day_users=$1 archive_kib=$2
rm -f $users_data
kill $mpid; wait $mpid 2>/dev/null || true
mpid=
say "SUMMARY bench=archive_memory user_days=$day_users rss_anon_kib=$archive_kib" \
    "baseline_kib=$plain_kib bytes_per_user_day=$(awk -v a="$archive_kib" -v b="$plain_kib" \
    -v u="$day_users" 'BEGIN { printf "%.0f", (a - b) * 1024 / u }')"

# --- Redis: one commit of 1 M users next to redis-cli --pipe of the same bytes;
#     whole process with Redis over without, on both streams; another client's
#     longest PING meanwhile; live from a 1.26 M-user backlog (bench/redis_e2e.sh)
r_out=$(x bench/redis_e2e.sh "$orders")
echo "$r_out" | grep '^SUMMARY' | tee -a $out

# --- Redis high availability: what WAIT (--redis-min-replicas) costs; kill -9
#     of the primary under Sentinel and in a Cluster, to the next commit
#     (bench/redis_ha.sh)
ha_out=$(x bench/redis_ha.sh)
echo "$ha_out" | grep '^SUMMARY' | tee -a $out

# --- HTTP: h2load on /api/v1/snapshot next to h2o serving the same bytes
h_line=$(x bench/http_bench.sh 200000 200000 | grep '^SUMMARY' | tail -1)
say "$h_line"

# --- Kafka end to end: the engine's --once from the dev broker next to kcat and a bare consumer
k_out=$(x bench/kafka_bench.sh 2000000 64 3)
echo "$k_out" | grep '^SUMMARY' | tee -a $out

# --- freshness: order produced -> visible in /api/v1/snapshot, live at 200 000/s, --tick 100ms
f_out=$(x bench/freshness_bench.sh 12 200000 100)
echo "$f_out" | grep '^SUMMARY' | tee -a $out

x bench/report.sh $out > docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md"
