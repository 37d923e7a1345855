"""End-to-end tests of the dashboard in a real browser.

Dev broker -> engine (with its HTTP server) <- simulator producing 2 000
orders/s for 30 s (half an hour of event time, 1 % of the orders late, so
closed minutes get revised); then tests/browser/dashboard.test.mjs drives
Debian's Chromium (playwright-core) against http://127.0.0.1:PORT/ and
compares every panel with /api/v1/snapshot, watches the numbers move, and
checks the languages, the still mode and the SSE -> polling fallback.
tests/browser/liveness.test.mjs then watches the page while this test
freezes the engine (SIGSTOP), thaws it, stops it (SIGTERM) and starts it
again: the stale banner must be up within three ticks each time and go when
the engine is back. A still of the page is taken the way the issue tried it:
`chromium --headless --virtual-time-budget --screenshot` with ?stream=0.

OP_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png and
docs/dashboard-engine-down.png (1920x1080).
"""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from harness import ROOT, E2ETest, binary, free_port, wait_for

BROWSER_TEST = os.path.join(ROOT, "tests", "browser", "dashboard.test.mjs")
LIVENESS_TEST = os.path.join(ROOT, "tests", "browser", "liveness.test.mjs")
CHROMIUM = os.environ.get("OP_CHROMIUM", "/usr/bin/chromium")
START = "2024-11-11T00:00:00+08:00"  # the sales day's midnight in the display zone


def need(ok, what):
    """Like harness.binary(): a missing tool fails, or skips with OP_ALLOW_SKIP."""
    if ok:
        return
    if os.environ.get("OP_ALLOW_SKIP"):
        raise unittest.SkipTest(f"{what} is missing")
    raise FileNotFoundError(f"{what} is missing (run make deps)")


def http_get(url, timeout=2.0):
    """(status, body bytes), or (None, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return None, b""


class DashboardInBrowser(E2ETest):
    def setUp(self):
        super().setUp()
        self.node = shutil.which("node")
        need(self.node, "node")
        need(os.access(CHROMIUM, os.X_OK), CHROMIUM)
        need(os.path.isdir(os.path.join(ROOT, "node_modules", "playwright-core")),
             "node_modules/playwright-core (npm ci)")
        need(os.path.isfile(os.path.join(ROOT, "node_modules", "echarts", "dist", "echarts.min.js")),
             "node_modules/echarts (npm ci)")

    def start_engine(self, boot, port, tick):
        base = f"http://127.0.0.1:{port}"
        engine = self.start([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                             "--group", "ui", "--tick", tick, "--http", f"127.0.0.1:{port}"])

        def assigned():
            self.assertTrue(engine.alive(), "the engine exited:\n" + engine.stderr_text())
            return "assigned" in engine.stderr_text() or http_get(base + "/readyz")[0] == 200
        wait_for(assigned, 30, "the partition assignment")
        return engine

    def live_engine(self, duration="30s", tick="500ms"):
        """An engine fed by the simulator; returns (engine, base URL, broker)."""
        _, boot = self.start_devbroker(partitions=8)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        engine = self.start_engine(boot, port, tick)
        # A simulated clock at 60x: the 30 s run spans half an hour of event
        # time, so the per-minute, closed-minute and 10-minute panels all
        # fill; late orders (10-120 s of event time) revise closed minutes.
        self.start([binary("orderpulse-sim"), "--brokers", boot, "--topic", "orders",
                    "--rate", 2000, "--duration", duration, "--start", START, "--speed", 60,
                    "--jitter", "2s", "--late-fraction", 0.01, "--quiet"])
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 15, "/healthz")

        def orders():
            status, body = http_get(base + "/api/v1/snapshot")
            return status == 200 and json.loads(body)["totals"]["orders"] > 0
        wait_for(orders, 30, "the first orders in /api/v1/snapshot", interval=0.2)
        return engine, base, boot

    def test_dashboard(self):
        engine, base, _ = self.live_engine()
        node = self.node
        env = dict(os.environ, OP_DASHBOARD_URL=base + "/")
        if os.environ.get("OP_UPDATE_SCREENSHOT") == "1":
            env["OP_SCREENSHOT"] = os.path.join(ROOT, "docs", "dashboard.png")
        r = subprocess.run([node, BROWSER_TEST], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        out = r.stdout.decode("utf-8", "replace")
        if os.environ.get("OP_E2E_VERBOSE") or r.returncode != 0:
            print("\n--- dashboard.test.mjs ---\n" + out)
        self.assertEqual(r.returncode, 0, "the browser test failed:\n" + out[-4000:])
        self.assertTrue(engine.alive(), engine.stderr_text())

    def test_headless_screenshot_of_a_still_finishes(self):
        """The issue's way: chromium --headless --virtual-time-budget
        --screenshot never finished on the live page (the open event stream
        holds the virtual clock); with ?stream=0 it does."""
        _, base, _ = self.live_engine()
        shot = self.path("still.png")
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--hide-scrollbars",
                            "--window-size=1920,1080", "--virtual-time-budget=5000",
                            f"--screenshot={shot}", base + "/?stream=0&animation=0"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr.decode("utf-8", "replace")[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 50000, "an empty page")

    def test_stale_banner_when_the_engine_stops_and_comes_back(self):
        # The default 1 s tick: the banner must be up within 3 s.
        engine, base, boot = self.live_engine(duration="120s", tick="1s")
        port = int(base.rsplit(":", 1)[1])
        env = dict(os.environ, OP_DASHBOARD_URL=base + "/")
        if os.environ.get("OP_UPDATE_SCREENSHOT") == "1":
            env["OP_SCREENSHOT"] = os.path.join(ROOT, "docs", "dashboard-engine-down.png")
        node = subprocess.Popen([self.node, LIVENESS_TEST], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        said = []

        def expect(word):
            line = node.stdout.readline().strip()
            said.append(line)
            self.assertTrue(line.startswith(word), f"liveness test said {said}")

        def tell(line):
            node.stdin.write(line + "\n")
            node.stdin.flush()
        try:
            expect("ready")
            if "OP_SCREENSHOT" in env:
                time.sleep(15)  # a fuller picture for the docs
            engine.signal(signal.SIGSTOP)
            tell(f"frozen {int(time.time() * 1000)}")
            expect("stale")
            engine.signal(signal.SIGCONT)
            tell("thawed")
            expect("fresh")
            stopped_at = int(time.time() * 1000)
            self.assertEqual(engine.stop(timeout=30), 0, engine.stderr_text())
            tell(f"stopped {stopped_at}")
            expect("stale")
            self.start_engine(boot, port, "1s")
            tell("started")
            expect("fresh")
            tell("done")
            expect("ok")
            self.assertEqual(node.wait(timeout=30), 0)
        finally:
            if node.poll() is None:
                node.kill()
            rest = node.stdout.read()
            node.wait()
            node.stdin.close()
            node.stdout.close()
            if os.environ.get("OP_E2E_VERBOSE") or node.returncode != 0:
                print("\n--- liveness.test.mjs ---\n" + "\n".join(said) + "\n" + rest)


if __name__ == "__main__":
    unittest.main()
