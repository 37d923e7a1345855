#!/bin/sh
# Runs the end-to-end tests (tests/e2e/test_*.py) against the binaries in
# $OP_BIN (default bin/). Each test starts and stops its own redis-server,
# dev broker, engine and simulator. Pass test names to run a subset, e.g.
#   tests/run_e2e.sh test_sim
set -eu
cd "$(dirname "$0")/e2e"
if [ $# -gt 0 ]; then
    exec python3 -m unittest -v "$@"
fi
exec python3 -m unittest discover -v -s . -p 'test_*.py'
