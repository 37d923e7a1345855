"""Test harness for orderpulse's end-to-end tests.

Starts the real parts a test needs -- redis-server on a free loopback port,
the dev broker (librdkafka's mock cluster), the engine, the simulator -- each
in its own process, and stops every one of them by its own pid when the test
ends, whatever the outcome. Standard library only.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OP_BIN", os.path.join(ROOT, "bin"))


def binary(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} is not built") if os.environ.get("OP_ALLOW_SKIP") else \
            FileNotFoundError(f"{path} is not built (run make)")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A child process owned by a test; stop() signals exactly this pid."""

    def __init__(self, argv, name=None, env=None, stdout=None, stderr=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.errfile = tempfile.NamedTemporaryFile(prefix=f"op-{self.name}-", suffix=".err",
                                                   delete=False)
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                  stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                  stderr=stderr if stderr is not None else self.errfile,
                                  env=full_env, cwd=cwd)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def wait(self, timeout):
        return self.p.wait(timeout=timeout)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.alive():
            try:
                os.kill(self.p.pid, signal.SIGCONT)  # a test may have frozen it
                os.kill(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()
            except ProcessLookupError:
                pass
        if self.p.stdout:
            self.p.stdout.close()
        return self.p.returncode

    def kill(self):
        if self.alive():
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()

    def stderr_text(self):
        self.errfile.flush()
        with open(self.errfile.name, "rb") as f:
            return f.read().decode("utf-8", "replace")


class E2ETest(unittest.TestCase):
    """Base class: tracks every process and temp dir a test makes and cleans up."""

    def setUp(self):
        self._procs = []
        self.tmp = tempfile.mkdtemp(prefix="op-e2e-")

    def tearDown(self):
        failed = any(err for _, err in getattr(self._outcome, "errors", []) if err) \
            if hasattr(self, "_outcome") else False
        for p in reversed(self._procs):
            p.stop()
            if failed or os.environ.get("OP_E2E_VERBOSE"):
                text = p.stderr_text()
                if text:
                    print(f"\n--- stderr of {p.name} (pid {p.pid}) ---\n{text[-4000:]}")
        subprocess.run(["rm", "-rf", self.tmp])

    def start(self, argv, **kw):
        p = Proc(argv, **kw)
        self._procs.append(p)
        return p

    def path(self, name):
        return os.path.join(self.tmp, name)

    # --- the real parts -----------------------------------------------------

    def start_devbroker(self, partitions=8, topics="orders"):
        p = self.start([binary("orderpulse-devbroker"), "--partitions", partitions,
                        "--topic", topics], stdout=subprocess.PIPE)
        line = p.p.stdout.readline().decode().strip()
        if not line:
            raise AssertionError("dev broker printed no bootstrap address:\n" + p.stderr_text())
        return p, line

    def start_redis(self, extra=()):
        port = free_port()
        d = self.path(f"redis-{port}")
        os.makedirs(d, exist_ok=True)
        p = self.start(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", d, *extra], name="redis-server",
                       stdout=subprocess.DEVNULL)
        wait_for(lambda: _redis_ping(port), 10, "redis-server to answer PING")
        return p, port

    def run_sim(self, args, timeout=300):
        """Runs the simulator to completion; returns its stderr text."""
        r = subprocess.run([binary("orderpulse-sim"), *map(str, args)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"orderpulse-sim {args} exited {r.returncode}:\n"
                                 + r.stderr.decode("utf-8", "replace")[-3000:])
        return r.stderr.decode("utf-8", "replace")


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"), parse_float=Decimal)


def cents(x):
    """Decimal amount -> integer cents, exactly (raises if not a whole cent)."""
    d = Decimal(x) * 100
    if d != d.to_integral_value():
        raise AssertionError(f"{x} is not a whole number of cents")
    return int(d)


# Members of the snapshot that depend on when and how the engine ran, not on
# the orders: left out of exact comparisons (checked separately where useful).
RUN_DEPENDENT = ("as_of", "tick", "watermark", "stats")
SHARE_KEYS = ("quantity_share", "amount_share")


def snapshot_diff(got, want, path="", out=None):
    """Lists every difference between two snapshot documents (parsed with
    Decimal floats), member by member. Amounts compare exactly; the share
    members to 1e-6 (they are ratios printed with six decimals)."""
    out = [] if out is None else out
    if isinstance(want, dict):
        if not isinstance(got, dict):
            out.append(f"{path}: want an object, got {type(got).__name__}")
            return out
        for k in sorted(set(want) | set(got)):
            if not path and k in RUN_DEPENDENT:
                continue
            if k not in got:
                out.append(f"{path}/{k}: missing")
            elif k not in want:
                out.append(f"{path}/{k}: unexpected member")
            elif k in SHARE_KEYS:
                if abs(Decimal(got[k]) - Decimal(want[k])) > Decimal("0.000001"):
                    out.append(f"{path}/{k}: got {got[k]}, want {want[k]}")
            else:
                snapshot_diff(got[k], want[k], f"{path}/{k}", out)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            n = len(got) if isinstance(got, list) else type(got).__name__
            out.append(f"{path}: want {len(want)} elements, got {n}")
            return out
        for i, (g, w) in enumerate(zip(got, want)):
            snapshot_diff(g, w, f"{path}[{i}]", out)
    elif got != want or type(got) is not type(want):
        out.append(f"{path}: got {got!r}, want {want!r}")
    return out
