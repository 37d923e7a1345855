#!/bin/sh
# make profile: the engine's hot path under perf, at low and at high user
# cardinality. Builds with frame pointers (VARIANT=profile), replays each
# stream with --once under `perf record -g` and prints, per stream, the split
# of samples between threads (the worker(s) against the merger) and the top
# functions; the full call graphs are left in build/profile/. (Debian 12
# packages no flame-graph tool; feed build/profile/*.data to one if you have
# it.) The VM exposes no hardware counters, so these are cpu-clock samples.
#
#   tools/profile.sh [ORDERS] [WORKERS]      (defaults: 2000000 orders, 1 worker)
#
# The streams are the benchmark's (bench/run.sh): 100 K users Zipf 1.1 and
# 2 M users uniform, every simulator flag explicit.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
orders=${1:-2000000}
workers=${2:-1}
out=build/profile
mkdir -p $out
SIM_FLAGS="--rate 0 --seed 7 --start 2024-11-11T00:00:00 --jitter 2s --time-field both
    --timezone +08:00 --genders 男:0.5,女:0.5 --late-fraction 0 --bad-fraction 0 --quiet"

for card in low high; do
    data=$out/orders-$orders-$card.jsonl
    if [ ! -s "$data" ]; then
        case $card in
        low) users="--users 100000 --zipf 1.1" ;;
        *) users="--users 2000000 --zipf 0" ;;
        esac
        # shellcheck disable=SC2086
        bin/orderpulse-sim --out "$data" --count "$orders" $users $SIM_FLAGS
    fi
    perf record -q -g --call-graph fp -F 4000 -o $out/perf-$card.data \
        $out/bin/orderpulse --source file:"$data" --once --workers "$workers" --redis none \
        > /dev/null 2> $out/once-$card.txt
    echo "== $card cardinality: $(tail -1 $out/once-$card.txt)"
    echo "samples by thread (the workers are the busiest; the merger merges at each"
    echo "tick and once more at the end, when it is the only thread left running):"
    perf report -i $out/perf-$card.data --no-children --stdio --sort pid -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -5
    perf report -i $out/perf-$card.data --no-children --stdio --percent-limit 0.5 -g none \
        --sort sym 2>/dev/null | grep -E '^ +[0-9]' > $out/top-$card.txt
    perf report -i $out/perf-$card.data --children --stdio --percent-limit 2 \
        -g caller,0.5,callee 2>/dev/null > $out/callgraph-$card.txt
    echo "top functions (self time), $orders orders, $workers worker(s):"
    head -20 $out/top-$card.txt
    echo
done
echo "call graphs: $out/callgraph-low.txt $out/callgraph-high.txt   raw: $out/perf-*.data"
