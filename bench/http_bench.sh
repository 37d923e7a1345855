#!/bin/sh
# The HTTP API under load, next to its ceiling: h2load against the engine's
# /api/v1/snapshot, then against Debian's h2o server serving a static file of
# the same bytes, both over h2c with prior knowledge (h2load's default for
# http://), one server thread each, the same h2load parameters.
#
#   bench/http_bench.sh [ORDERS] [REQUESTS]     (defaults: 200000 orders, 200000 requests)
#
# Prints the two h2load runs and one line:
#   SUMMARY bench=http_snapshot bytes=... rate=... ceiling=h2o_static ceiling_rate=...
#           ratio=... p50_ms=... p99_ms=... ceiling_p50_ms=... ceiling_p99_ms=...
# Latency percentiles come from h2load --log-file (one line per request:
# start time, status, duration in microseconds). Every process it starts is
# stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
orders=${1:-200000}
requests=${2:-200000}
bin=${OP_BIN:-bin}
clients=16
streams=32
h2o=$(command -v h2o || echo /usr/sbin/h2o)

work=$(mktemp -d /tmp/op-http-bench.XXXXXX)
chmod 755 "$work" # h2o drops privileges to nobody when started as root
engine_pid=
h2o_pid=
cleanup() {
    stop_pids $engine_pid $h2o_pid
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# h2load's log: the 50th and 99th percentile of the third column (us), in ms.
percentiles() {
    cut -f3 "$1" | sort -n | awk '{ d[NR] = $1 }
        END { i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999);
              printf "%.3f %.3f", d[i50] / 1000, d[i99] / 1000 }'
}

run_h2load() { # url logfile -> prints rate
    x h2load -c $clients -m $streams -n "$requests" --log-file "$2" "$1" >"$2.out" 2>&1
    cat "$2.out" >&2
    grep -q "$requests succeeded" "$2.out" || { echo "http_bench: h2load failed on $1" >&2; exit 1; }
    sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$2.out"
}

# --- the engine, serving a settled snapshot
x "$bin/orderpulse-sim" --out "$work/orders.jsonl" --rate 0 --count "$orders" --seed 11 --zipf 1.1 \
    --start 2024-11-11T00:00:00 --jitter 2s --quiet 2>/dev/null
port=$(free_port)
xbg "$bin/orderpulse" --source "file:$work/orders.jsonl" --workers 1 --tick 1s \
    --http "127.0.0.1:$port" --http-threads 1 2>"$work/engine.err"
engine_pid=$!
settled() {
    curl -sf "http://127.0.0.1:$port/api/v1/totals" | grep -q "\"orders\":$orders,"
}
note "until curl -sf http://127.0.0.1:$port/api/v1/totals | grep -q '\"orders\":$orders,'; do sleep 0.1; done"
wait_for 120 settled
url="http://127.0.0.1:$port/api/v1/snapshot"
x curl -sf --http2-prior-knowledge -o "$work/snapshot.json" "$url"
bytes=$(stat -c %s "$work/snapshot.json")

# --- the ceiling: h2o serving the same bytes as a file
mkdir "$work/static"
cp "$work/snapshot.json" "$work/static/snapshot.json"
chmod 755 "$work/static"
chmod 644 "$work/static/snapshot.json"
h2o_port=$(free_port)
cat >"$work/h2o.conf" <<EOF
listen:
  host: 127.0.0.1
  port: $h2o_port
num-threads: 1
hosts:
  default:
    paths:
      /:
        file.dir: $work/static
access-log: /dev/null
EOF
note "cat > $work/h2o.conf    # listen 127.0.0.1:$h2o_port, num-threads: 1, file.dir: $work/static, access-log: /dev/null"
xbg "$h2o" -c "$work/h2o.conf" >"$work/h2o.err" 2>&1
h2o_pid=$!
note "until curl -sf --http2-prior-knowledge -o /dev/null http://127.0.0.1:$h2o_port/snapshot.json; do sleep 0.1; done"
wait_for 30 curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$h2o_port/snapshot.json"

echo "== orderpulse $url ($bytes bytes)" >&2
rate=$(run_h2load "$url" "$work/engine.log")
echo "== h2o static file, same bytes" >&2
ceiling=$(run_h2load "http://127.0.0.1:$h2o_port/snapshot.json" "$work/h2o.log")

set -- $(percentiles "$work/engine.log")
p50=$1 p99=$2
set -- $(percentiles "$work/h2o.log")
c50=$1 c99=$2
ratio=$(awk -v a="$rate" -v b="$ceiling" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
echo "SUMMARY bench=http_snapshot bytes=$bytes clients=$clients streams=$streams requests=$requests" \
    "rate=$rate ceiling=h2o_static ceiling_rate=$ceiling ratio=$ratio p50_ms=$p50 p99_ms=$p99" \
    "ceiling_p50_ms=$c50 ceiling_p99_ms=$c99"
