"""End-to-end tests of the HTTP API (DESIGN §5): the engine serves a file
source live (no --once) on two HTTP threads, and every resource is fetched
with curl over HTTP/1.1 and over h2c with prior knowledge and compared,
member by member, with the simulator's ground truth; then the slices, ETag
and 304, the JSON error answers, /metrics, the event stream, the h2c
upgrade, TLS with ALPN, the answers before the first snapshot and the
option errors.

Run: python3 -m unittest discover -s tests/e2e -p 'test_api.py' -v
With OP_BIN=build/asan/bin the engine's stderr is checked for sanitizer
reports.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, E2ETest, binary, free_port, load_json, snapshot_diff, wait_for  # noqa: E402

START = "2024-11-11T00:00:00"
ORDERS = int(os.environ.get("OP_E2E_API_ORDERS", "200000"))
JSON_TYPE = "application/json; charset=utf-8"
PROTOCOLS = {"h1": ["--http1.1"], "h2": ["--http2-prior-knowledge"]}
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")


# --- HTTP through curl ----------------------------------------------------------

class Response:
    def __init__(self, status, headers, body, version):
        self.status, self.headers, self.body, self.version = status, headers, body, version

    def json(self):
        return json.loads(self.body.decode("utf-8"), parse_float=Decimal)

    def __repr__(self):
        return f"<{self.version} {self.status} {self.headers} {self.body[:200]!r}>"


def parse_curl_i(out):
    """Splits `curl -i` output into the final response (skipping 1xx)."""
    while True:
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"no header block in curl output: {out[:300]!r}")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[0], int(lines[0].split(" ")[1])
        if 100 <= status < 200:
            out = rest
            continue
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Response(status, headers, rest, version)


def curl(url, proto="h1", extra=(), method=None, timeout=10):
    argv = ["curl", "-s", "-S", "-i", "--max-time", str(timeout), *PROTOCOLS.get(proto, [])]
    if proto == "upgrade":
        argv.append("--http2")
    if method == "HEAD":
        argv.append("-I")
    elif method:
        argv += ["-X", method]
    argv += [*extra, url]
    r = subprocess.run(argv, capture_output=True, timeout=timeout + 5)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.decode()}")
    return parse_curl_i(r.stdout)


# --- Prometheus text format 0.0.4 -------------------------------------------------

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{name: [(labels dict, float)]} and {name: type}; raises on a bad line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if parts[1] == "TYPE":
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), line
                assert parts[2] not in types, f"two TYPE lines for {parts[2]}"
                types[parts[2]] = parts[3]
            else:
                assert parts[1] == "HELP", line
            continue
        m = METRIC_LINE.match(line)
        assert m, f"bad metric line {line!r}"
        labels = dict(LABEL.findall(m.group(2) or ""))
        value = float(m.group(3))  # also accepts +Inf, NaN
        samples.setdefault(m.group(1), []).append((labels, value))
    for name in samples:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name} has no TYPE line"
    return samples, types


def strip_final(items):
    return [{k: v for k, v in m.items() if k != "final"} for m in items]


def sse_events(raw):
    """(event, data) pairs of an event stream; comments are skipped."""
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if name or data:
            events.append((name, "\n".join(data)))
    return events


# libh2o 2.2.5 keeps freed buffers and memory-pool chunks in thread-local
# free lists (h2o_mem_alloc_recycle) that it never releases, and does not
# free a thread's message queue (h2o_multithread_create_queue): when an HTTP
# thread exits, LeakSanitizer reports those as leaks. They are the
# library's, not ours (every frame above malloc is in libh2o-evloop).
H2O_LSAN_SUPPRESSIONS = "leak:h2o_mem_alloc_recycle\nleak:h2o_multithread_create_queue\n"


def sanitizer_env(tmpdir):
    """Environment for an engine under ASan: LeakSanitizer suppressions for
    libh2o's own thread-exit leaks (harmless in a release build)."""
    path = os.path.join(tmpdir, "h2o.lsan.supp")
    with open(path, "w") as f:
        f.write(H2O_LSAN_SUPPRESSIONS)
    opts = os.environ.get("LSAN_OPTIONS", "")
    return {"LSAN_OPTIONS": f"{opts}:suppressions={path}:print_suppressions=0".lstrip(":")}


def sanitizer_reports(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


class EngineServer:
    """An engine started by a test's E2ETest with --http on a free port."""

    def __init__(self, owner, data, extra=(), port=None, env=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        source = ["--source", "file:" + data] if data else ["--source", "kafka"]
        self.proc = owner.start([binary("orderpulse"), *source, "--http",
                                 f"127.0.0.1:{self.port}", *map(str, extra)],
                                env={**sanitizer_env(owner.tmp), **(env or {})})
        wait_for(self.listening, 60, "the engine's HTTP server")

    def listening(self):
        if not self.proc.alive():
            raise AssertionError("the engine exited:\n" + self.proc.stderr_text()[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def url(self, path):
        return self.base + path

    def stop_clean(self, test):
        """SIGTERM; the engine exits 0 without sanitizer reports."""
        rc = self.proc.stop(timeout=30)
        text = self.proc.stderr_text()
        test.assertEqual(sanitizer_reports(text), [], text[-4000:])
        test.assertEqual(rc, 0, text[-2000:])


class ApiAgainstTruth(E2ETest):
    """One engine for the class: 200 000 orders, 2 % late, 1 % bad."""

    @classmethod
    def setUpClass(cls):
        cls.shared = E2ETest("run")
        cls.shared.setUp()
        cls.data = cls.shared.path("orders.jsonl")
        truth_path = cls.shared.path("truth.json")
        cls.shared.run_sim(["--out", cls.data, "--rate", 0, "--count", ORDERS, "--start", START,
                            "--jitter", "2s", "--late-fraction", 0.02, "--bad-fraction", 0.01,
                            "--truth", truth_path, "--quiet"])
        cls.truth = load_json(truth_path)
        cls.records = cls.truth["totals"]["orders"] + cls.truth["stats"]["bad_records"]
        cls.srv = EngineServer(cls.shared, cls.data, ["--tick", "100ms", "--workers", 2,
                                                      "--http-threads", 2])

        def settled():
            r = curl(cls.srv.url("/api/v1/snapshot"))
            if r.status != 200:
                return None
            doc = r.json()
            return doc["totals"]["orders"] + doc["stats"]["bad_records"] == cls.records
        wait_for(settled, 120, f"the engine to count {cls.records} records", interval=0.2)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop_clean(unittest.TestCase())
        finally:
            cls.shared.tearDown()

    def get(self, path, proto="h1", **kw):
        return curl(self.srv.url(path), proto, **kw)

    def get_json(self, path, proto):
        r = self.get(path, proto)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), JSON_TYPE, r)
        self.assertEqual(r.headers.get("cache-control"), "no-store", r)
        self.assertRegex(r.headers.get("etag", ""), r'^"\d+-\d+"$', r)
        self.assertEqual(int(r.headers["content-length"]), len(r.body), r)
        return r.json()

    def assertSame(self, got, want, what):
        diff = snapshot_diff(got, want)
        self.assertEqual(diff[:20], [], f"{what}: {len(diff)} differences")

    # --- resources against the truth ---------------------------------------------

    def test_resources_equal_truth(self):
        t = self.truth
        by_amount = sorted(t["brands"], key=lambda b: (-b["amount"], b["name"].encode()))
        expected = {
            "/api/v1/totals": t["totals"],
            "/api/v1/sales/minutes": strip_final(t["minutes"]),
            "/api/v1/brands": t["brands"],
            "/api/v1/brands?by=quantity": t["brands"],
            "/api/v1/brands?by=amount": by_amount,
            "/api/v1/users/top": t["top_users"],
            "/api/v1/gender": t["gender"],
            "/api/v1/gender/slots": t["gender_slots"],
        }
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                doc = self.get_json("/api/v1/snapshot", proto)
                doc["minutes"] = strip_final(doc["minutes"])
                self.assertSame(doc, dict(t, minutes=strip_final(t["minutes"])), "snapshot")
                self.assertEqual(doc["stats"]["bad_records"], t["stats"]["bad_records"])
                for path, want in expected.items():
                    got = self.get_json(path, proto)
                    if path.startswith("/api/v1/sales/minutes"):
                        got = strip_final(got)
                    self.assertSame(got, want, f"{proto} {path}")
                for cat in t["categories"]:
                    got = self.get_json(f"/api/v1/categories/ranking?minute={cat['minute']}",
                                        proto)
                    self.assertSame(got, cat, f"{proto} ranking of {cat['minute']}")

    def test_slices(self):
        t = self.truth
        minutes, slots = strip_final(t["minutes"]), t["gender_slots"]
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                for n in (1, 2, len(minutes), len(minutes) + 5, 1000000000):
                    got = strip_final(self.get_json(f"/api/v1/sales/minutes?last={n}", proto))
                    self.assertSame(got, minutes[-n:], f"minutes last={n}")
                for n in (1, len(slots) + 1):
                    got = self.get_json(f"/api/v1/gender/slots?last={n}", proto)
                    self.assertSame(got, slots[-n:], f"slots last={n}")
                for n in (1, 3, 10):
                    got = self.get_json(f"/api/v1/users/top?n={n}", proto)
                    self.assertSame(got, t["top_users"][:n], f"users n={n}")
                top100 = self.get_json("/api/v1/users/top?n=100", proto)
                self.assertLessEqual(len(top100), 100)
                self.assertSame(top100[:10], t["top_users"], "users n=100, first 10")
                keys = [(-Decimal(u["amount"]), u["name"].encode()) for u in top100]
                self.assertEqual(keys, sorted(keys), "n=100 is ranked")
                # Unknown parameters are ignored; a time inside a minute names it.
                self.assertSame(self.get_json("/api/v1/totals?_=123", proto), t["totals"], "?_")
                m = t["categories"][0]["minute"]
                got = self.get_json(f"/api/v1/categories/ranking?minute={m + 59999}", proto)
                self.assertEqual(got["minute"], m)

    def test_default_category_minute(self):
        """Without ?minute=: the latest minute whose final is true, else the latest."""
        for proto in PROTOCOLS:
            doc = self.get_json("/api/v1/snapshot", proto)
            finals = [m["minute"] for m in doc["minutes"] if m["final"]]
            want = finals[-1] if finals else doc["categories"][-1]["minute"]
            got = self.get_json("/api/v1/categories/ranking", proto)
            self.assertEqual(got["minute"], want)
            cat = next(c for c in self.truth["categories"] if c["minute"] == want)
            self.assertSame(got, cat, "default ranking")

    def test_head(self):
        for proto in PROTOCOLS:
            get = self.get("/api/v1/gender", proto)
            head = self.get("/api/v1/gender", proto, method="HEAD")
            self.assertEqual(head.status, 200)
            self.assertEqual(head.body, b"")
            self.assertEqual(head.headers["content-length"], str(len(get.body)))
            self.assertEqual(head.headers["content-type"], JSON_TYPE)

    def test_etag_and_304(self):
        """An ETag names a snapshot; If-None-Match with it answers 304 while
        that snapshot is current (ticks are 100 ms here, so retry)."""
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                for _ in range(50):
                    first = self.get("/api/v1/users/top?n=5", proto)
                    etag = first.headers["etag"]
                    again = self.get("/api/v1/users/top?n=5", proto,
                                     extra=["-H", f"If-None-Match: {etag}"])
                    if again.status == 304:
                        break
                    self.assertEqual(again.status, 200, again)
                    self.assertNotEqual(again.headers["etag"], etag, "same ETag, no 304")
                else:
                    self.fail("never got a 304")
                self.assertEqual(again.body, b"")
                self.assertEqual(again.headers["etag"], etag)
                self.assertEqual(again.headers["cache-control"], "no-store")
                other = self.get("/api/v1/users/top?n=5", proto,
                                 extra=["-H", 'If-None-Match: "0-0", W/"1-1"'])
                self.assertEqual(other.status, 200)

    # --- errors ----------------------------------------------------------------------

    def assertJsonError(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), JSON_TYPE, r)
        self.assertEqual(r.headers.get("cache-control"), "no-store", r)
        doc = r.json()
        self.assertEqual(list(doc), ["error"], r)
        self.assertIsInstance(doc["error"], str)

    def test_errors_are_json(self):
        bad = ["/api/v1/sales/minutes?last=abc", "/api/v1/sales/minutes?last=0",
               "/api/v1/sales/minutes?last=-1", "/api/v1/sales/minutes?last=",
               "/api/v1/gender/slots?last=1x", "/api/v1/users/top?n=0",
               "/api/v1/users/top?n=101", "/api/v1/users/top?n=abc", "/api/v1/brands?by=price",
               "/api/v1/brands?by=", "/api/v1/categories/ranking?minute=abc",
               "/api/v1/categories/ranking?minute=-5"]
        missing = ["/api/v1/nope", "/api/v2/totals", "/api/v1/totals/", "/nope",
                   "/api/v1/categories/ranking?minute=5"]
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                for path in bad:
                    self.assertJsonError(self.get(path, proto), 400)
                for path in missing:
                    self.assertJsonError(self.get(path, proto), 404)
                for method in ("POST", "PUT", "DELETE", "PATCH"):
                    r = self.get("/api/v1/totals", proto, method=method)
                    self.assertJsonError(r, 405)
                    self.assertEqual(r.headers.get("allow"), "GET, HEAD")
                r = self.get("/api/v1/totals", proto, extra=["--data-binary", "x=1"])
                self.assertJsonError(r, 405)

    def test_request_body_and_big_header(self):
        # A GET with a body; a header block over the limit.
        r = self.get("/api/v1/totals", "h1", method="GET", extra=["--data-binary", "abc"])
        self.assertJsonError(r, 413)
        big = "x" * (20 * 1024)
        for proto in PROTOCOLS:
            r = self.get("/api/v1/totals", proto, extra=["-H", f"X-Big: {big}"])
            self.assertJsonError(r, 431)

    def test_health_and_ready(self):
        for proto in PROTOCOLS:
            self.assertEqual(self.get_json_plain("/healthz", proto), {"status": "ok"})
            self.assertEqual(self.get_json_plain("/readyz", proto), {"status": "ready"})

    def get_json_plain(self, path, proto):
        r = self.get(path, proto)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), JSON_TYPE)
        return r.json()

    # --- /metrics -------------------------------------------------------------------------

    def test_metrics(self):
        for proto in PROTOCOLS:
            r = self.get("/metrics", proto)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"))
            samples, types = parse_metrics(r.body.decode("utf-8"))
            t = self.truth
            self.assertEqual(samples["orderpulse_orders_total"][0][1], t["totals"]["orders"])
            bad = samples["orderpulse_bad_records_total"]
            self.assertTrue(all("reason" in labels for labels, _ in bad))
            self.assertEqual(sum(v for _, v in bad), t["stats"]["bad_records"])
            self.assertGreater(samples["orderpulse_late_records_total"][0][1], 0)
            self.assertGreater(samples["orderpulse_tick"][0][1], 0)
            self.assertGreater(samples["orderpulse_users"][0][1], 0)
            self.assertGreaterEqual(samples["orderpulse_snapshot_age_seconds"][0][1], 0)
            self.assertLess(samples["orderpulse_snapshot_age_seconds"][0][1], 30)
            # Per partition this process reads: a file has none, and lost none.
            self.assertNotIn("orderpulse_lag", samples)
            self.assertNotIn("orderpulse_lost_records_total", samples)
            self.assertEqual(types["orderpulse_lost_records_total"], "counter")
            codes = {labels["code"]: v for labels, v in samples["orderpulse_http_requests_total"]}
            self.assertGreater(codes["200"], 0)
            self.assertEqual(types["orderpulse_orders_total"], "counter")
            self.assertEqual(types["orderpulse_lag"], "gauge")
            for h in ("orderpulse_tick_duration_seconds", "orderpulse_flush_duration_seconds"):
                self.assertEqual(types[h], "histogram")
                buckets = samples[h + "_bucket"]
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), f"{h} buckets are cumulative")
                self.assertEqual(buckets[-1][0]["le"], "+Inf")
                self.assertEqual(buckets[-1][1], samples[h + "_count"][0][1])
                self.assertIn(h + "_sum", samples)
            self.assertGreater(samples["orderpulse_tick_duration_seconds_count"][0][1], 0)

    # --- the event stream -------------------------------------------------------------------

    def stream(self, proto, seconds=2.5):
        argv = ["curl", "-sN", "--max-time", str(seconds), *PROTOCOLS[proto],
                self.srv.url("/api/v1/stream")]
        r = subprocess.run(argv, capture_output=True, timeout=seconds + 10)
        self.assertIn(r.returncode, (0, 28), r.stderr)  # 28: --max-time ended it
        return sse_events(r.stdout)

    def test_stream(self):
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                events = self.stream(proto)
                snaps = [json.loads(d, parse_float=Decimal) for e, d in events if e == "snapshot"]
                self.assertGreaterEqual(len(snaps), 2, events[:3])
                ticks = [s["tick"] for s in snaps]
                self.assertEqual(ticks, sorted(set(ticks)), "ticks increase, no repeats")
                self.assertSame(snaps[-1]["totals"], self.truth["totals"], "streamed totals")

    def test_stream_headers(self):
        r = subprocess.run(["curl", "-sN", "-i", "--max-time", "1", "--http1.1",
                            self.srv.url("/api/v1/stream")], capture_output=True, timeout=20)
        resp = parse_curl_i(r.stdout)
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(resp.headers["cache-control"], "no-store")

    # --- protocols ----------------------------------------------------------------------------

    def test_h2c_upgrade(self):
        argv = ["curl", "-s", "-i", "-v", "--http2", "--max-time", "10",
                self.srv.url("/api/v1/totals")]
        r = subprocess.run(argv, capture_output=True, timeout=20)
        self.assertIn(b"101 Switching Protocols", r.stdout + r.stderr)
        resp = parse_curl_i(r.stdout)
        self.assertEqual(resp.version, "HTTP/2")
        self.assertSame(resp.json(), self.truth["totals"], "totals over the upgrade")

    def test_dashboard_files(self):
        r = self.get("/")
        if os.path.exists(os.path.join(ROOT, "http", "static", "index.html")):
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/html"))
        else:
            self.assertJsonError(r, 404)
        self.assertJsonError(self.get("/no-such-file.js"), 404)


class BeforeTheFirstSnapshot(E2ETest):
    def test_503_until_a_snapshot(self):
        # An empty topic and an hour-long tick: no snapshot while the test
        # runs (a file source would publish as soon as its input ends).
        _, boot = self.start_devbroker(partitions=2)
        srv = EngineServer(self, None, ["--brokers", boot, "--topic", "orders", "--tick", "1h",
                                        "--static-dir", self.tmp])
        for proto in PROTOCOLS:
            for path in ("/api/v1/totals", "/api/v1/snapshot", "/api/v1/users/top?n=3",
                         "/api/v1/categories/ranking"):
                r = curl(srv.url(path), proto)
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.headers["content-type"], JSON_TYPE)
                self.assertIn("error", r.json())
            self.assertEqual(curl(srv.url("/readyz"), proto).status, 503)
            self.assertEqual(curl(srv.url("/healthz"), proto).status, 200)
            self.assertEqual(curl(srv.url("/api/v1/users/top?n=0"), proto).status, 400)
            r = curl(srv.url("/metrics"), proto)
            self.assertEqual(r.status, 200)
            parse_metrics(r.body.decode())
            r = curl(srv.url("/"), proto)  # an empty --static-dir: no dashboard
            self.assertEqual(r.status, 404)
            self.assertIn("dashboard", r.json()["error"])
        srv.stop_clean(self)


def tool(name):
    """A command the test needs (make deps installs it): a missing one fails,
    or skips with OP_ALLOW_SKIP, never silently."""
    if not shutil.which(name):
        if os.environ.get("OP_ALLOW_SKIP"):
            raise unittest.SkipTest(f"{name} is missing")
        raise FileNotFoundError(f"{name} is missing (run make deps)")


class Tls(E2ETest):
    def test_h2_over_tls_by_alpn(self):
        tool("openssl")
        cert, key = self.path("cert.pem"), self.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 1000, "--start", START, "--quiet"])
        srv = EngineServer(self, data, ["--tick", "100ms", "--tls-cert", cert, "--tls-key", key])
        url = f"https://127.0.0.1:{srv.port}/api/v1/totals"

        def served():  # every order of the file, over TLS
            r = curl(url, "h2tls", extra=["-k", "--http2"])
            return r if r.status == 200 and r.json()["orders"] == 1000 else None
        r = wait_for(served, 30, "the file's 1 000 orders over TLS", interval=0.2)
        self.assertEqual(r.version, "HTTP/2")
        r = curl(url, "h2tls", extra=["-k", "--http1.1"])
        self.assertEqual(r.version, "HTTP/1.1")
        self.assertEqual(r.json()["orders"], 1000)
        srv.stop_clean(self)


class FlushMetrics(E2ETest):
    def test_flush_histogram_with_redis(self):
        _, redis_port = self.start_redis()
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 5000, "--start", START, "--quiet"])
        srv = EngineServer(self, data, ["--tick", "100ms", "--redis", f"127.0.0.1:{redis_port}"])

        def flushed():
            r = curl(srv.url("/metrics"))
            samples, _ = parse_metrics(r.body.decode())
            return samples["orderpulse_flush_duration_seconds_count"][0][1] > 0
        wait_for(flushed, 60, "a timed Redis flush", interval=0.2)
        srv.stop_clean(self)


class Installed(E2ETest):
    def test_make_install_serves_the_dashboard_without_static_dir(self):
        prefix = self.path("prefix")
        r = subprocess.run(["make", "-s", "install", f"PREFIX={prefix}"], cwd=ROOT,
                           capture_output=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 100, "--start", START, "--quiet"])
        port = free_port()
        self.start([os.path.join(prefix, "bin", "orderpulse"), "--source", "file:" + data,
                    "--http", f"127.0.0.1:{port}"])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: subprocess.run(["curl", "-sf", base + "/healthz"],
                                        capture_output=True).returncode == 0, 30, "the server")
        for path, ctype in (("/", "text/html"), ("/app.js", "application/javascript"),
                            ("/vendor/echarts.min.js", "application/javascript")):
            r = curl(base + path)
            self.assertEqual(r.status, 200, (path, r))
            self.assertTrue(r.headers["content-type"].startswith(ctype), (path, r.headers))


class Options(E2ETest):
    def bad(self, args):
        data = self.path("one.jsonl")
        with open(data, "w") as f:
            f.write("not an order\n")
        r = subprocess.run([binary("orderpulse"), "--source", "file:" + data, *args],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2, (args, r.stderr))
        lines = r.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, (args, lines))
        self.assertTrue(lines[0].startswith("orderpulse: --"), lines)
        return lines[0]

    def test_bad_values_exit_2(self):
        self.assertIn("--http:", self.bad(["--http", "bogus"]))
        self.assertIn("--http:", self.bad(["--http", "127.0.0.1:99999"]))
        self.assertIn("--http:", self.bad(["--http", "::1:8080"]))
        self.assertIn("--http-threads", self.bad(["--http", "0", "--http-threads", "0"]))
        self.assertIn("--tls", self.bad(["--http", "0", "--tls-cert", "/x.pem"]))
        self.assertIn("--static-dir", self.bad(["--http", "0", "--static-dir", "/nonexistent"]))
        self.assertIn("--cors-origin", self.bad(["--http", "0", "--cors-origin", "a b"]))
        self.assertIn("--tls-cert", self.bad(["--http", "127.0.0.1:0", "--tls-cert",
                                              "/nonexistent.pem", "--tls-key", "/nonexistent"]))

    def test_display_timezone(self):
        self.assertIn("--display-timezone", self.bad(["--display-timezone", "Asia/Shanghai"]))
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 100, "--start", START, "--quiet"])
        for args, want in (([], "+08:00"), (["--timezone", "UTC"], "+00:00"),
                           (["--display-timezone", "-05:30"], "-05:30")):
            srv = EngineServer(self, data, ["--tick", "100ms", *args])
            wait_for(lambda: curl(srv.url("/api/v1/snapshot")).status == 200, 30, "a snapshot")
            doc = curl(srv.url("/api/v1/snapshot")).json()
            self.assertEqual((doc["display_timezone"], doc["tick_ms"]), (want, 100), args)
            srv.stop_clean(self)

    def test_snapshot_file_directory_checked_at_start(self):
        line = self.bad(["--snapshot-file", "/nonexistent/dir/s.json"])
        self.assertIn("--snapshot-file: directory /nonexistent/dir", line)
        self.assertIn("--snapshot-file", self.bad(["--snapshot-file", self.tmp]))

    def test_config_file_errors_name_file_and_line(self):
        data = self.path("one.jsonl")
        with open(data, "w") as f:
            f.write("not an order\n")
        conf = self.path("op.conf")
        for text, want in (("# comment\ntick = fast\n", f"{conf}:2: tick: 'fast'"),
                           ("workers 2\n", f"{conf}:1: expected 'name = value'"),
                           ("\nhttp = 127.0.0.1:99999\n", f"{conf}:2: http:")):
            with open(conf, "w") as f:
                f.write(text)
            r = subprocess.run([binary("orderpulse"), "--source", "file:" + data, "--config",
                                conf], capture_output=True, timeout=30)
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(r.returncode, 2, (text, lines))
            self.assertEqual(len(lines), 1, (text, lines))
            self.assertTrue(lines[0].startswith("orderpulse: " + want), (text, lines))
        r = subprocess.run([binary("orderpulse"), "--source", "file:" + data],
                           env=dict(os.environ, ORDERPULSE_LATE="later"), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.decode().startswith("orderpulse: ORDERPULSE_LATE: 'later'"),
                        r.stderr)

    def test_snapshot_file_write_failure_reported_once(self):
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 100, "--start", START, "--quiet"])
        out_dir = self.path("snap")
        os.mkdir(out_dir)
        snap = os.path.join(out_dir, "s.json")
        srv = EngineServer(self, data, ["--tick", "100ms", "--snapshot-file", snap])
        wait_for(lambda: os.path.exists(snap), 30, "the snapshot file")
        shutil.rmtree(out_dir)
        tick = lambda: json.loads(curl(srv.url("/api/v1/snapshot")).body)["tick"]  # noqa: E731
        t0 = tick()
        wait_for(lambda: tick() >= t0 + 10, 30, "ten more ticks")
        text = srv.proc.stderr_text()
        self.assertEqual(text.count("--snapshot-file: cannot write"), 1, text)
        self.assertIn(f"cannot write {snap}: No such file or directory", text)
        os.mkdir(out_dir)
        wait_for(lambda: os.path.exists(snap), 30, "the snapshot file again")
        wait_for(lambda: "--snapshot-file: writing" in srv.proc.stderr_text(), 10, "the all-clear")
        srv.stop_clean(self)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            line = self.bad(["--http", f"127.0.0.1:{port}"])
            self.assertIn("Address already in use", line)

    def test_cors(self):
        data = self.path("o.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 100, "--start", START, "--quiet"])
        srv = EngineServer(self, data, ["--tick", "100ms", "--cors-origin",
                                        "https://dash.example"])
        wait_for(lambda: curl(srv.url("/api/v1/totals")).status == 200, 30, "a snapshot")
        r = curl(srv.url("/api/v1/totals"))
        self.assertEqual(r.headers["access-control-allow-origin"], "https://dash.example")
        self.assertEqual(r.headers["vary"], "Origin")
        r = curl(srv.url("/api/v1/totals"), method="OPTIONS")
        self.assertEqual(r.status, 204)
        self.assertIn("GET", r.headers["access-control-allow-methods"])
        srv.stop_clean(self)


if __name__ == "__main__":
    unittest.main()
