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

    def __init__(self, argv, name=None, env=None, stdout=None, stderr=None, cwd=None, stdin=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.errfile = tempfile.NamedTemporaryFile(prefix=f"op-{self.name}-", suffix=".err",
                                                   delete=False)
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self.p = subprocess.Popen(self.argv,
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL,
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
        if self.p.stdin:
            self.p.stdin.close()
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

    def start_devbroker(self, partitions=8, topics="orders", control=False, brokers=1):
        """With control, the broker reads fault commands (DevbrokerControl)."""
        p = self.start([binary("orderpulse-devbroker"), "--partitions", partitions,
                        "--topic", topics, "--brokers", brokers,
                        *(["--control"] if control else [])], stdout=subprocess.PIPE,
                       stdin=subprocess.PIPE if control else None)
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


class DevbrokerControl:
    """Fault commands for a dev broker started with control=True (sim/mockctl.h):
    cmd("down all"), cmd("errors Fetch 20 NOT_LEADER_FOR_PARTITION"), ... Each
    command waits for the broker's answer and fails the test on an error."""

    def __init__(self, proc):
        self.proc = proc

    def cmd(self, line):
        self.proc.p.stdin.write((line + "\n").encode())
        self.proc.p.stdin.flush()
        reply = self.proc.p.stdout.readline().decode().strip()
        if reply != "ok":
            raise AssertionError(f"dev broker: {line}: {reply or 'no answer'}")


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith(b"+PONG") or b"NOAUTH" in reply  # up, wants AUTH
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
RUN_DEPENDENT = ("as_of", "tick", "watermark", "stats", "tick_ms", "display_timezone")
# A window's "state" (open / final / revised) depends on where the ticks fell
# while the orders arrived, not on the orders: left out here, checked
# exactly by test_windows.py.
WINDOW_STATE = "state"
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
        window = "minute" in want or "slot" in want
        for k in sorted(set(want) | set(got)):
            if (not path and k in RUN_DEPENDENT) or (window and k == WINDOW_STATE):
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


# --- a minimal Redis client (RESP2), so the tests need nothing outside the
# standard library ------------------------------------------------------------

class Redis:
    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def hgetall(self, key):
        r = self.call("HGETALL", key) or []
        return {r[i].decode(): int(r[i + 1]) for i in range(0, len(r), 2)}

    def keys(self, pattern):
        cursor, found = b"0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            found += [k.decode() for k in batch]
            if cursor == b"0":
                return found


def _amount(cents_value):
    return Decimal(cents_value) / 100


def redis_snapshot(port, prefix="{op}"):
    """The cumulative metrics as Redis holds them, in the snapshot document's
    shape (members that Redis keeps: no shares, no final flags)."""
    r = Redis(port)
    try:
        t = r.hgetall(f"{prefix}:totals")
        doc = {"totals": {"orders": t.get("orders", 0), "quantity": t.get("quantity", 0),
                          "amount": _amount(t.get("amount", 0))}}
        bq, ba, bo = (r.hgetall(f"{prefix}:brand:{k}") for k in "qao")
        doc["brands"] = sorted(({"name": n, "quantity": bq[n], "amount": _amount(ba.get(n, 0))}
                                for n in bq), key=lambda b: (-b["quantity"], b["name"].encode()))
        gq, ga = (r.hgetall(f"{prefix}:gender:{k}") for k in "qa")
        doc["gender"] = sorted(({"name": n, "quantity": gq[n], "amount": _amount(ga.get(n, 0))}
                                for n in gq), key=lambda g: (-g["amount"], g["name"].encode()))
        z = r.call("ZREVRANGE", f"{prefix}:users", 0, -1, "WITHSCORES")
        orders = r.hgetall(f"{prefix}:user:o")
        users = [(z[i].decode(), int(float(z[i + 1]))) for i in range(0, len(z), 2)]
        users.sort(key=lambda u: (-u[1], u[0].encode()))
        doc["top_users"] = [{"name": n, "amount": _amount(c), "orders": orders.get(n, 0)}
                            for n, c in users[:10]]
        minutes = []
        for k in r.keys(f"{prefix}:minute:*"):
            h = r.hgetall(k)
            minutes.append({"minute": int(k.rsplit(":", 1)[1]), "orders": h.get("orders", 0),
                            "quantity": h.get("quantity", 0),
                            "amount": _amount(h.get("amount", 0))})
        doc["minutes"] = sorted(minutes, key=lambda m: m["minute"])
        cats = []
        for k in r.keys(f"{prefix}:catmin:*"):
            h = r.hgetall(k)
            names = sorted({f.rsplit("\x1f", 1)[0] for f in h})
            ranking = [{"name": n, "quantity": h.get(n + "\x1fq", 0),
                        "amount": _amount(h.get(n + "\x1fa", 0))} for n in names]
            ranking.sort(key=lambda c: (-c["quantity"], c["name"].encode()))
            cats.append({"minute": int(k.rsplit(":", 1)[1]), "ranking": ranking})
        doc["categories"] = sorted(cats, key=lambda c: c["minute"])
        slots = []
        for k in r.keys(f"{prefix}:slot:*"):
            slots.append({"slot": int(k.rsplit(":", 1)[1]), "quantity": r.hgetall(k)})
        doc["gender_slots"] = sorted(slots, key=lambda s: s["slot"])
        doc["bad"] = t.get("bad", 0)
        return doc
    finally:
        r.close()


def truth_as_redis_holds_it(truth):
    """The truth document reduced to what redis_snapshot() can rebuild."""
    doc = {k: truth[k] for k in ("totals", "brands", "top_users", "categories",
                                 "gender_slots")}
    doc["minutes"] = [{k: v for k, v in m.items() if k != "final"} for m in truth["minutes"]]
    doc["gender"] = [{k: v for k, v in g.items() if k not in SHARE_KEYS}
                     for g in truth["gender"]]
    doc["bad"] = truth["stats"]["bad_records"]
    return doc
