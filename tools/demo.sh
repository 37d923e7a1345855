#!/usr/bin/env bash
# make demo: Redis, the dev broker, the engine and the simulator, on this
# machine, until Ctrl-C. Prints the dashboard URL. Logs go to build/demo/.
# If the engine or the simulator exits meanwhile, it says so at once (the
# dashboard shows the engine as down too) and the rest keeps running.
#
#   BROKERS=host:port   use this Kafka instead of starting the dev broker
#   REDIS=host:port     use this Redis instead of starting one (own temp dir, free port)
#   DEMO_HTTP_PORT (8080)  DEMO_RATE (2000 orders/s)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
http_port=${DEMO_HTTP_PORT:-8080}
brokers=${BROKERS:-}
redis=${REDIS:-}
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
    [ -n "${redis_dir:-}" ] && rm -rf "$redis_dir"
    exit 0
}
trap stop INT TERM EXIT

port_busy() { (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if port_busy "$http_port"; then
    echo "demo: port $http_port is in use (set DEMO_HTTP_PORT)" >&2
    exit 1
fi

if [ -z "$redis" ]; then
    redis_port=$(free_port)
    redis_dir=$(mktemp -d /tmp/orderpulse-demo-redis.XXXXXX)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' \
        --appendonly no > $logs/redis.log 2>&1 &
    pids="$pids $!"
    redis=127.0.0.1:$redis_port
    i=0
    until redis-cli -p "$redis_port" ping > /dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "demo: redis-server did not start (see $logs/redis.log)" >&2; exit 1; }
        sleep 0.1
    done
fi

if [ -z "$brokers" ]; then
    rm -f $logs/devbroker.out
    bin/orderpulse-devbroker --partitions 8 > $logs/devbroker.out 2> $logs/devbroker.log &
    pids="$pids $!"
    i=0
    while [ ! -s $logs/devbroker.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    brokers=$(head -1 $logs/devbroker.out)
    [ -n "$brokers" ] || { echo "demo: the dev broker did not start (see $logs/devbroker.log)" >&2; exit 1; }
fi

engine_cmd="bin/orderpulse --brokers $brokers --topic orders --group demo --redis $redis --http 0.0.0.0:$http_port --dead-letter $logs/dead-letters.jsonl"
$engine_cmd > $logs/engine.log 2>&1 &
engine_pid=$!
pids="$pids $engine_pid"

bin/orderpulse-sim --brokers "$brokers" --topic orders --rate "$rate" --duration 1d \
    --jitter 2s --late-fraction 0.01 --bad-fraction 0.002 --quiet > $logs/sim.log 2>&1 &
sim_pid=$!
pids="$pids $sim_pid"

i=0
until curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "demo: the engine did not start (see $logs/engine.log)" >&2; exit 1; }
    sleep 0.1
done

cat <<MSG

  orderpulse demo is running: $rate orders/s from the simulator
  through Kafka at $brokers into the engine, Redis at $redis.

  Dashboard:  http://localhost:$http_port/
  API:        http://localhost:$http_port/api/v1/snapshot   (curl --http2-prior-knowledge works too)
  Metrics:    http://localhost:$http_port/metrics
  Redis:      redis-cli -h ${redis%:*} -p ${redis##*:} hgetall '{op}:totals'
  Logs:       $logs/

  Ctrl-C stops everything.
MSG

# Watch the engine and the simulator: a process that exits is reported once,
# with its status and the end of its log.
exited() {
    local what=$1 pid=$2 log=$3 status=0
    wait "$pid" || status=$?
    echo >&2
    echo "demo: $(date +%T) the $what (pid $pid) exited with status $status; end of $log:" >&2
    tail -n 5 "$log" | sed 's/^/    /' >&2
}
engine_up=1
sim_up=1
while :; do
    sleep 1
    if [ $engine_up = 1 ] && ! kill -0 "$engine_pid" 2>/dev/null; then
        engine_up=0
        exited engine "$engine_pid" $logs/engine.log
        echo "demo: the dashboard shows the engine as down; the simulator keeps producing into" >&2
        echo "      Kafka, and a restarted engine resumes from Redis:  $engine_cmd" >&2
    fi
    if [ $sim_up = 1 ] && ! kill -0 "$sim_pid" 2>/dev/null; then
        sim_up=0
        exited simulator "$sim_pid" $logs/sim.log
        echo "demo: no new orders arrive; the figures stay as they are" >&2
    fi
done
