"""Runs the end-to-end tests on OP_E2E_JOBS processes at once (default 2).

Why: most of an end-to-end test's time is spent waiting -- a stream paced at
5 000 orders/s, a session timeout, a frozen Redis -- with the CPU nearly idle,
so two of them side by side take half the wall time of one after the other.
Every test already starts its own servers on free loopback ports in its own
temporary directory, so they do not share anything but the CPU.

A unit of work is one test class when it has a setUpClass (its fixture is
shared by its methods), else one test method. Units run longest first, with
the times of the last run (build/e2e-durations.json) -- the longest ones
started last would otherwise set the end. Each unit's output is printed whole
when it ends; the exit status is non-zero if any unit failed.

    python3 parallel.py                      # every test_*.py
    python3 parallel.py test_redis test_api.ApiAgainstTruth
"""

import json
import os
import subprocess
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
DURATIONS = os.path.join(HERE, "..", "..", "build", "e2e-durations.json")


def leaves(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from leaves(t)
        else:
            yield t


def units(names):
    loader = unittest.TestLoader()
    if names:
        suite = unittest.TestSuite(loader.loadTestsFromName(n) for n in names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py")
    out = []
    for t in leaves(suite):
        if isinstance(t, unittest.loader._FailedTest):
            raise SystemExit(f"parallel.py: cannot load {t.id()}: {t._exception}")
        cls = type(t)
        if "setUpClass" in cls.__dict__:
            unit = f"{cls.__module__}.{cls.__qualname__}"
        else:
            unit = t.id()
        if unit not in out:
            out.append(unit)
    return out


def run(unit):
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "unittest", "-v", unit], cwd=HERE,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return unit, p.returncode, p.stdout.decode(errors="replace"), time.monotonic() - start


def main():
    jobs = int(os.environ.get("OP_E2E_JOBS", "2"))
    todo = units(sys.argv[1:])
    try:
        with open(DURATIONS) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    # Unknown units first: they may be long, and a short one costs little there.
    todo.sort(key=lambda u: -known.get(u, 1e9))
    print(f"{len(todo)} units on {jobs} processes", flush=True)
    failed, start = [], time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done in as_completed([pool.submit(run, u) for u in todo]):
            unit, rc, text, secs = done.result()
            known[unit] = round(secs, 1)
            sys.stdout.write(text)
            print(f"--- {unit}: {'ok' if rc == 0 else 'FAILED'} in {secs:.1f} s", flush=True)
            if rc != 0:
                failed.append(unit)
    try:
        os.makedirs(os.path.dirname(DURATIONS), exist_ok=True)
        with open(DURATIONS, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
    except OSError:
        pass
    print(f"{len(todo)} units in {time.monotonic() - start:.0f} s; "
          f"{len(failed)} failed{': ' + ' '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
