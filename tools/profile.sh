#!/bin/sh
# make profile: the engine's hot path under perf. Builds with frame pointers
# (VARIANT=profile), replays a simulator file with --once on one worker under
# `perf record -g`, and prints the top functions; the full call-graph report
# is left in build/profile/. (Debian 12 packages no flame-graph tool; feed
# build/profile/perf.data to one if you have it.)
#
#   tools/profile.sh [ORDERS] [WORKERS]      (defaults: 1000000 orders, 1 worker)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
orders=${1:-1000000}
workers=${2:-1}
out=build/profile
data=$out/orders-$orders.jsonl
mkdir -p $out
[ -s "$data" ] || bin/orderpulse-sim --out "$data" --rate 0 --count "$orders" --seed 7 --zipf 1.1 \
    --start 2024-11-11T00:00:00 --jitter 2s --quiet
perf record -q -g --call-graph fp -o $out/perf.data \
    $out/bin/orderpulse --source file:"$data" --once --workers "$workers" --redis none \
    > /dev/null 2> $out/once.txt
cat $out/once.txt
perf report -i $out/perf.data --no-children --stdio --percent-limit 0.5 -g none 2>/dev/null |
    grep -E '^ +[0-9]' > $out/top.txt
perf report -i $out/perf.data --children --stdio --percent-limit 2 -g caller,0.5,callee 2>/dev/null \
    > $out/callgraph.txt
echo
echo "top functions (self time), $orders orders, $workers worker(s):"
head -25 $out/top.txt
echo
echo "call graph: $out/callgraph.txt   raw data: $out/perf.data"
