#!/usr/bin/env bash
# make demo: Redis, the dev broker, the engine and the simulator, on this
# machine, until Ctrl-C. Prints the dashboard URL. Logs go to build/demo/.
#
#   DEMO_HTTP_PORT (8080)  DEMO_REDIS_PORT (6390)  DEMO_RATE (2000 orders/s)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
http_port=${DEMO_HTTP_PORT:-8080}
redis_port=${DEMO_REDIS_PORT:-6390}
rate=${DEMO_RATE:-2000}
logs=build/demo
mkdir -p $logs
pids=""

stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping"
    # Producers first, the broker and Redis last, each waited for, so that
    # nobody spends its shutdown retrying a peer that is already gone.
    for p in $(echo $pids | tr ' ' '\n' | tac); do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    exit 0
}
trap stop INT TERM EXIT

port_busy() { (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
for p in $http_port $redis_port; do
    if port_busy "$p"; then
        echo "demo: port $p is in use (set DEMO_HTTP_PORT / DEMO_REDIS_PORT)" >&2
        exit 1
    fi
done

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    > $logs/redis.log 2>&1 &
pids="$pids $!"

rm -f $logs/devbroker.out
bin/orderpulse-devbroker --partitions 8 > $logs/devbroker.out 2> $logs/devbroker.log &
pids="$pids $!"
i=0
while [ ! -s $logs/devbroker.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
brokers=$(head -1 $logs/devbroker.out)
[ -n "$brokers" ] || { echo "demo: the dev broker did not start (see $logs/devbroker.log)" >&2; exit 1; }

bin/orderpulse --brokers "$brokers" --topic orders --group demo \
    --redis 127.0.0.1:"$redis_port" --http 0.0.0.0:"$http_port" \
    --dead-letter $logs/dead-letters.jsonl > $logs/engine.log 2>&1 &
pids="$pids $!"

bin/orderpulse-sim --brokers "$brokers" --topic orders --rate "$rate" --duration 1d \
    --jitter 2s --late-fraction 0.01 --bad-fraction 0.002 --quiet > $logs/sim.log 2>&1 &
pids="$pids $!"

i=0
until curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "demo: the engine did not start (see $logs/engine.log)" >&2; exit 1; }
    sleep 0.1
done

cat <<MSG

  orderpulse demo is running: $rate orders/s through the dev broker.

  Dashboard:  http://localhost:$http_port/
  API:        http://localhost:$http_port/api/v1/snapshot   (curl --http2-prior-knowledge works too)
  Metrics:    http://localhost:$http_port/metrics
  Redis:      redis-cli -p $redis_port hgetall '{op}:totals'
  Logs:       $logs/

  Ctrl-C stops everything.
MSG
wait
