#!/bin/sh
# Kafka end to end: the engine's --once over a topic of the dev broker, next
# to two bare librdkafka consumers draining the same topic, whole process
# each (start-up, the end of the input and the exit included):
#   - kcat -C -o beginning -e (a consumer nobody here wrote), and
#   - build/bench/kafka_ceiling (bench/kafka_ceiling.c: the engine's
#     consumer properties and queue forwarding, no parsing).
#
#   bench/kafka_bench.sh [ORDERS] [PARTITIONS] [RUNS]
#                        (defaults: 2000000 orders, 64 partitions, best of 3)
#
# The dev broker (librdkafka's mock cluster) keeps only about the last 5 MB
# of each partition, so the orders are produced first and sized to fit: lz4
# batches of the simulator take ~66 bytes an order on the broker and the
# orders are keyed at random (--key random), so 2 000 000 orders put ~2 MB
# in each of 64 partitions. The ceiling checks that the log start of every
# partition is still 0 and that it read every order; kcat's and the
# engine's counts are checked too, so a trimmed log fails the benchmark
# instead of flattering it.
#
# The engine resumes from its group's committed offsets when there is no
# Redis, so every engine run uses a group of its own. The three alternate
# (the machine is shared and noisy), best of RUNS each.
#
# Prints:
#   SUMMARY bench=kafka_ceiling ...    (every ceiling run, its own clock)
#   SUMMARY bench=kafka_e2e orders=... partitions=... workers=2 seconds=... rate=...
#           kcat_seconds=... ceiling_seconds=... ratio_kcat=... ratio_ceiling=...
#           once_rate=... bytes=... runs=...
# (ratios: the other's whole-process time / the engine's, i.e. the engine's
# rate as a fraction of theirs; once_rate: the engine's own --once figure,
# workers' start to final snapshot). Every process it starts is stopped by
# its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
orders=${1:-2000000}
partitions=${2:-64}
runs=${3:-3}
bin=${OP_BIN:-bin}
workers=2

work=$(mktemp -d /tmp/op-kafka-bench.XXXXXX)
broker_pid=
cleanup() {
    stop_pids $broker_pid
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

start_devbroker "$work" --partitions "$partitions"
x "$bin/orderpulse-sim" --brokers "$brokers" --rate 0 --count "$orders" --key random --seed 7 --zipf 1.1 \
    --quiet 2>"$work/sim.err" || { cat "$work/sim.err" >&2; exit 1; }
grep -q "delivered=$orders errors=0" "$work/sim.err" || {
    echo "kafka_bench: the simulator did not deliver $orders orders:" >&2
    cat "$work/sim.err" >&2
    exit 1
}

best_k= best_c= best_e= best_once=0 bytes=0
for i in $(seq 1 "$runs"); do
    note "kcat -C -b $brokers -t orders -o beginning -e -q -f '%o\\n' | wc -l"
    t0=$(now_ns)
    n=$(kcat -C -b "$brokers" -t orders -o beginning -e -q -f '%o\n' | wc -l)
    t1=$(now_ns)
    [ "$n" -eq "$orders" ] || { echo "kafka_bench: kcat read $n of $orders orders" >&2; exit 1; }
    best_k=$(min "$best_k" "$(secs "$t0" "$t1")")

    t0=$(now_ns)
    c_line=$(x build/bench/kafka_ceiling "$brokers" orders "$orders")
    t1=$(now_ns)
    echo "$c_line"
    echo "$c_line" | grep -q ' low_min=0$' || { echo "kafka_bench: the broker dropped the start of a partition" >&2; exit 1; }
    bytes=$(echo "$c_line" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p')
    best_c=$(min "$best_c" "$(secs "$t0" "$t1")")

    t0=$(now_ns)
    x "$bin/orderpulse" --brokers "$brokers" --topic orders --group "bench-$i" --once \
        --workers $workers --redis none 2>"$work/engine.err" >/dev/null
    t1=$(now_ns)
    e_line=$(grep ' once: ' "$work/engine.err")
    echo "$e_line" >&2
    echo "$e_line" | grep -q "once: $orders records ($orders orders" || {
        echo "kafka_bench: the engine did not read $orders orders" >&2
        exit 1
    }
    best_e=$(min "$best_e" "$(secs "$t0" "$t1")")
    once=$(echo "$e_line" | sed -n 's/.* s, \([0-9]*\) records\/s.*/\1/p')
    [ "$once" -gt "$best_once" ] && best_once=$once
done

rate=$(awk -v n="$orders" -v s="$best_e" 'BEGIN { printf "%.0f", n / s }')
echo "SUMMARY bench=kafka_e2e orders=$orders partitions=$partitions workers=$workers" \
    "seconds=$best_e rate=$rate kcat_seconds=$best_k ceiling_seconds=$best_c" \
    "ratio_kcat=$(ratio "$best_k" "$best_e") ratio_ceiling=$(ratio "$best_c" "$best_e")" \
    "once_rate=$best_once bytes=$bytes runs=$runs"
