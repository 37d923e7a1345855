#!/bin/sh
# Redis high availability (docs/REDIS.md "Sentinel and Cluster", issue #14):
#
#   bench/redis_ha.sh      (bench/run.sh runs it)
#
# 1. --redis-min-replicas 1 (WAIT after each commit) against 0, on a primary
#    with one replica: 400 commits of 1 000 users each through the engine's
#    sink (bench/redis_bench commits), the time a commit takes;
# 2. failovers: the end-to-end tests that kill -9 the primary under Sentinel
#    (3 kills) and in a Redis Cluster (after a slot migration), exact against
#    the simulator's truth; their SUMMARY lines give the time from the kill
#    to the next commit next to the time until Sentinel (the cluster) named
#    the new primary -- the ceiling: no client can commit sooner.
# One SUMMARY line each. Every process is stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
B=build/bench
mkdir -p $B
ppid_= rpid=
cleanup() { stop_pids $rpid $ppid_; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. WAIT ---------------------------------------------------------------------
pport=$(free_port)
rport=$(free_port)
mkdir -p $B/ha-primary $B/ha-replica
xbg redis-server --port "$pport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir $B/ha-primary > /dev/null
ppid_=$!
xbg redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir $B/ha-replica --replicaof 127.0.0.1 "$pport" > /dev/null
rpid=$!
note "until redis-cli -p REPLICA info replication | grep master_link_status:up; do sleep 0.1; done"
wait_for 20 sh -c "redis-cli -p $rport info replication | grep -q master_link_status:up"

# 400 commits of 1 000 users each (a 200 ms tick at 5 000 orders/s), through
# the sink, one after the other; WAIT and not alternating, best of 3.
percommit() { # min-replicas -> ms a commit
    redis-cli -p "$pport" flushall > /dev/null
    x $B/redis_bench commits "$pport" 400 1000 "$1" | sed -n 's/.* ms_per_commit=\([0-9.]*\).*/\1/p'
}
lower() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a ? b : a) }'; }
ms0= ms1=
for _ in 1 2 3; do
    ms0=$(lower "$ms0" "$(percommit 0)")
    ms1=$(lower "$ms1" "$(percommit 1)")
done
echo "SUMMARY bench=redis_wait users_per_commit=1000 commits=400 min_replicas=1" \
    "ms_per_commit=$ms1 ceiling_ms_per_commit=$ms0 ratio=$(ratio "$ms0" "$ms1")" \
    "extra_ms_per_commit=$(awk -v a="$ms0" -v b="$ms1" 'BEGIN { printf "%.3f", b - a }')"
cleanup
ppid_= rpid=

# --- 2. failovers, by the end-to-end tests ----------------------------------------
: > $B/ha.txt
OP_HA_REPORT=$top/$B/ha.txt x tests/run_e2e.sh \
    test_redis_ha.SentinelFailover.test_primary_kills_at_random_moments \
    test_redis_ha.ClusterHA.test_moved_migration_and_failover > $B/ha-tests.out 2>&1 ||
    { tail -40 $B/ha-tests.out >&2; exit 1; }
cat $B/ha.txt
