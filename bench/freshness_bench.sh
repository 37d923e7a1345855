#!/bin/sh
# Freshness: how long after an order is produced it is visible in the API.
# The dev broker, the engine consuming live (consumer group, --tick TICK_MS,
# --lateness 0, --redis none, HTTP on loopback), the simulator producing on
# the live clock at RATE, and bench/freshness.py polling /api/v1/snapshot
# every 10 ms (the method, and why it is sound, is in freshness.py's header).
#
#   bench/freshness_bench.sh [SECONDS] [RATE] [TICK_MS]
#                            (defaults: 12 s at 200 000 orders/s, 100 ms ticks)
#
# The first 2 s of the stream are a warm-up and not counted; the window
# must hold at least 20 ticks (20 samples of the tick's phase). --redis none:
# snapshots are published every tick whatever Redis does (DESIGN §4, revised),
# so Redis is not on this path.
# The context (ceiling) is the tick itself: with zero pipeline delay an
# order still waits for the next snapshot, uniformly 0..tick, i.e. p50 =
# tick/2 and p99 = 0.99 tick.
#
# Prints:
#   SUMMARY bench=freshness ticks=... orders=... p50_ms=... p99_ms=... max_ms=...
#           pipeline_p50_ms=... pipeline_max_ms=... publish_p50_ms=... tick_ms=...
#           ratio_p50=... ratio_p99=... rate=...
# Every process it starts is stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
seconds=${1:-12}
rate=${2:-200000}
tick_ms=${3:-100}
bin=${OP_BIN:-bin}
count=$((seconds * rate))

work=$(mktemp -d /tmp/op-fresh-bench.XXXXXX)
broker_pid=
engine_pid=
poll_pid=
cleanup() {
    stop_pids $poll_pid $engine_pid $broker_pid
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_devbroker "$work" --partitions 8
port=$(free_port)
set -- "$bin/orderpulse" --brokers "$brokers" --topic orders --group freshness --workers 2 \
    --tick "${tick_ms}ms" --lateness 0s --redis none --http "127.0.0.1:$port" --http-threads 1
note "$(quote "$@") 2> engine.err &"
"$@" 2>"$work/engine.err" >/dev/null &
engine_pid=$!
assigned() { grep -q 'assigned 8 partition' "$work/engine.err"; }
ready() { curl -sf "http://127.0.0.1:$port/readyz"; }
note "until grep -q 'assigned 8 partition' engine.err && curl -sf http://127.0.0.1:$port/readyz; do sleep 0.1; done"
wait_for 60 assigned || { cat "$work/engine.err" >&2; exit 1; }
wait_for 30 ready || { cat "$work/engine.err" >&2; exit 1; }

xbg python3 bench/freshness.py poll "http://127.0.0.1:$port/api/v1/snapshot" "$work/ticks.tsv" \
    "$count" $((seconds + 60))
poll_pid=$!
x "$bin/orderpulse-sim" --brokers "$brokers" --rate "$rate" --count "$count" --zipf 1.1 --quiet \
    2>"$work/sim.err" || { cat "$work/sim.err" >&2; exit 1; }
grep -q "delivered=$count errors=0" "$work/sim.err" || { cat "$work/sim.err" >&2; exit 1; }
wait "$poll_pid" || { echo "freshness_bench: the engine never showed $count orders" >&2; exit 1; }
poll_pid=
mkdir -p build/bench
cp "$work/ticks.tsv" build/bench/freshness-ticks.tsv # kept for a closer look
x python3 bench/freshness.py analyze build/bench/freshness-ticks.tsv "$tick_ms" 2000 "$rate"
