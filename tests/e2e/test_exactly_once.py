"""Exactly-once into Redis in the corners: rebalances while Redis is down, a file
replayed twice, lateness across restarts, lost replies, errors inside a commit,
state keys without their offsets, and Kafka properties that would break the
protocol. Every test ends by comparing the whole state Redis holds -- every
user, every window, late and bad counts -- with the simulator's truth.
"""

import os
import random
import signal
import subprocess
import time

from harness import (E2ETest, Redis, binary, free_port, load_json, read_log_state, redis_state,
                     state_diff, wait_for)

START = "2024-11-11T00:00:00"
KAFKA_FAST = "session.timeout.ms=6000,heartbeat.interval.ms=500"


class ExactlyOnce(E2ETest):
    def engine(self, boot, port, group, *extra, snap=None, name="orderpulse"):
        argv = [binary("orderpulse"), "--brokers", boot, "--group", group, "--workers", 2,
                "--tick", "200ms", "--redis", f"127.0.0.1:{port}", "--kafka-config", KAFKA_FAST]
        if snap:
            argv += ["--snapshot-file", snap]
        return self.start(argv + [str(a) for a in extra], name=name)

    def stream(self, boot, orders, rate, *extra):
        """The simulator, in the background; returns (process, truth, users truth)."""
        truth, users = self.path("truth.json"), self.path("users.tsv")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", rate,
                          "--count", orders, "--start", START, "--jitter", "2s",
                          "--bad-fraction", 0.01, "--truth", truth, "--truth-users", users,
                          "--quiet", *extra], name="orderpulse-sim")
        return sim, truth, users

    def settle_and_compare(self, port, truth_path, users_path, timeout=120):
        """Waits until Redis holds every record of the truth, then compares all of it."""
        truth = load_json(truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]

        def complete():
            st = redis_state(port)
            return st if st["totals"]["orders"] + st["bad"] >= total else None
        wait_for(complete, timeout, f"Redis to hold {total} records")
        time.sleep(1.0)  # anything beyond the truth would show up now
        diff = state_diff(redis_state(port), truth, users_path)
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        return truth

    # --- hole 1 ---------------------------------------------------------------

    def test_rebalance_while_redis_is_down(self):
        """Engine A; Redis and engine B frozen; A consumes alone for 7 s (B's
        session expires: a rebalance with Redis unreachable); B thaws and
        joins again; Redis thaws. Run OP_E2E_REBALANCE_RUNS times (3 here, 20 in
        make chaos), exact every time."""
        runs = int(os.environ.get("OP_E2E_REBALANCE_RUNS", "3"))
        for run in range(runs):
            with self.subTest(run=run):
                self.rebalance_while_redis_is_down(run)

    def rebalance_while_redis_is_down(self, run):
        procs = len(self._procs)
        _, boot = self.start_devbroker(partitions=8)
        redis, port = self.start_redis()
        a = self.engine(boot, port, "g", name="engine-a")
        b = self.engine(boot, port, "g", name="engine-b")
        wait_for(lambda: "assigned" in a.stderr_text() and "assigned" in b.stderr_text(), 60,
                 "both engines to get partitions")
        sim, truth, users = self.stream(boot, 150000, 5000, "--seed", run + 1)
        time.sleep(3)
        redis.signal(signal.SIGSTOP)
        b.signal(signal.SIGSTOP)
        # B's session expires: A takes every partition while Redis cannot be
        # asked where B's resume, and consumes alone for 7 s.
        wait_for(lambda: "assigned 8 partition(s)" in a.stderr_text(), 60,
                 "A to take B's partitions")
        time.sleep(7)
        b_before = b.stderr_text().count("assigned")
        b.signal(signal.SIGCONT)
        # B rejoins and the group rebalances again, still without Redis.
        wait_for(lambda: b.stderr_text().count("assigned") > b_before, 60,
                 "B to get partitions again")
        time.sleep(1)
        redis.signal(signal.SIGCONT)
        self.assertEqual(sim.wait(timeout=120), 0, sim.stderr_text())
        self.settle_and_compare(port, truth, users)
        for e in (a, b):
            self.assertTrue(e.alive(), e.stderr_text()[-3000:])
        for p in self._procs[procs:]:
            p.stop()

    # --- hole 2 ---------------------------------------------------------------

    def test_file_replayed_twice_counts_once(self):
        data = self.path("orders.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 10000, "--start", START,
                      "--bad-fraction", 0.01, "--truth", self.path("truth.json"),
                      "--truth-users", self.path("users.tsv"), "--quiet"])
        _, port = self.start_redis()
        for _ in range(2):
            r = subprocess.run([binary("orderpulse"), "--source", f"file:{data}", "--once",
                                "--workers", "2", "--redis", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        diff = state_diff(redis_state(port), load_json(self.path("truth.json")),
                          self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences after replaying the file twice")

    # --- a kill in the middle of a flush of many chunks ------------------------

    def test_kills_in_the_middle_of_big_flushes(self):
        """kill -9 at random moments while the engine flushes ticks of ~100 000
        new users each (two 1 MiB chunks or more: the first staged while the
        rest is encoded), OP_E2E_KILLS times; then the file to its end. Redis
        holds the truth: every user, every window, bad records. An engine gets
        a few hundred thousand orders in before its kill, so the file grows
        with the kills."""
        kills = int(os.environ.get("OP_E2E_KILLS", "5"))
        orders = 200000 * kills
        rng = random.Random(os.environ.get("OP_E2E_SEED", str(time.time())))
        data, truth, users = self.path("orders.jsonl"), self.path("truth.json"), \
            self.path("users.tsv")
        self.run_sim(["--out", data, "--rate", 0, "--count", orders, "--users", 2000000,
                      "--zipf", 0, "--start", START, "--jitter", "2s", "--bad-fraction", 0.01,
                      "--truth", truth, "--truth-users", users, "--quiet"])
        _, port = self.start_redis()
        r = Redis(port)
        argv = [binary("orderpulse"), "--source", f"file:{data}", "--once", "--workers", 2,
                "--redis", f"127.0.0.1:{port}", "--tick", "20ms"]

        def pos():
            return int(r.call("HGET", "{op}:meta", "pos") or 0)
        positions = []
        for i in range(kills):
            # Each engine is killed once it has committed something of its
            # own, a random moment into its next flushes.
            before = pos()
            eng = self.start(argv, name=f"orderpulse-{i}")
            wait_for(lambda: pos() > before or not eng.alive(), 30, f"engine {i} to commit",
                     interval=0.002)
            time.sleep(rng.uniform(0.0, 0.02))
            if not eng.alive():
                break  # the file is done: nothing left to kill in
            eng.kill()
            positions.append(pos())
        done = subprocess.run([str(a) for a in argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr.decode())
        final = int(r.call("HGET", "{op}:meta", "pos"))
        landed = sum(0 < p < final for p in positions)
        print(f"\n{landed} of {kills} kills landed between two commits (log positions "
              f"{positions}, {final} at the end)")
        self.assertGreater(landed, 0, f"no kill landed between two commits (log positions "
                           f"{positions}, {final} at the end)")
        diff = state_diff(redis_state(port), load_json(truth), users)
        self.assertEqual(diff[:20], [], f"{len(diff)} differences after {kills} kills")

    # --- hole 3 ---------------------------------------------------------------

    def kills_with_late_orders(self, late):
        """4 x kill -9 while the simulator produces 30 % late orders (its clock
        runs 10x, so the late orders start after 13 s)."""
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        sim, truth, users = self.stream(boot, 200000, 5000, "--speed", 10, "--late-fraction", 0.3,
                                        "--truth-late", late)
        rng = random.Random(os.environ.get("OP_E2E_SEED", str(time.time())))
        eng = self.engine(boot, port, "k0", "--late", late)
        for i in range(4):
            wait_for(lambda: "assigned" in eng.stderr_text(), 60, "the assignment")
            time.sleep(rng.uniform(2.0, 4.0))
            self.assertTrue(sim.alive(), "the stream ended before every kill landed")
            eng.kill()
            eng = self.engine(boot, port, f"k{i + 1}", "--late", late)
        self.assertEqual(sim.wait(timeout=120), 0, sim.stderr_text())
        t = self.settle_and_compare(port, truth, users)
        self.assertGreater(t["stats"]["late_records"], 10000)

    def test_late_counts_survive_kills(self):
        self.kills_with_late_orders("apply")

    def test_late_drop_windows_survive_kills(self):
        self.kills_with_late_orders("drop")

    # --- hole 4 ---------------------------------------------------------------

    def test_lost_replies_are_recognised(self):
        """Redis pauses writes for longer than the engine's read timeout, over
        and over: each commit's reply is lost although Redis executes it. The
        engine must recognise its own commit, not count twice, not exit."""
        _, boot = self.start_devbroker(partitions=8)
        _, port = self.start_redis()
        eng = self.engine(boot, port, "l", "--redis-timeout", "300ms")
        wait_for(lambda: "assigned" in eng.stderr_text(), 60, "the assignment")
        sim, truth, users = self.stream(boot, 100000, 5000)
        r = Redis(port)
        while sim.alive():
            r.call("CLIENT", "PAUSE", 600, "WRITE")
            time.sleep(1.0)
        r.close()
        self.assertEqual(sim.wait(timeout=60), 0)
        self.settle_and_compare(port, truth, users)
        self.assertTrue(eng.alive(), eng.stderr_text()[-3000:])

    # --- hole 5 ---------------------------------------------------------------

    def test_wrong_type_key_applies_nothing(self):
        """A key the engine writes holds another type (left by someone else):
        nothing of the commit may be applied, the engine says so in one line and
        in /readyz, retries, and is exact once the key is removed."""
        _, boot = self.start_devbroker(partitions=4)
        _, port = self.start_redis()
        http = free_port()
        eng = self.engine(boot, port, "w", "--http", f"127.0.0.1:{http}")
        wait_for(lambda: "assigned" in eng.stderr_text(), 60, "the assignment")
        sim, truth, users = self.stream(boot, 40000, 5000)
        time.sleep(2)
        r = Redis(port)
        bad_key = wrong_type_target()
        r.call("DEL", bad_key)
        r.call("SET", bad_key, "someone else's")
        wait_for(lambda: "WRONGTYPE" in eng.stderr_text() or "wrong type" in eng.stderr_text(),
                 30, "the engine to report the wrong key type")
        wait_for(lambda: http_status(http, "/readyz") == 503, 5, "/readyz to say not ready")
        time.sleep(2)
        r.call("DEL", bad_key)
        r.close()
        self.assertEqual(sim.wait(timeout=60), 0)
        self.settle_and_compare(port, truth, users)
        wait_for(lambda: http_status(http, "/readyz") == 200, 30, "/readyz to recover")
        self.assertTrue(eng.alive())

    # --- hole 6 ---------------------------------------------------------------

    def test_state_without_its_offsets_is_refused(self):
        """Offsets evicted (or deleted) while the state keys survive: a restart
        must not read that as 'never counted' and replay from the beginning on
        top of the old state."""
        _, boot = self.start_devbroker(partitions=4)
        _, port = self.start_redis()
        self.run_sim(["--brokers", boot, "--rate", 0, "--count", 20000, "--start", START,
                      "--truth", self.path("truth.json"), "--truth-users",
                      self.path("users.tsv"), "--quiet"])
        eng = self.engine(boot, port, "e1")
        wait_for(lambda: redis_state(port)["totals"]["orders"] == 20000, 60, "20 000 orders")
        eng.stop()
        r = Redis(port)
        for key in offset_keys(r):
            r.call("DEL", key)
        r.close()
        again = self.engine(boot, port, "e2")
        try:
            code = again.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        diff = state_diff(redis_state(port), load_json(self.path("truth.json")),
                          self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences: the state was counted again")
        self.assertIsNotNone(code, "the engine kept running on a state without offsets")
        self.assertNotEqual(code, 0)
        self.assertIn("offset", again.stderr_text())

    # --- hole 8 ---------------------------------------------------------------

    def test_properties_the_protocol_depends_on_are_refused(self):
        for prop in ("partition.assignment.strategy=cooperative-sticky",
                     "enable.auto.offset.store=true", "enable.partition.eof=false",
                     "group.id=other", "auto.offset.reset=latest"):
            with self.subTest(prop=prop):
                r = subprocess.run([binary("orderpulse"), "--brokers", "127.0.0.1:1",
                                    "--redis", "127.0.0.1:1", "--kafka-config", prop],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, err)
                self.assertIn(prop.split("=")[0], err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)


def wrong_type_target():
    """A key every commit writes."""
    return "{op}:totals"


def offset_keys(r):
    """Where the partitions' offsets and owners live (docs/REDIS.md)."""
    return ["{op}:parts"]


def http_status(port, path):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        return c.getresponse().status
    except OSError:
        return None


class Migration(E2ETest):
    def test_layout_1_keys_are_migrated_whole(self):
        """Layout-1 keys written by hand (as an engine of the previous version
        left them): the engine refuses them with the way out, --redis-migrate
        converts them, and the log then holds every figure they held."""
        _, port = self.start_redis()
        r = Redis(port)
        m0, m1 = 1731283200000, 1731283260000
        r.call("SET", "{op}:schema", "1")
        r.call("HSET", "{op}:totals", "orders", 7, "quantity", 11, "amount", 123456, "bad", 2,
               "late", 1)
        r.call("HSET", "{op}:bad", "syntax", 2)
        for kind, vals in (("q", (9, 2)), ("a", (100000, 23456)), ("o", (5, 2))):
            r.call("HSET", f"{{op}}:brand:{kind}", "Apple", vals[0], "小米", vals[1])
            r.call("HSET", f"{{op}}:gender:{kind}", "男", vals[0], "女", vals[1])
        r.call("ZADD", "{op}:users", 100000, "张伟", 23456, "李娜")
        r.call("HSET", "{op}:user:o", "张伟", 5, "李娜", 2)
        r.call("HSET", f"{{op}}:minute:{m0}", "orders", 4, "quantity", 6, "amount", 70000)
        r.call("HSET", f"{{op}}:minute:{m1}", "orders", 3, "quantity", 5, "amount", 53456)
        r.call("HSET", f"{{op}}:catmin:{m0}", "手机\x1fq", 6, "手机\x1fa", 70000, "手机\x1fo", 4)
        r.call("HSET", f"{{op}}:slot:{m0}", "男", 9, "女", 2)
        r.call("SET", "{op}:offset:orders:0", 40)
        r.call("SET", "{op}:offset:orders:3", 17)
        r.close()
        eng = subprocess.run([binary("orderpulse"), "--brokers", "127.0.0.1:1", "--redis",
                              f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(eng.returncode, 0)
        self.assertIn("--redis-migrate", eng.stderr.decode())
        mig = subprocess.run([binary("orderpulse"), "--redis", f"127.0.0.1:{port}",
                              "--redis-migrate"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(mig.returncode, 0, mig.stderr.decode())
        self.assertIn("2 partitions", mig.stderr.decode())
        r = Redis(port)
        st = read_log_state(r)
        self.assertEqual(st["totals"], {"orders": 7, "quantity": 11, "amount": 123456})
        self.assertEqual(st["late"], 1)
        self.assertEqual(st["bad"], {"syntax": 2})
        self.assertEqual(st["brands"], {"Apple": [5, 9, 100000], "小米": [2, 2, 23456]})
        self.assertEqual(st["genders"], {"男": [5, 9, 100000], "女": [2, 2, 23456]})
        self.assertEqual(st["users"], {"张伟": [100000, 5], "李娜": [23456, 2]})
        self.assertEqual(st["minutes"], {m0 // 60000: [4, 6, 70000], m1 // 60000: [3, 5, 53456]})
        self.assertEqual(st["catmin"], {(m0 // 60000, "手机"): [4, 6, 70000]})
        self.assertEqual({k: v[1] for k, v in st["gslots"].items()},
                         {(m0 // 600000, "男"): 9, (m0 // 600000, "女"): 2})
        parts = {k.decode(): v.decode().split() for k, v in
                 zip(*[iter(r.call("HGETALL", "{op}:parts"))] * 2)}
        self.assertEqual({k: int(v[2]) for k, v in parts.items()},
                         {"kafka:orders:0": 40, "kafka:orders:3": 17})
        self.assertEqual(r.keys("{op}:offset:*") + r.keys("{op}:minute:*") +
                         r.keys("{op}:brand:*") + r.keys("{op}:schema"), [])
        r.close()
        again = subprocess.run([binary("orderpulse"), "--redis", f"127.0.0.1:{port}",
                                "--redis-migrate"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(again.returncode, 0)
        self.assertIn("nothing to migrate", again.stderr.decode())


class RedisRefuses(E2ETest):
    """Redis answering errors instead of taking the commits: one clear line,
    /readyz not ready, retried without loss, exact once Redis takes writes."""

    def run_through(self, port, fault, heal, expect):
        _, boot = self.start_devbroker(partitions=4)
        http = free_port()
        eng = self.start([binary("orderpulse"), "--brokers", boot, "--group", "f", "--workers", 2,
                          "--tick", "200ms", "--redis", f"127.0.0.1:{port}", "--http",
                          f"127.0.0.1:{http}"])
        wait_for(lambda: "assigned" in eng.stderr_text(), 60, "the assignment")
        truth, users = self.path("truth.json"), self.path("users.tsv")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", 5000, "--count",
                          40000, "--start", "2024-11-11T00:00:00", "--bad-fraction", 0.01,
                          "--truth", truth, "--truth-users", users, "--quiet"])
        time.sleep(2)
        fault()
        wait_for(lambda: expect in eng.stderr_text(), 30, f"the engine to say {expect}")
        wait_for(lambda: http_status(http, "/readyz") == 503, 10, "/readyz to say not ready")
        lines = [ln for ln in eng.stderr_text().splitlines() if expect in ln]
        self.assertLessEqual(len(lines), 6, "the error is repeated instead of said once")
        time.sleep(3)
        heal()
        self.assertEqual(sim.wait(timeout=60), 0)
        t = load_json(truth)
        total = t["totals"]["orders"] + t["stats"]["bad_records"]
        wait_for(lambda: (lambda s: s["totals"]["orders"] + s["bad"] >= total)(redis_state(port)),
                 90, "Redis to hold every record")
        time.sleep(1)
        diff = state_diff(redis_state(port), t, users)
        self.assertEqual(diff[:20], [], f"{len(diff)} differences")
        wait_for(lambda: http_status(http, "/readyz") == 200, 30, "/readyz to recover")
        self.assertTrue(eng.alive())

    def test_out_of_memory(self):
        _, port = self.start_redis()
        r = Redis(port)
        self.run_through(port, lambda: r.call("CONFIG", "SET", "maxmemory", "1"),
                         lambda: r.call("CONFIG", "SET", "maxmemory", "0"), "OOM")
        r.close()

    def test_read_only_replica(self):
        """The engine's Redis becomes a replica (of a copy of itself) for a while."""
        _, port = self.start_redis()
        _, other = self.start_redis()
        p, r = Redis(port), Redis(other)
        r.call("REPLICAOF", "127.0.0.1", port)

        def fault():
            r.call("REPLICAOF", "NO", "ONE")
            p.call("REPLICAOF", "127.0.0.1", other)

        def heal():
            p.call("REPLICAOF", "NO", "ONE")
            r.call("REPLICAOF", "127.0.0.1", port)
        self.run_through(port, fault, heal, "READONLY")
        p.close()
        r.close()
