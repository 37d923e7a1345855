#!/bin/sh
# Kafka end to end: the engine's --once over a topic of the dev broker, next
# to its ceiling, a bare librdkafka consumer (build/bench/kafka_ceiling, the
# engine's consumer properties, no parsing) reading the same topic.
#
#   bench/kafka_bench.sh [ORDERS] [RUNS]      (defaults: 300000 orders, best of 3)
#
# The dev broker (librdkafka's mock cluster) keeps only about the last 5 MB
# of each partition, so the orders are produced first and sized to fit:
# lz4 batches of the simulator take ~66 bytes an order on the broker, and
# keyed by user (Zipf 1.1) the largest of the 8 partitions gets ~22 % of
# them: 300 000 orders put ~4.3 MB there. The ceiling checks that the log
# start of every partition is still 0 and that it read every order; the
# engine's count is checked too, so a trimmed log fails the benchmark
# instead of flattering it.
#
# The engine resumes from its group's committed offsets when there is no
# Redis, so every engine run uses a group of its own. Ceiling and engine
# runs alternate (the machine is shared and noisy), best of RUNS each.
#
# Prints:
#   SUMMARY bench=kafka_ceiling ...    (every ceiling run)
#   SUMMARY bench=kafka_e2e orders=... workers=2 rate=... ceiling=librdkafka_consumer
#           ceiling_rate=... ratio=... bytes=... partitions=8
# Every process it starts is stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
orders=${1:-300000}
runs=${2:-3}
bin=${OP_BIN:-bin}
workers=2

work=$(mktemp -d /tmp/op-kafka-bench.XXXXXX)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_devbroker "$work" --partitions 8
x "$bin/orderpulse-sim" --brokers "$brokers" --rate 0 --count "$orders" --seed 7 --zipf 1.1 --quiet \
    2>"$work/sim.err" || { cat "$work/sim.err" >&2; exit 1; }
grep -q "delivered=$orders errors=0" "$work/sim.err" || {
    echo "kafka_bench: the simulator did not deliver $orders orders:" >&2
    cat "$work/sim.err" >&2
    exit 1
}

best_c=0 best_e=0 bytes=0
for i in $(seq 1 "$runs"); do
    c_line=$(x build/bench/kafka_ceiling "$brokers" orders "$orders")
    echo "$c_line"
    echo "$c_line" | grep -q ' low_min=0$' || { echo "kafka_bench: the broker dropped the start of a partition" >&2; exit 1; }
    c=$(echo "$c_line" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
    bytes=$(echo "$c_line" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p')
    [ "$c" -gt "$best_c" ] && best_c=$c

    x "$bin/orderpulse" --brokers "$brokers" --topic orders --group "bench-$i" --once \
        --workers $workers --redis none 2>"$work/engine.err" >/dev/null
    e_line=$(grep ' once: ' "$work/engine.err")
    echo "$e_line" >&2
    echo "$e_line" | grep -q "once: $orders records ($orders orders" || {
        echo "kafka_bench: the engine did not read $orders orders" >&2
        exit 1
    }
    e=$(echo "$e_line" | sed -n 's/.* s, \([0-9]*\) records\/s.*/\1/p')
    [ "$e" -gt "$best_e" ] && best_e=$e
done

echo "SUMMARY bench=kafka_e2e orders=$orders workers=$workers rate=$best_e" \
    "ceiling=librdkafka_consumer ceiling_rate=$best_c ratio=$(ratio "$best_e" "$best_c")" \
    "bytes=$bytes partitions=8 runs=$runs"
