"""Test harness for orderpulse's end-to-end tests.

Starts the real parts a test needs -- redis-server on a free loopback port,
the dev broker (librdkafka's mock cluster), the engine, the simulator -- each
in its own process, and stops every one of them by its own pid when the test
ends, whatever the outcome. Standard library only.
"""

import json
import os
import random
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


def free_cluster_port():
    """A free loopback port P whose cluster bus port P + 10000 is free too
    (Redis Cluster needs both, so P is at most 55535)."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 55535)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
                return port
        except OSError:
            continue
    raise AssertionError("no free port pair for a cluster node")


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
    """Base class: tracks every process and temp dir a test makes and cleans up
    (a failed test keeps its temp dir and its processes' stderr files, and
    says where)."""

    maxDiff = None  # a failed comparison shows all of what differs

    def setUp(self):
        self._procs = []
        self.tmp = tempfile.mkdtemp(prefix="op-e2e-")

    def _failed(self):
        """Did the test itself fail? (Python 3.11 dropped _outcome.errors:
        there the result has the failure already when tearDown runs.)"""
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "errors"):
            return any(err for _, err in outcome.errors if err)
        result = outcome.result
        return any(t is self for t, _ in result.failures + result.errors)

    def tearDown(self):
        failed = self._failed()
        keep = failed or os.environ.get("OP_E2E_KEEP")
        for p in reversed(self._procs):
            p.stop()
            if failed or os.environ.get("OP_E2E_VERBOSE"):
                text = p.stderr_text()
                if text:
                    print(f"\n--- stderr of {p.name} (pid {p.pid}), the last 4000 bytes; all of "
                          f"it in {p.errfile.name} ---\n{text[-4000:]}")
            p.errfile.close()
            if not keep:
                os.unlink(p.errfile.name)
        if keep:
            print(f"\n--- kept {self.tmp} ---")
        else:
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

    def start_redis(self, extra=(), port=None):
        """A redis-server on a free loopback port (or port: the same one again
        after a kill, with its own directory kept)."""
        port = port or free_port()
        d = self.path(f"redis-{port}")
        os.makedirs(d, exist_ok=True)
        p = self.start(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", d, "--logfile", "redis.log", *extra],
                       name=f"redis-server-{port}", stdout=subprocess.DEVNULL)
        wait_for(lambda: redis_ping(port) or not p.alive(), 10, "redis-server to answer PING")
        if not p.alive():
            raise AssertionError(f"redis-server on {port} exited:\n" + p.stderr_text()[-2000:])
        return p, port

    # --- Redis replication, Sentinel and Cluster (docs/REDIS.md) -------------

    def start_sentinels(self, master_port, name="opm", count=3, down_after_ms=1000,
                        failover_timeout_ms=3000, password=None, master_password=None):
        """count redis-sentinel processes watching the primary on master_port
        (quorum: a majority), each from its own writable config copy (Sentinel
        rewrites it). A Sentinel that voted in a failover starts none of its
        own for twice failover_timeout_ms; replicas are looked at every second
        (SENTINEL DEBUG info-period), not every ten. Returns [(proc, port)]."""
        out = []
        for _ in range(count):
            port = free_port()
            d = self.path(f"sentinel-{port}")
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {d}/sentinel.log\n"
                        f"sentinel monitor {name} 127.0.0.1 {master_port} {count // 2 + 1}\n"
                        f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                        f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
                        f"sentinel parallel-syncs {name} 1\n")
                if password:
                    f.write(f"requirepass {password}\n")
                if master_password:
                    f.write(f"sentinel auth-pass {name} {master_password}\n")
            p = self.start(["redis-sentinel", conf], name=f"redis-sentinel-{port}",
                           stdout=subprocess.DEVNULL)
            wait_for(lambda: redis_ping(port) or not p.alive(), 10, "redis-sentinel to answer")
            if not p.alive():
                raise AssertionError("redis-sentinel exited:\n" + p.stderr_text()[-2000:])
            r = Redis(port)
            if password:
                r.call("AUTH", password)
            r.call("SENTINEL", "DEBUG", "info-period", 1000)
            r.close()
            out.append((p, port))
        return out

    def start_cluster(self, masters=3, replicas=0, extra=()):
        """A Redis Cluster on loopback: masters primaries (each with replicas
        replicas), made by `redis-cli --cluster create`, each node started and
        stopped by its pid. Returns [(proc, port)]; restart_cluster_node
        starts one again with its node file."""
        nodes = []
        for _ in range(masters * (1 + replicas)):
            port = free_cluster_port()
            nodes.append(self.start_cluster_node(port, extra))
        r = subprocess.run(["redis-cli", "--cluster", "create",
                            *[f"127.0.0.1:{port}" for _, port in nodes],
                            "--cluster-replicas", str(replicas), "--cluster-yes"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n"
                                 + r.stdout.decode("utf-8", "replace")[-3000:])
        ports = [port for _, port in nodes]
        wait_for(lambda: all(cluster_ok(p, len(ports)) for p in ports), 30,
                 "every cluster node to say cluster_state:ok")
        return nodes

    def start_cluster_node(self, port, extra=()):
        d = self.path(f"redis-{port}")
        os.makedirs(d, exist_ok=True)
        p = self.start(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", d, "--logfile", "redis.log",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", 1000,
                        *extra], name=f"redis-cluster-{port}", stdout=subprocess.DEVNULL)
        wait_for(lambda: redis_ping(port) or not p.alive(), 10, "a cluster node to answer PING")
        if not p.alive():
            raise AssertionError(f"cluster node {port} exited:\n" + p.stderr_text()[-2000:])
        return p, port

    def start_mariadb(self, port=None, datadir=None, grants=False):
        """A throw-away mariadbd on a free loopback port with its own data
        directory (made on first use; pass the same datadir and port to
        start it again after a stop). Without grants anyone is root.
        Returns (proc, port, MariaDB client)."""
        port = port or free_port()
        d = datadir or self.path(f"mariadb-{port}")
        if not os.path.isdir(os.path.join(d, "mysql")):
            os.makedirs(d, exist_ok=True)
            r = subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={d}",
                                "--auth-root-authentication-method=normal", "--skip-test-db"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                raise AssertionError("mariadb-install-db failed:\n"
                                     + r.stdout.decode("utf-8", "replace")[-3000:])
        argv = ["mariadbd", "--user=root", f"--datadir={d}", f"--port={port}",
                "--bind-address=127.0.0.1", f"--socket={d}/sock", "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M"]
        if not grants:
            argv.append("--skip-grant-tables")
        p = self.start(argv, name="mariadbd")
        db = MariaDB(port)
        wait_for(lambda: db.ping() or not p.alive(), 30, "mariadbd to answer")
        if not p.alive():
            raise AssertionError("mariadbd exited:\n" + p.stderr_text()[-3000:])
        return p, port, db

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


def redis_info(port, section="replication"):
    """INFO section as a dict (empty when the server does not answer)."""
    try:
        r = Redis(port, timeout=2)
        try:
            text = r.call("INFO", section).decode()
        finally:
            r.close()
    except (OSError, ConnectionError, RuntimeError):
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def sentinel_primary(sentinel_port, name="opm", password=None):
    """The port of the primary Sentinel names now (None if it does not answer)."""
    try:
        r = Redis(sentinel_port, timeout=2)
        try:
            if password:
                r.call("AUTH", password)
            v = r.call("SENTINEL", "get-master-addr-by-name", name)
        finally:
            r.close()
    except (OSError, ConnectionError, RuntimeError):
        return None
    return int(v[1]) if v else None


def sentinel_replicas_ok(sentinel_port, name="opm"):
    """Ports of the replicas Sentinel would promote now: reachable, their
    link to the primary up, their priority not 0."""
    try:
        r = Redis(sentinel_port, timeout=2)
        try:
            rows = r.call("SENTINEL", "replicas", name) or []
        finally:
            r.close()
    except (OSError, ConnectionError, RuntimeError):
        return []
    ok = []
    for row in rows:
        d = {_str(row[i]): _str(row[i + 1]) for i in range(0, len(row), 2)}
        flags = d.get("flags", "").split(",")
        if "s_down" not in flags and "disconnected" not in flags and \
                d.get("master-link-status") == "ok" and d.get("slave-priority") != "0":
            ok.append(int(d["port"]))
    return ok


def cluster_ok(port, nodes=None):
    """CLUSTER INFO on port says the cluster is up (and knows nodes nodes)."""
    try:
        r = Redis(port, timeout=2)
        try:
            text = r.call("CLUSTER", "INFO").decode()
        finally:
            r.close()
    except (OSError, ConnectionError, RuntimeError):
        return False
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return info.get("cluster_state") == "ok" and \
        (nodes is None or int(info.get("cluster_known_nodes", 0)) == nodes)


def cluster_slots(ports):
    """{slot range: (primary port, [replica ports])} from the first node of
    ports that answers CLUSTER SLOTS (its RESP reply, not redis-cli's text)."""
    for port in ports:
        try:
            r = Redis(port, timeout=2)
            try:
                rows = r.call("CLUSTER", "SLOTS")
            finally:
                r.close()
        except (OSError, ConnectionError, RuntimeError):
            continue
        return {(row[0], row[1]): (row[2][1], [n[1] for n in row[3:]]) for row in rows}
    return {}


def cluster_owner(ports, slot):
    """The port of the primary serving slot, as the first answering node says."""
    for (lo, hi), (primary, _) in cluster_slots(ports).items():
        if lo <= slot <= hi:
            return primary
    return None


def cluster_node_id(port):
    r = Redis(port)
    try:
        return _str(r.call("CLUSTER", "MYID"))
    finally:
        r.close()


def migrate_slot(ports, slot, src, dst, batch=10, pause=0.0):
    """Moves slot from the primary on src to the one on dst by hand, the way
    `redis-cli --cluster reshard` does (IMPORTING, MIGRATING, MIGRATE a few
    keys at a time, then NODE everywhere), pausing between batches so that a
    client meets the slot half migrated (ASK, TRYAGAIN). Returns the keys
    moved."""
    sid, did = cluster_node_id(src), cluster_node_id(dst)
    s, d = Redis(src), Redis(dst)
    moved = 0
    try:
        d.call("CLUSTER", "SETSLOT", slot, "IMPORTING", sid)
        s.call("CLUSTER", "SETSLOT", slot, "MIGRATING", did)
        while True:
            keys = s.call("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            s.call("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if pause:
                time.sleep(pause)
        # The importing node first, then the one it came from (as redis-cli
        # does): no client is sent back and forth in between.
        for port in [dst, src] + [p for p in ports if p not in (src, dst)]:
            try:
                r = Redis(port, timeout=2)
                try:
                    if "master" in _str(r.call("ROLE")[0]):
                        r.call("CLUSTER", "SETSLOT", slot, "NODE", did)
                finally:
                    r.close()
            except (OSError, ConnectionError, RuntimeError):
                pass
    finally:
        s.close()
        d.close()
    return moved


def redis_ping(port):
    """True once a Redis (or Sentinel) on port answers PING, or asks for AUTH."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith(b"+PONG") or b"NOAUTH" in reply  # up, wants AUTH
    except OSError:
        return False


class MariaDB:
    """The mariadb command-line client against one server, as root over
    TCP: enough for tests (standard library only, no driver)."""

    def __init__(self, port, user="root", password=None, database=None):
        self.argv = ["mariadb", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(port), "-u", user,
                     "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        if password is not None:
            self.argv.append(f"--password={password}")
        if database:
            self.argv.append(database)

    def ping(self):
        r = subprocess.run(self.argv + ["-e", "SELECT 1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def run(self, sql, check=True):
        """Runs sql; returns the rows as tuples of strings (None for NULL)."""
        r = subprocess.run(self.argv + ["-e", sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"mariadb: {sql[:200]}: " + r.stderr.decode("utf-8", "replace"))
        rows = []
        for line in r.stdout.decode("utf-8").split("\n"):
            if line:
                rows.append(tuple(None if f == "NULL" else _unescape(f)
                                  for f in line.split("\t")))
        return rows


def _unescape(field):
    """The batch mode's escapes (\\t, \\n, \\0, \\\\) undone."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            out.append({"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(field[i + 1],
                                                                       field[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def archive_doc(db, database="op"):
    """The three window tables in the shapes of the truth's minutes,
    categories and gender_slots (amounts as Decimal)."""
    minutes = [{"minute": int(m), "orders": int(o), "quantity": int(q), "amount": Decimal(a),
                "final": True}
               for m, o, q, a in db.run(f"SELECT minute_start, orders, quantity, amount FROM "
                                        f"{database}.op_minute ORDER BY minute_start")]
    cats = {}
    for m, name, q, a in db.run(f"SELECT minute_start, category, quantity, amount FROM "
                                f"{database}.op_category_minute"):
        cats.setdefault(int(m), []).append({"name": name, "quantity": int(q),
                                            "amount": Decimal(a)})
    categories = [{"minute": m, "ranking": sorted(r, key=lambda c: (-c["quantity"],
                                                                  c["name"].encode()))}
                  for m, r in sorted(cats.items())]
    slots = {}
    for s, g, q in db.run(f"SELECT slot_start, gender, quantity FROM {database}.op_gender_slot"):
        slots.setdefault(int(s), {})[g] = int(q)
    gender_slots = [{"slot": s, "quantity": q} for s, q in sorted(slots.items())]
    return {"minutes": minutes, "categories": categories, "gender_slots": gender_slots}


def truth_windows(truth):
    """The truth's window members, as archive_doc() returns them (gender
    slots keyed by name: the archive has no order among genders)."""
    return {"minutes": truth["minutes"], "categories": truth["categories"],
            "gender_slots": [{"slot": s["slot"], "quantity": dict(s["quantity"])}
                             for s in truth["gender_slots"]]}


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


# --- Redis layout 2, read independently of the engine's code ----------------
#
# docs/REDIS.md: the truth is a log of blobs (engine/io/delta.h gives the
# format); the readable view is plain keys. Both are rebuilt here from the
# documentation, so that a test compares the engine with the truth, not the
# engine with itself.

TABLES = {1: ("minutes", None, False), 2: ("catmin", 1, True), 3: ("brands", 2, False),
          4: ("genders", 0, False), 5: ("gslots", 0, True),
          6: ("brand_days", 2, True), 7: ("gender_days", 0, True)}


class _Blob:
    def __init__(self, data):
        self.d, self.i = data, 0

    def u8(self):
        v = self.d[self.i]
        self.i += 1
        return v

    def varint(self):
        v, shift = 0, 0
        while True:
            b = self.u8()
            v |= (b & 0x7f) << shift
            if not b & 0x80:
                return v
            shift += 7

    def svarint(self):
        u = self.varint()
        return (u >> 1) ^ -(u & 1)

    def raw(self, n):
        v = self.d[self.i:self.i + n]
        if len(v) != n:
            raise ValueError("truncated blob")
        self.i += n
        return v


def fold_blob(data, st):
    """Adds one chunk (delta or snapshot) into st."""
    if data[:4] != b"OPD2" or data[4:5] not in (b"D", b"S"):
        raise ValueError(f"not a layout-2 blob: {data[:5]!r}")
    b, names = _Blob(data[5:]), []
    while b.i < len(b.d):
        tag = b.u8()
        if tag == 1:
            dim = b.u8()
            names.append((dim, b.raw(b.varint()).decode()))
        elif tag == 2:
            for k in ("orders", "quantity", "amount"):
                st["totals"][k] += b.svarint()
        elif tag == 3:
            reason = b.raw(b.varint()).decode()
            st["bad"][reason] = st["bad"].get(reason, 0) + b.svarint()
        elif tag == 4:
            st["late"] += b.svarint()
        elif tag == 5:
            name, dim, paired = TABLES[b.u8()]
            bucket = b.varint() if dim is None or paired else None
            idx = b.varint() if dim is not None else None
            tally = [b.svarint(), b.svarint(), b.svarint()]
            if dim is not None and names[idx][0] != dim:
                raise ValueError("a tally names a name of another dimension")
            key = bucket if dim is None else (names[idx][1] if not paired
                                             else (bucket, names[idx][1]))
            cur = st[name].setdefault(key, [0, 0, 0])
            for i in range(3):
                cur[i] += tally[i]
        elif tag == 6:
            name = b.raw(b.u8()).decode()
            cur = st["users"].setdefault(name, [0, 0])
            cur[0] += b.svarint()
            cur[1] += b.svarint()
        elif tag == 8:
            day = b.varint()
            name = b.raw(b.u8()).decode()
            cur = st["user_days"].setdefault((day, name), [0, 0])
            cur[0] += b.svarint()
            cur[1] += b.svarint()
        elif tag == 7:
            p = b.varint()
            nxt, mx, _records, lost = b.svarint(), b.svarint(), b.svarint(), b.svarint()
            cur = st["parts"].setdefault(p, {"next": -1, "max": None, "lost": 0})
            cur["next"] = max(cur["next"], nxt)
            cur["max"] = mx if cur["max"] is None else max(cur["max"], mx)
            cur["lost"] += lost
        else:
            raise ValueError(f"unknown record tag {tag}")


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


class _LogMoved(Exception):
    pass


def read_log_state(r, prefix="{op}"):
    """Folds the whole log (snapshot and deltas), as a restarting engine would.

    The log is read with LRANGE and its blobs one GET at a time, so a live
    engine's compaction may replace the entries read and free their blobs in
    between: a missing blob is a defect only if the log still names it when
    read again; otherwise the fold starts over."""
    for _ in range(50):
        try:
            return _read_log_state_once(r, prefix)
        except _LogMoved:
            time.sleep(0.05)
    raise AssertionError("the log kept changing under the reader (50 tries)")


def _read_log_state_once(r, prefix):
    meta = r.call("HGETALL", f"{prefix}:meta") or []
    meta = {_str(meta[i]): _str(meta[i + 1]) for i in range(0, len(meta), 2)}
    st = {"totals": {"orders": 0, "quantity": 0, "amount": 0}, "bad": {}, "late": 0,
          "minutes": {}, "catmin": {}, "brands": {}, "genders": {}, "gslots": {},
          "brand_days": {}, "gender_days": {}, "user_days": {},
          "users": {}, "parts": {}, "meta": meta}
    if not meta:
        return st
    log = r.call("LRANGE", f"{prefix}:log", 0, -1) or []
    for entry in log:
        words = _str(entry).split(" ")
        for key in words[4:]:
            data = r.call("GET", key)
            if data is None:
                if (r.call("LRANGE", f"{prefix}:log", 0, -1) or []) != log:
                    raise _LogMoved()
                raise AssertionError(f"log entry {entry!r}: blob {key} is missing")
            fold_blob(data, st)
    return st


def _doc_from_state(st):
    """The snapshot document's members (as the truth has them) from a folded log."""
    doc = {"totals": {"orders": st["totals"]["orders"], "quantity": st["totals"]["quantity"],
                      "amount": _amount(st["totals"]["amount"])}}
    doc["brands"] = sorted(({"name": n, "quantity": t[1], "amount": _amount(t[2])}
                            for n, t in st["brands"].items() if t[0]),
                           key=lambda x: (-x["quantity"], x["name"].encode()))
    doc["gender"] = sorted(({"name": n, "quantity": t[1], "amount": _amount(t[2])}
                            for n, t in st["genders"].items() if t[0]),
                           key=lambda x: (-x["amount"], x["name"].encode()))
    users = sorted(((n, c, o) for n, (c, o) in st["users"].items()),
                   key=lambda u: (-u[1], u[0].encode()))
    doc["top_users"] = [{"name": n, "amount": _amount(c), "orders": o} for n, c, o in users[:10]]
    doc["minutes"] = [{"minute": m * 60000, "orders": t[0], "quantity": t[1],
                       "amount": _amount(t[2])}
                      for m, t in sorted(st["minutes"].items()) if t[0]]
    cats = {}
    for (m, name), t in st["catmin"].items():
        if t[0]:
            cats.setdefault(m, []).append({"name": name, "quantity": t[1],
                                           "amount": _amount(t[2])})
    doc["categories"] = [{"minute": m * 60000,
                          "ranking": sorted(c, key=lambda x: (-x["quantity"], x["name"].encode()))}
                         for m, c in sorted(cats.items())]
    slots = {}
    for (sl, name), t in st["gslots"].items():
        if t[1]:
            slots.setdefault(sl, {})[name] = t[1]
    doc["gender_slots"] = [{"slot": sl * 600000, "quantity": q} for sl, q in sorted(slots.items())]
    doc["bad"] = sum(st["bad"].values())
    doc["late"] = st["late"]
    doc["bad_by_reason"] = {k: v for k, v in st["bad"].items() if v}
    doc["users"] = {n: (c, o) for n, (c, o) in st["users"].items()}
    return doc


def redis_view(port, prefix="{op}"):
    """What a redis-cli reader gets from the readable keys (docs/REDIS.md), in
    the truth's shape, plus the top-100 users and the view's log position."""
    r = Redis(port)
    try:
        def h(key):
            v = r.call("HGETALL", key) or []
            return {_str(v[i]): _str(v[i + 1]) for i in range(0, len(v), 2)}

        def z(key):
            v = r.call("ZREVRANGE", key, 0, -1, "WITHSCORES") or []
            return [(_str(v[i]), int(float(v[i + 1]))) for i in range(0, len(v), 2)]
        t = {k: int(v) for k, v in h(f"{prefix}:totals").items()}
        doc = {"totals": {"orders": t.get("orders", 0), "quantity": t.get("quantity", 0),
                          "amount": _amount(t.get("amount", 0))}}
        bq, ba = dict(z(f"{prefix}:brands:q")), dict(z(f"{prefix}:brands:a"))
        doc["brands"] = sorted(({"name": n, "quantity": q, "amount": _amount(ba.get(n, 0))}
                                for n, q in bq.items()),
                               key=lambda x: (-x["quantity"], x["name"].encode()))
        gq, ga = h(f"{prefix}:gender:q"), h(f"{prefix}:gender:a")
        doc["gender"] = sorted(({"name": n, "quantity": int(q),
                                 "amount": _amount(int(ga.get(n, 0)))} for n, q in gq.items()),
                               key=lambda x: (-x["amount"], x["name"].encode()))
        top, top_o = z(f"{prefix}:top_users"), h(f"{prefix}:top_users:o")
        top.sort(key=lambda u: (-u[1], u[0].encode()))
        doc["top_users"] = [{"name": n, "amount": _amount(c), "orders": int(top_o.get(n, 0))}
                            for n, c in top[:10]]
        doc["top100"] = [(n, c, int(top_o.get(n, 0))) for n, c in top]
        minutes, cats = [], []
        for f, v in sorted(h(f"{prefix}:minutes").items(), key=lambda kv: int(kv[0])):
            o, q, a = (int(x) for x in v.split(" "))
            minutes.append({"minute": int(f), "orders": o, "quantity": q, "amount": _amount(a)})
            ranking = z(f"{prefix}:catmin:{f}")
            amounts = h(f"{prefix}:catmin:{f}:a")
            ranking = [{"name": n, "quantity": q, "amount": _amount(int(amounts.get(n, 0)))}
                       for n, q in ranking]
            ranking.sort(key=lambda c: (-c["quantity"], c["name"].encode()))
            if ranking:
                cats.append({"minute": int(f), "ranking": ranking})
        doc["minutes"], doc["categories"] = minutes, cats
        slots = {}
        for f, v in h(f"{prefix}:slots").items():
            ms, gender = f.split(":", 1)
            slots.setdefault(int(ms), {})[gender] = int(v)
        doc["gender_slots"] = [{"slot": sl, "quantity": q} for sl, q in sorted(slots.items())]
        doc["bad"] = t.get("bad", 0)
        doc["late"] = t.get("late", 0)
        doc["bad_by_reason"] = {k: int(v) for k, v in h(f"{prefix}:bad").items() if int(v)}
        doc["users_count"] = t.get("users", 0)
        return doc
    finally:
        r.close()


def redis_snapshot(port, prefix="{op}"):
    """The cumulative metrics as Redis's log holds them, in the snapshot
    document's shape (no shares, no final flags), plus bad, late, every user."""
    r = Redis(port)
    try:
        return _doc_from_state(read_log_state(r, prefix))
    finally:
        r.close()


def truth_as_redis_holds_it(truth):
    """The truth document reduced to what redis_snapshot() can rebuild."""
    doc = {k: truth[k] for k in ("totals", "brands", "top_users", "categories",
                                 "gender_slots")}
    doc["minutes"] = [{k: v for k, v in m.items() if k not in ("final", "state")}
                      for m in truth["minutes"]]
    doc["gender"] = [{k: v for k, v in g.items() if k not in SHARE_KEYS}
                     for g in truth["gender"]]
    doc["bad"] = truth["stats"]["bad_records"]
    return doc


# --- the whole state Redis holds, for the exactly-once tests -------------------

def read_users_truth(path):
    """The simulator's --truth-users file: {name: (cents, orders)}."""
    users = {}
    with open(path, "rb") as f:
        for line in f:
            name, cents_text, orders = line.decode("utf-8").rstrip("\n").split("\t")
            users[name] = (int(cents_text), int(orders))
    return users


def redis_state(port, prefix="{op}"):
    """Everything Redis holds: the folded log (truth) with the readable view
    beside it (doc["view"])."""
    doc = redis_snapshot(port, prefix)
    doc["view"] = redis_view(port, prefix)
    return doc


def state_diff(state, truth, users_path):
    """Every difference between what Redis holds -- the log and the readable
    view -- and the simulator's truth: the snapshot members, late and bad
    counts, every user, the top 100."""
    want = truth_as_redis_holds_it(truth)
    out = []
    for label, got in (("log", state), ("view", state["view"])):
        out += [f"{label}{d}" for d in snapshot_diff({k: got[k] for k in want}, want)]
        if got["late"] != truth["stats"]["late_records"]:
            out.append(f"{label}/late: got {got['late']}, want {truth['stats']['late_records']}")
        if sum(got["bad_by_reason"].values()) != truth["stats"]["bad_records"]:
            out.append(f"{label}/bad_by_reason: sums to {sum(got['bad_by_reason'].values())}, "
                       f"want {truth['stats']['bad_records']}")
    users = read_users_truth(users_path)
    for name in sorted(set(users) | set(state["users"])):
        g, w = state["users"].get(name), users.get(name)
        if g != w:
            out.append(f"log/users/{name}: got {g}, want {w}")
    ranked = sorted(((n, c, o) for n, (c, o) in users.items()), key=lambda u: (-u[1], u[0].encode()))
    if state["view"]["top100"] != ranked[:100]:
        out.append("view/top_users: the top 100 differ from the truth's")
    if state["view"]["users_count"] != len(users):
        out.append(f"view/totals/users: got {state['view']['users_count']}, want {len(users)}")
    return out
