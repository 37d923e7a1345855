#!/bin/sh
# Runs every benchmark and writes docs/BENCHMARKS.md. Each result is a ratio
# against a ceiling measured in the same run on the same data, because these
# machines are shared and noisy; absolute numbers are printed alongside.
#
#   bench/run.sh [ORDERS]         (make bench; ORDERS defaults to 1000000)
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
orders=${1:-1000000}
B=build/bench
data=$B/orders-$orders.jsonl
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
cleanup() {
    for p in $rpid $mpid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
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

# --- data: the simulator, timed; its ceiling is dd copying the same bytes
sim_line=$(x bin/orderpulse-sim --out $data --rate 0 --count "$orders" --seed 7 --zipf 1.1 \
    --start 2024-11-11T00:00:00 --jitter 2s --quiet 2>&1 | tail -1)
sim_rate=$(echo "$sim_line" | sed -n 's/.*rate=\([0-9]*\)\/s.*/\1/p')
bytes=$(stat -c %s $data)
dd_secs=$(x dd if=$data of=$B/copy.tmp bs=4M 2>&1 | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
rm -f $B/copy.tmp
dd_rate=$(awk -v n="$orders" -v s="$dd_secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
say "SUMMARY bench=sim_file orders=$orders rate=$sim_rate bytes=$bytes dd_copy_seconds=$dd_secs" \
    "dd_orders_per_s=$dd_rate ratio=$(ratio "$sim_rate" "$dd_rate")"

# --- the parser next to simdjson On-Demand extracting the same seven fields
p_line=$(x $B/parse_bench $data 5)
s_line=$(x $B/simdjson_pass $data 5)
p_rate=$(echo "$p_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
s_rate=$(echo "$s_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
say "$p_line"
say "$s_line"
say "SUMMARY bench=parse_ratio parser_rate=$p_rate simdjson_rate=$s_rate ratio=$(ratio "$p_rate" "$s_rate")"

# --- the engine, --once over the same file, 1 and 2 workers (best of 3)
engine_rate() {
    best=0
    for _ in 1 2 3; do
        r=$(x bin/orderpulse --source file:$data --once --workers "$1" --redis none 2>&1 >/dev/null |
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
    x bin/orderpulse-sim --out $users_data --rate 0 --count "$2" --users "$1" --zipf 0 --seed 3 \
        --start 2024-11-11T00:00:00 --quiet 2>/dev/null
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
    _s=$(x bin/orderpulse --source file:$data --once --workers 2 --redis none "$@" 2>&1 >/dev/null |
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

# --- Redis: one tick flushing 1 M touched users, next to redis-benchmark
rport=$(free_port)
xbg redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no > /dev/null
rpid=$!
note "until redis-cli -p $rport ping; do sleep 0.1; done"
wait_for 10 redis-cli -p "$rport" ping
r_line=$(x $B/redis_bench "$rport" 1000000)
say "$r_line"
# redis-benchmark has no built-in hincrby test: the same command, explicitly.
ceil=$(x redis-benchmark -p "$rport" -c 1 -P 1000 -n 2000000 -q hincrby h f 1 2>/dev/null | tr '\r' '\n' |
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
ceil_rand=$(x redis-benchmark -p "$rport" -c 1 -P 1000 -n 2000000 -r 1000000 -q hincrby h2 f__rand_int__ 1 \
    2>/dev/null | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
kill $rpid; wait $rpid 2>/dev/null || true
rpid=
r_rate=$(echo "$r_line" | sed -n 's/.*commands_per_s=\([0-9]*\).*/\1/p')
say "SUMMARY bench=redis_ratio flush_rate=$r_rate ceiling=redis-benchmark_hincrby_P1000 ceiling_rate=$ceil ratio=$(ratio "$r_rate" "$ceil") ceiling_random_fields=$ceil_rand ratio_random_fields=$(ratio "$r_rate" "$ceil_rand")"

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
