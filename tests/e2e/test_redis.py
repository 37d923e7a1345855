"""Redis as the exactly-once store: after a stream, every Redis key equals
the simulator's truth, amounts to the cent -- also when the engine is killed
with SIGKILL at random moments while the simulator produces."""

import os
import random
import time

from harness import (E2ETest, binary, load_json, redis_snapshot, snapshot_diff,
                     truth_as_redis_holds_it, wait_for)

START = "2024-11-11T00:00:00"


class RedisExactness(E2ETest):
    def engine(self, boot, redis_port, group, snap):
        # A fresh group per (re)start: Redis, not the group, says where each
        # partition resumes, and a new group does not wait for the killed
        # member's session to expire.
        return self.start([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                           "--group", group, "--workers", 2, "--tick", "200ms",
                           "--redis", f"127.0.0.1:{redis_port}", "--snapshot-file", snap])

    def settle(self, redis_port, total):
        def done():
            doc = redis_snapshot(redis_port)
            return doc if doc["totals"]["orders"] + doc["bad"] >= total else None
        return wait_for(done, 90, f"Redis to hold {total} records")

    def check(self, redis_port, truth, snap):
        got = redis_snapshot(redis_port)
        diff = snapshot_diff(got, truth_as_redis_holds_it(truth))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        # The engine's own view (loaded from Redis after a restart, plus its
        # deltas since) is exact too.
        api = load_json(snap)
        for m in api["minutes"]:
            m.pop("final")
        want = dict(truth)
        want["minutes"] = [{k: v for k, v in m.items() if k != "final"} for m in truth["minutes"]]
        diff = snapshot_diff(api, want)
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between the API and the truth")

    def test_stream_then_every_key_exact(self):
        orders = int(os.environ.get("OP_E2E_REDIS_ORDERS", "500000"))
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        snap = self.path("snap.json")
        eng = self.engine(boot, port, "r1", snap)
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the partition assignment")
        truth_path = self.path("truth.json")
        # 50 000/s: the engine keeps up, so no partition's backlog nears the
        # dev broker's ~5 MB limit.
        self.run_sim(["--brokers", boot, "--rate", 50000, "--count", orders, "--start", START,
                      "--jitter", "2s", "--late-fraction", 0.02, "--bad-fraction", 0.01,
                      "--truth", truth_path, "--quiet"])
        truth = load_json(truth_path)
        self.settle(port, truth["totals"]["orders"] + truth["stats"]["bad_records"])
        time.sleep(0.5)
        self.check(port, truth, snap)

    def test_kill_9_at_random_moments(self):
        kills = int(os.environ.get("OP_E2E_KILLS", "5"))
        orders = int(os.environ.get("OP_E2E_CRASH_ORDERS", "200000"))
        rng = random.Random(os.environ.get("OP_E2E_SEED", str(time.time())))
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        snap = self.path("snap.json")
        truth_path = self.path("truth.json")
        # 5 000/s for 40 s, long enough for every kill to land mid-stream (a
        # restarted engine needs a few seconds to join a group on the dev
        # broker);
        # while the engine is down (a second or two each time) each
        # partition's backlog grows by under 1 MB, far from the dev broker's
        # ~5 MB limit.
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", 5000,
                          "--count", orders, "--start", START, "--jitter", "2s",
                          "--bad-fraction", 0.01, "--truth", truth_path, "--quiet"])
        eng = self.engine(boot, port, "c0", snap)
        for i in range(kills):
            # Kill only after this engine has committed something of its own,
            # so that every restart really resumes from Redis mid-stream.
            before = redis_snapshot(port)["totals"]["orders"]
            wait_for(lambda: redis_snapshot(port)["totals"]["orders"] > before, 30,
                     f"engine {i} to commit a flush")
            time.sleep(rng.uniform(0.0, 0.5))
            self.assertTrue(sim.alive(), "the stream ended before every kill landed")
            eng.kill()
            eng = self.engine(boot, port, f"c{i + 1}", snap)
        self.assertEqual(sim.wait(timeout=120), 0, sim.stderr_text())
        truth = load_json(truth_path)
        self.settle(port, truth["totals"]["orders"] + truth["stats"]["bad_records"])
        time.sleep(0.5)
        self.assertTrue(eng.alive(), eng.stderr_text())
        self.check(port, truth, snap)
