#!/bin/sh
# Runs the end-to-end tests (tests/e2e/test_*.py) against the binaries in
# $OP_BIN (default bin/). Each test starts and stops its own redis-server,
# dev broker, engine and simulator, so tests/e2e/parallel.py runs
# OP_E2E_JOBS (default 2) of them at once. Pass test names to run a subset,
# e.g.  tests/run_e2e.sh test_sim test_api.ApiAgainstTruth
# OP_E2E_JOBS=1 runs them one after the other.
set -eu
cd "$(dirname "$0")/e2e"
exec python3 parallel.py "$@"
