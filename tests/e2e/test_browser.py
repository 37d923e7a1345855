"""End-to-end test of the dashboard in a real browser.

Dev broker -> engine (with its HTTP server) <- simulator producing 2 000
orders/s for 30 s (half an hour of event time); then tests/browser/dashboard.test.mjs drives Debian's
Chromium (playwright-core) against http://127.0.0.1:PORT/ and compares every
panel with /api/v1/snapshot, watches the numbers move, and checks the SSE ->
polling fallback.

OP_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png (1920x1080).
"""

import json
import os
import shutil
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import ROOT, E2ETest, binary, free_port, wait_for

BROWSER_TEST = os.path.join(ROOT, "tests", "browser", "dashboard.test.mjs")
CHROMIUM = os.environ.get("OP_CHROMIUM", "/usr/bin/chromium")
START = "2024-11-11T00:00:00"


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
    def test_dashboard(self):
        node = shutil.which("node")
        need(node, "node")
        need(os.access(CHROMIUM, os.X_OK), CHROMIUM)
        need(os.path.isdir(os.path.join(ROOT, "node_modules", "playwright-core")),
             "node_modules/playwright-core (npm ci)")
        need(os.path.isfile(os.path.join(ROOT, "node_modules", "echarts", "dist", "echarts.min.js")),
             "node_modules/echarts (npm ci)")

        _, boot = self.start_devbroker(partitions=8)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        engine = self.start([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                             "--group", "ui", "--tick", "500ms", "--http", f"127.0.0.1:{port}"])

        def assigned():
            self.assertTrue(engine.alive(), "the engine exited:\n" + engine.stderr_text())
            return "assigned" in engine.stderr_text() or http_get(base + "/readyz")[0] == 200
        wait_for(assigned, 30, "the partition assignment")

        # A simulated clock at 60x: the 30 s run spans half an hour of event
        # time, so the per-minute, final-minute and 10-minute panels all fill.
        self.start([binary("orderpulse-sim"), "--brokers", boot, "--topic", "orders",
                    "--rate", 2000, "--duration", "30s", "--start", START, "--speed", 60,
                    "--quiet"])

        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 15, "/healthz")

        def orders():
            status, body = http_get(base + "/api/v1/snapshot")
            return status == 200 and json.loads(body)["totals"]["orders"] > 0
        wait_for(orders, 30, "the first orders in /api/v1/snapshot", interval=0.2)

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


if __name__ == "__main__":
    unittest.main()
