#!/bin/sh
# Fails when a C source differs from what clang-format (.clang-format) makes of it.
set -eu
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files -co --exclude-standard -- '*.c' '*.h' '*.cc'); do
    [ -f "$f" ] || continue
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then
        echo "check-format: $f is not formatted (run: make format)" >&2
        bad=1
    fi
done
exit $bad
