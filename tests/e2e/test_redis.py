"""Redis as the exactly-once store: after a stream, every Redis key equals
the simulator's truth, amounts to the cent -- also when the engine is killed
with SIGKILL at random moments while the simulator produces."""

import os
import random
import signal
import time

from harness import (E2ETest, Redis, binary, free_port, load_json, redis_ping, redis_snapshot,
                     redis_state, snapshot_diff, state_diff, wait_for)

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
        diff = state_diff(redis_state(redis_port), truth, self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        # The engine's own view (loaded from Redis after a restart, plus its
        # deltas since) is exact too.
        api = load_json(snap)
        for m in api["minutes"]:
            m.pop("final")
            m.pop("state", None)
        want = dict(truth)
        want["minutes"] = [{k: v for k, v in m.items() if k not in ("final", "state")}
                           for m in truth["minutes"]]
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
                      "--truth", truth_path, "--truth-users", self.path("users.tsv"), "--quiet"])
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
        # The simulated clock runs 4x, so that late orders (after 130 s of it)
        # happen while the kills do: lateness must survive restarts too.
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", 5000,
                          "--count", orders, "--start", START, "--jitter", "2s", "--speed", 4,
                          "--late-fraction", 0.05, "--bad-fraction", 0.01, "--truth", truth_path,
                          "--truth-users", self.path("users.tsv"), "--quiet"])
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


class RedisResilience(E2ETest):
    """Redis frozen or restarted, a zombie engine, two engines scaled out:
    the final state is exact every time."""

    orders = int(os.environ.get("OP_E2E_RESILIENCE_ORDERS", "100000"))

    def start_stream(self, boot, rate=5000):
        # 5 000/s for 20 s: the backlog that builds while an engine or Redis
        # is stopped for 10 s is ~50 000 orders, ~0.6 MB per partition after
        # lz4 -- far from the dev broker's ~5 MB per partition.
        truth_path = self.path("truth.json")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", rate,
                          "--count", self.orders, "--start", START, "--jitter", "2s",
                          "--bad-fraction", 0.01, "--truth", truth_path,
                          "--truth-users", self.path("users.tsv"), "--quiet"])
        return sim, truth_path

    def engine(self, boot, port, group, snap, *extra):
        return self.start([binary("orderpulse"), "--brokers", boot, "--group", group,
                           "--workers", 2, "--tick", "200ms", "--redis", f"127.0.0.1:{port}",
                           "--snapshot-file", snap,
                           "--kafka-config", "session.timeout.ms=6000,heartbeat.interval.ms=500",
                           *extra])

    def finish(self, sim, truth_path, port, snaps):
        self.assertEqual(sim.wait(timeout=180), 0, sim.stderr_text())
        truth = load_json(truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]
        wait_for(lambda: (lambda d: d["totals"]["orders"] + d["bad"] >= total)(
            redis_snapshot(port)), 120, f"Redis to hold {total} records")
        time.sleep(1.0)
        diff = state_diff(redis_state(port), truth, self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        return truth

    def test_redis_frozen_for_10_seconds(self):
        _, boot = self.start_devbroker(partitions=8)
        redis, port = self.start_redis()
        snap = self.path("snap.json")
        eng = self.engine(boot, port, "f", snap)
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the assignment")
        sim, truth_path = self.start_stream(boot)
        time.sleep(4)
        redis.signal(signal.SIGSTOP)
        time.sleep(10)
        redis.signal(signal.SIGCONT)
        self.finish(sim, truth_path, port, [snap])
        self.assertTrue(eng.alive(), eng.stderr_text())

    def test_redis_restarted_with_aof(self):
        _, boot = self.start_devbroker(partitions=8)
        port, d = free_port(), self.path("aof")
        os.makedirs(d)
        argv = ["redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", d,
                "--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        redis = self.start(argv, name="redis-server")
        wait_for(lambda: redis_ping(port), 10, "redis-server")
        snap = self.path("snap.json")
        eng = self.engine(boot, port, "a", snap)
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the assignment")
        sim, truth_path = self.start_stream(boot)
        time.sleep(5)
        redis.stop()
        time.sleep(2)
        self.start(argv, name="redis-server")
        wait_for(lambda: redis_ping(port), 10, "redis-server after the restart")
        self.finish(sim, truth_path, port, [snap])
        self.assertTrue(eng.alive(), eng.stderr_text())

    def test_zombie_is_fenced(self):
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        snaps = [self.path("a.json"), self.path("b.json")]
        a = self.engine(boot, port, "z", snaps[0])
        b = self.engine(boot, port, "z", snaps[1])
        wait_for(lambda: "assigned" in a.stderr_text() and "assigned" in b.stderr_text(), 60,
                 "both engines to get partitions")
        sim, truth_path = self.start_stream(boot)
        time.sleep(4)
        a.signal(signal.SIGSTOP)
        # Past the 6 s session timeout b takes a's partitions and commits
        # some of them: only then is a a zombie, holding stale records.
        wait_for(lambda: "assigned 8 partition(s)" in b.stderr_text(), 60,
                 "b to take over all partitions")
        mine = a.stderr_text().split("assigned 4 partition(s): ")[1].split("\n")[0]
        first = int(mine.split()[0].split("@")[0])
        r = Redis(port)

        def committed():  # the next offset Redis holds for partition `first`
            v = r.call("HGET", "{op}:parts", f"kafka:orders:{first}")
            return int(v.split()[2]) if v else -1
        before = committed()
        wait_for(lambda: committed() > before, 60, f"b to commit partition {first}")
        r.close()
        a.signal(signal.SIGCONT)
        # The zombie's stale commit must be refused; it then reloads from Redis
        # and rejoins the group (a rewind), without a restart from outside.
        wait_for(lambda: "rewinding" in a.stderr_text(), 60, "the zombie to rewind")
        self.assertIn("belongs to writer", a.stderr_text())
        self.finish(sim, truth_path, port, snaps)
        for e in (a, b):
            self.assertTrue(e.alive(), e.stderr_text()[-3000:])

    def test_scale_out_view_redis(self):
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        snaps = [self.path("a.json"), self.path("b.json")]
        a = self.engine(boot, port, "s", snaps[0])
        b = self.engine(boot, port, "s", snaps[1])
        wait_for(lambda: "assigned" in a.stderr_text() and "assigned" in b.stderr_text(), 60,
                 "both engines to get partitions")
        sim, truth_path = self.start_stream(boot)
        time.sleep(6)
        b.kill()                      # a takes over b's partitions after the session timeout
        truth = self.finish(sim, truth_path, port, snaps)
        # a serves the global view, including what b counted before it died.
        want = {"orders": truth["totals"]["orders"], "amount": truth["totals"]["amount"]}
        wait_for(lambda: (lambda d: {"orders": d["totals"]["orders"],
                                     "amount": d["totals"]["amount"]})(load_json(snaps[0]))
                 == want, 30, "engine a's snapshot to show the global totals")
        api = load_json(snaps[0])
        self.assertEqual(api["top_users"], truth["top_users"])
        self.assertEqual(api["brands"], truth["brands"])
        self.assertEqual(api["stats"]["bad_records"], truth["stats"]["bad_records"])


class RedisAuth(E2ETest):
    def test_password_from_the_environment(self):
        """--redis-password (here from ORDERPULSE_REDIS_PASSWORD): flushes
        reach a Redis that requires AUTH; a wrong password is one line and
        exit 1, not a crash."""
        _, boot = self.start_devbroker(partitions=2)
        _, port = self.start_redis(extra=("--requirepass", "s3cret"))
        snap = self.path("snap.json")
        bad = self.start([binary("orderpulse"), "--brokers", boot, "--redis",
                          f"127.0.0.1:{port}", "--snapshot-file", snap],
                         env={"ORDERPULSE_REDIS_PASSWORD": "wrong"})
        self.assertEqual(bad.wait(timeout=30), 1)
        self.assertIn("AUTH", bad.stderr_text())
        eng = self.start([binary("orderpulse"), "--brokers", boot, "--redis",
                          f"127.0.0.1:{port}", "--tick", "200ms", "--snapshot-file", snap],
                         env={"ORDERPULSE_REDIS_PASSWORD": "s3cret"})
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the assignment")
        self.run_sim(["--brokers", boot, "--rate", 0, "--count", 20000, "--start", START,
                      "--quiet"])
        r = Redis(port)
        r.call("AUTH", "s3cret")
        wait_for(lambda: int((r.hgetall("{op}:totals")).get("orders", 0)) == 20000, 60,
                 "20 000 orders in Redis")
        r.close()
