#!/bin/sh
# Runs the parser fuzzer for SECONDS on a scratch copy of the seed corpus and
# prints libFuzzer's execution count. A finding leaves a crash-* file in
# build/fuzz/ and fails the run.
set -eu
bin=$1
seconds=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$top/build/fuzz/corpus
mkdir -p "$work"
cp -n "$top"/tests/fuzz/seeds/* "$work"/ 2>/dev/null || true
log=$top/build/fuzz/last-run.log
if ! "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$top/build/fuzz/" \
        -dict="$top/tests/fuzz/order.dict" "$work" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: FAILED (see $log)" >&2
    exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz: ${seconds}s, ${runs:-?} executions, no finding"
