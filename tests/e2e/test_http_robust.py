"""Robustness of the HTTP server: garbage bytes, oversized headers, invalid
HTTP/2 prefaces and frames written to raw sockets, slowloris clients, a
thousand event-stream subscribers and h2load at 20 000 requests. After each
the engine must still answer /healthz at once, and its resident memory must
stay bounded; at the end it must exit cleanly (no sanitizer report under
OP_BIN=build/asan/bin).

Run: python3 -m unittest discover -s tests/e2e -p 'test_http_robust.py' -v
"""

import os
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETest, wait_for  # noqa: E402
from test_api import tool, EngineServer, curl  # noqa: E402

START = "2024-11-11T00:00:00"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
RSS_GROWTH_LIMIT_KB = 128 * 1024
SUBSCRIBERS = int(os.environ.get("OP_E2E_SSE_SUBSCRIBERS", "1000"))


def frame(ftype, flags, stream, payload, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def exchange(port, data, wait=2.0, chunked=False):
    """Writes data (all at once, or byte groups if chunked) and reads until
    the server closes or wait seconds pass. Returns what was read."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            if chunked:
                for i in range(0, len(data), 4096):
                    s.sendall(data[i:i + 4096])
            else:
                s.sendall(data)
        except OSError:
            pass  # the server may close on the first bad bytes
        deadline = time.monotonic() + wait
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


class HttpRobustness(E2ETest):
    @classmethod
    def setUpClass(cls):
        cls.shared = E2ETest("run")
        cls.shared.setUp()
        data = cls.shared.path("orders.jsonl")
        cls.shared.run_sim(["--out", data, "--rate", 0, "--count", 50000, "--start", START,
                            "--bad-fraction", 0.01, "--quiet"])
        # Under ASan, freed memory waits in a quarantine (256 MB by default)
        # before reuse: keep it small so that RSS measures what we hold.
        asan = os.environ.get("ASAN_OPTIONS", "")
        cls.srv = EngineServer(cls.shared, data, ["--tick", "500ms", "--workers", 1,
                                                  "--http-threads", 2],
                               env={"ASAN_OPTIONS": f"{asan}:quarantine_size_mb=16".lstrip(":")})
        cls.port = cls.srv.port
        wait_for(lambda: curl(cls.srv.url("/api/v1/totals")).status == 200, 60, "a snapshot")
        cls.rss_base = rss_kib(cls.srv.proc.pid)
        if os.environ.get("OP_E2E_VERBOSE"):
            print(f"\nRSS at start: {cls.rss_base} KiB")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop_clean(unittest.TestCase())
        finally:
            cls.shared.tearDown()

    def assertHealthy(self):
        self.assertTrue(self.srv.proc.alive(), self.srv.proc.stderr_text()[-3000:])
        t0 = time.monotonic()
        for proto in ("h1", "h2"):
            r = curl(self.srv.url("/healthz"), proto, timeout=5)
            self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 3.0, "/healthz was slow")
        rss = rss_kib(self.srv.proc.pid)
        if os.environ.get("OP_E2E_VERBOSE"):
            print(f"RSS {rss} KiB (+{rss - self.rss_base})")
        self.assertLess(rss - self.rss_base, RSS_GROWTH_LIMIT_KB,
                        f"RSS grew from {self.rss_base} to {rss} KiB")

    def test_garbage_bytes(self):
        for payload in (os.urandom(8192), b"\x00" * 4096, b"\r\n" * 2000,
                        b"GET / HTTP/9.9\r\n\r\n", b"GET /\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200)):
            exchange(self.port, payload, wait=1.0, chunked=True)
        self.assertHealthy()

    def test_huge_headers(self):
        big = b"x" * (100 * 1024)
        got = exchange(self.port, b"GET /api/v1/totals HTTP/1.1\r\nHost: x\r\nX-Big: " + big +
                       b"\r\n\r\n", chunked=True)
        status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None
        self.assertIn(status, (400, 413, 431, None), got[:200])
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
        exchange(self.port, b"GET /api/v1/totals HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n",
                 chunked=True)
        # Over h2c: HPACK blocks spanning CONTINUATION frames.
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--http2-prior-knowledge", "--max-time", "10", "-H",
                            "X-Big: " + "y" * (100 * 1024), self.srv.url("/api/v1/totals")],
                           capture_output=True, timeout=30)
        self.assertIn(r.stdout.decode(), ("431", "400", "413", "000"))
        self.assertHealthy()

    def test_invalid_http2(self):
        settings = frame(4, 0, 0, b"")
        headers_get = bytes([0x82, 0x86, 0x84, 0x41, 0x01, 0x78])  # GET http / host:x (HPACK)
        cases = [
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + os.urandom(512),  # bad preface
            PREFACE + os.urandom(4096),  # garbage frames
            PREFACE + frame(4, 0, 0, b"\x00" * 5),  # SETTINGS length not a multiple of 6
            PREFACE + settings + frame(1, 5, 1, b"\xff\xff\xff\xff\xff"),  # bad HPACK
            PREFACE + settings + frame(1, 5, 2, headers_get),  # even stream id
            PREFACE + settings + frame(9, 4, 1, headers_get),  # CONTINUATION alone
            PREFACE + settings + frame(0, 1, 0, b"data"),  # DATA on stream 0
            PREFACE + settings + frame(8, 0, 0, b"\x00\x00\x00\x00"),  # WINDOW_UPDATE 0
            PREFACE + settings + frame(6, 0, 0, b"\x00" * 7),  # PING of 7 bytes
            PREFACE + settings + frame(3, 0, 5, b"\x00\x00\x00\x08"),  # RST on an idle stream
            PREFACE + settings + frame(0, 0, 1, b"", length=16 * 1024 * 1024 - 1),  # huge length
            PREFACE + settings + frame(1, 4, 1, headers_get),  # HEADERS without END_HEADERS...
            PREFACE + settings + b"".join(frame(6, 0, 0, b"12345678") for _ in range(20000)),
            PREFACE + settings + b"".join(frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64")
                                          for _ in range(20000)),
            PREFACE + settings + b"".join(frame(1, 5, 2 * i + 1, headers_get) +
                                          frame(3, 0, 2 * i + 1, b"\x00\x00\x00\x08")
                                          for i in range(5000)),  # rapid reset
        ]
        for i, data in enumerate(cases):
            got = exchange(self.port, data, wait=1.0, chunked=True)
            if data.startswith(PREFACE) and got:
                self.assertEqual(got[3], 4, f"case {i}: the server's first frame is SETTINGS")
        self.assertHealthy()

    def test_slowloris(self):
        socks = []
        try:
            for _ in range(200):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(b"GET /api/v1/totals HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                socks.append(s)
            for _ in range(4):
                t0 = time.monotonic()
                for s in socks:
                    try:
                        s.sendall(b"a")
                    except OSError:
                        pass  # closed by the server's request timeout: fine
                r = curl(self.srv.url("/healthz"), "h1", timeout=5)
                self.assertEqual(r.status, 200)
                self.assertLess(time.monotonic() - t0, 2.0)
                time.sleep(1)
        finally:
            for s in socks:
                s.close()
        self.assertHealthy()

    def sse_gauge(self):
        text = curl(self.srv.url("/metrics")).body.decode()
        m = re.search(r"^orderpulse_sse_subscribers (\d+)$", text, re.M)
        return int(m.group(1))

    def test_many_subscribers(self):
        """A thousand HTTP/1.1 event streams on two threads: each gets a
        snapshot event; closing them brings the gauge back to zero."""
        sel = selectors.DefaultSelector()
        socks, seen = [], {}
        try:
            for i in range(SUBSCRIBERS):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                s.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
                socks.append(s)
                seen[i] = b""
            done = set()
            deadline = time.monotonic() + 60
            while len(done) < SUBSCRIBERS and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    try:
                        chunk = key.fileobj.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    i = key.data
                    if i not in done:
                        seen[i] = (seen[i] + chunk)[-65536:]
                        if b"event: snapshot\ndata: {" in seen[i]:
                            done.add(i)
            self.assertEqual(len(done), SUBSCRIBERS, "every subscriber got a snapshot")
            self.assertGreaterEqual(self.sse_gauge(), SUBSCRIBERS)
            self.assertHealthy()
        finally:
            for s in socks:
                sel.unregister(s)
                s.close()
            sel.close()
        wait_for(lambda: self.sse_gauge() == 0, 30, "the streams to be cleaned up")
        self.assertHealthy()

    def h2load(self, *args):
        tool("h2load")
        paths = ["/api/v1/totals", "/api/v1/snapshot", "/api/v1/users/top?n=5",
                 "/api/v1/sales/minutes?last=3", "/metrics"]
        r = subprocess.run(["h2load", *map(str, args), *(self.srv.url(p) for p in paths)],
                           capture_output=True, timeout=600)
        out = r.stdout.decode()
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", out)
        self.assertIsNotNone(m, out + r.stderr.decode())
        return int(m.group(4)), out

    def test_h2load(self):
        ok, out = self.h2load("-n", 20000, "-c", 50, "-m", 20)
        self.assertEqual(ok, 20000, out)
        after_first = rss_kib(self.srv.proc.pid)
        self.assertHealthy()
        ok, out = self.h2load("--h1", "-n", 5000, "-c", 20)
        self.assertEqual(ok, 5000, out)
        ok, out = self.h2load("-n", 20000, "-c", 50, "-m", 20)
        self.assertEqual(ok, 20000, out)
        self.assertHealthy()
        # The same load again must not grow the process much further.
        self.assertLess(rss_kib(self.srv.proc.pid) - after_first, 64 * 1024)


if __name__ == "__main__":
    unittest.main()
