#!/bin/sh
# Runs every Criterion unit-test binary in the given directory and fails if
# any of them fails. Criterion runs each test case in its own process.
set -u
dir=${1:-build/tests}
status=0
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    printf '%s\n' "== $(basename "$t")"
    "$t" --jobs=2 || { echo "FAILED: $t"; status=1; }
done
exit $status
