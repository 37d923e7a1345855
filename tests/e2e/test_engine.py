"""End-to-end exactness of the engine: every member of its snapshot against
the simulator's ground truth, amounts to the cent.

(a) file source, 1 M orders with jitter, 2 % late and 1 % bad records, with
    1 and 2 workers (--once);
(b) the dev broker, 8 partitions, 300 000 orders produced while the engine
    runs, keyed by user and with --key random.
"""

import base64
import json
import os
import time
import unittest

from harness import E2ETest, binary, load_json, snapshot_diff, wait_for

START = "2024-11-11T00:00:00"


def strip_final(doc):
    """Live runs: which minutes are final depends on timing, not on orders."""
    for m in doc.get("minutes", []):
        m.pop("final", None)
    return doc


class FileSourceExactness(E2ETest):
    orders = int(os.environ.get("OP_E2E_ORDERS", "1000000"))

    @classmethod
    def setUpClass(cls):
        cls.shared = E2ETest("run")
        cls.shared.setUp()
        cls.data = cls.shared.path("orders.jsonl")
        cls.truth_path = cls.shared.path("truth.json")
        cls.shared.run_sim(["--out", cls.data, "--rate", 0, "--count", cls.orders,
                            "--start", START, "--jitter", "2s", "--late-fraction", 0.02,
                            "--bad-fraction", 0.01, "--truth", cls.truth_path, "--quiet"])
        cls.truth = load_json(cls.truth_path)

    @classmethod
    def tearDownClass(cls):
        cls.shared.tearDown()

    def run_engine(self, workers):
        out, dl = self.path("snapshot.json"), self.path("dead.jsonl")
        with open(out, "wb") as f:
            p = self.start([binary("orderpulse"), "--source", "file:" + self.data, "--once",
                            "--workers", workers, "--dead-letter", dl, "--tick", "200ms"],
                           stdout=f)
            rc = p.wait(timeout=300)
        self.assertEqual(rc, 0, p.stderr_text())
        return load_json(out), dl

    def check(self, workers):
        got, dl = self.run_engine(workers)
        diff = snapshot_diff(got, self.truth)
        self.assertEqual(diff[:20], [], f"{len(diff)} differences")
        self.assertEqual(got["watermark"], self.truth["watermark"])
        self.assertTrue(all(m["final"] for m in got["minutes"]))
        stats, want = got["stats"], self.truth["stats"]
        self.assertGreater(want["bad_records"], 0)
        self.assertEqual(stats["bad_records"], want["bad_records"])
        self.assertEqual(sum(stats["bad_by_reason"].values()), want["bad_records"])
        # Lateness is decided per partition (here: per worker's chunk of the
        # file); a chunk's first records have no watermark yet, so with more
        # than one chunk a few deliberately late orders may pass as on time.
        self.assertGreater(want["late_records"], 0)
        if workers == 1:
            self.assertEqual(stats["late_records"], want["late_records"])
        else:
            self.assertLessEqual(stats["late_records"], want["late_records"])
            self.assertGreaterEqual(stats["late_records"], want["late_records"] - 20)
        # Every rejected record is in the dead letters, verbatim, once.
        with open(dl, "rb") as f:
            letters = [json.loads(line) for line in f]
        self.assertEqual(len(letters), want["bad_records"])
        with open(self.data, "rb") as f:
            raw = f.read()
        for d in letters[:2000]:
            rec = base64.b64decode(d["record_b64"])
            self.assertEqual(raw[d["offset"]:d["offset"] + len(rec)], rec)

    def test_one_worker(self):
        self.check(1)

    def test_two_workers(self):
        self.check(2)


class KafkaExactness(E2ETest):
    orders = int(os.environ.get("OP_E2E_KAFKA_ORDERS", "300000"))

    def check(self, key):
        _, boot = self.start_devbroker(partitions=8)
        snap = self.path("snapshot.json")
        engine = self.start([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                             "--group", "e2e", "--workers", 2, "--tick", "200ms",
                             "--snapshot-file", snap])
        wait_for(lambda: "assigned" in engine.stderr_text(), 30, "the partition assignment")
        truth_path = self.path("truth.json")
        # 30 000 orders/s keeps each partition's backlog far below the dev
        # broker's ~5 MB per partition even if the engine paused for a second.
        self.run_sim(["--brokers", boot, "--topic", "orders", "--key", key, "--rate", 30000,
                      "--count", self.orders, "--start", START, "--jitter", "2s",
                      "--late-fraction", 0.02, "--bad-fraction", 0.01,
                      "--truth", truth_path, "--quiet"])
        truth = load_json(truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]

        def settled():
            if not os.path.exists(snap):
                return None
            doc = load_json(snap)
            seen = doc["totals"]["orders"] + doc["stats"]["bad_records"]
            return doc if seen >= total else None

        got = wait_for(settled, 60, f"the engine to count {total} records")
        time.sleep(0.5)  # one more tick: nothing beyond the truth may arrive
        got = load_json(snap)
        self.assertTrue(engine.alive(), engine.stderr_text())
        diff = snapshot_diff(strip_final(got), strip_final(truth))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences")
        self.assertEqual(got["stats"]["bad_records"], truth["stats"]["bad_records"])

    def test_keyed_by_user(self):
        self.check("user")

    def test_random_keys(self):
        self.check("random")


class BadFlags(E2ETest):
    def test_bad_flags_exit_2_with_one_line(self):
        import subprocess
        for args in (["--workers", "0"], ["--tick", "fast"], ["--late", "sometimes"],
                     ["--source", "file:"], ["--bogus"], ["--timezone", "Mars"],
                     ["--source", "file:/nonexistent/x.jsonl", "--once"]):
            r = subprocess.run([binary("orderpulse"), *args], capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, (args, lines))
            self.assertTrue(lines[0].startswith("orderpulse: "), lines)


if __name__ == "__main__":
    unittest.main()
