"""Kafka faults: brokers down, request errors, members joining and leaving,
records the broker deleted. The dev broker runs with --control (fault
commands, sim/mockctl.h) and real Redis holds the exactly-once state: after
each stream every Redis key equals the simulator's truth, to the cent, and
the engine reports no lost records. The loss tests check the opposite: what
the broker deleted is counted, per partition, and logged with its range.

Longer variants (more rounds, more orders) run in `make chaos` through
OP_E2E_FAULT_ROUNDS and OP_E2E_FAULT_ORDERS."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

from harness import (DevbrokerControl, E2ETest, binary, free_port, load_json, redis_snapshot,
                     redis_state, snapshot_diff, state_diff, wait_for)

START = "2024-11-11T00:00:00"
ROUNDS = int(os.environ.get("OP_E2E_FAULT_ROUNDS", "3"))
ORDERS = int(os.environ.get("OP_E2E_FAULT_ORDERS", "100000"))
GROUP_CONF = "session.timeout.ms=6000,heartbeat.interval.ms=500"
PARTITIONS = 8


def assigned_count(text):
    """How many "assigned N partition(s)" lines an engine's stderr has."""
    return text.count("orderpulse: kafka: assigned ")


def get_json(port, path="/api/v1/snapshot"):
    """The engine's answer, or None while it does not answer 200 yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def last_assignment(text):
    """N of the last "assigned N partition(s)" line, or None."""
    found = re.findall(r"orderpulse: kafka: assigned (\d+) partition", text)
    return int(found[-1]) if found else None


class FaultsWithRedis(E2ETest):
    """One engine (or more) with Redis, the simulator producing at 5 000/s:
    ORDERS orders take ORDERS/5000 s; each partition's backlog while the
    engine cannot read stays far below the dev broker's ~5 MB."""

    def setUp(self):
        super().setUp()
        try:
            self.broker, self.boot = self.start_devbroker(partitions=PARTITIONS, control=True)
            self.ctl = DevbrokerControl(self.broker)
            _, self.redis_port = self.start_redis()
        except BaseException:
            self.tearDown()  # unittest skips tearDown when setUp fails
            raise

    def engine(self, name, *extra):
        snap = self.path(f"{name}.json")
        e = self.start([binary("orderpulse"), "--brokers", self.boot, "--group", "faults",
                        "--workers", 2, "--tick", "200ms",
                        "--redis", f"127.0.0.1:{self.redis_port}", "--snapshot-file", snap,
                        "--kafka-config", GROUP_CONF, *extra], name=f"orderpulse-{name}")
        e.snap = snap
        return e

    def stream(self, count=ORDERS, rate=5000):
        self.truth_path = self.path("truth.json")
        self.count = count
        return self.start([binary("orderpulse-sim"), "--brokers", self.boot, "--rate", rate,
                           "--count", count, "--start", START, "--jitter", "2s",
                           "--late-fraction", 0.02, "--bad-fraction", 0.01,
                           "--truth", self.truth_path, "--truth-users", self.path("users.tsv"),
                           "--quiet"])

    def log_records(self):
        """How many records the broker's log holds: the partitions' high
        watermarks (kcat -Q), summed."""
        args = ["kcat", "-Q", "-b", self.boot]
        for p in range(PARTITIONS):
            args += ["-t", f"orders:{p}:-1"]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        found = re.findall(r"^orders \[\d+\] offset (\d+)$", r.stdout.decode(), re.M)
        self.assertEqual(len(found), PARTITIONS, r.stdout.decode())
        return sum(int(x) for x in found)

    def finish(self, sim, engines, local_view=None):
        """The stream ends; the log holds exactly what the simulator
        delivered; Redis holds every record; every key equals the truth.
        local_view: the engine whose own snapshot must equal the truth too
        (one engine consumed everything, loading from Redis)."""
        self.assertEqual(sim.wait(timeout=self.count // 5000 + 120), 0, sim.stderr_text())
        delivered = int(re.findall(r"delivered=(\d+)", sim.stderr_text())[-1])
        self.assertEqual(self.log_records(), delivered,
                         "the broker's log holds other records than the simulator delivered "
                         "(the truth is about what it delivered)")
        truth = load_json(self.truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]

        def holds_all():
            for e in engines:  # counted as lost: waiting on would only time out
                self.assertNotIn("deleted by the broker", e.stderr_text(),
                                 "an engine fell behind by more than the dev broker keeps "
                                 "(~5 MB a partition): records deleted before they were read")
            d = redis_snapshot(self.redis_port)
            return d["totals"]["orders"] + d["bad"] >= total
        wait_for(holds_all, 120, f"Redis to hold {total} records")
        time.sleep(1.0)
        diff = state_diff(redis_state(self.redis_port), truth, self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        for e in engines:
            self.assertTrue(e.alive(), e.stderr_text()[-3000:])
            self.assertNotIn("deleted by the broker", e.stderr_text())
        if local_view:
            def settled():
                doc = load_json(local_view.snap)
                return doc if doc["totals"]["orders"] == truth["totals"]["orders"] else None
            doc = wait_for(settled, 30, "the engine's snapshot to show every order")
            for m in doc["minutes"]:
                m.pop("final")
                m.pop("state", None)
            want = dict(truth)
            want["minutes"] = [{k: v for k, v in m.items() if k not in ("final", "state")}
                               for m in truth["minutes"]]
            diff = snapshot_diff(doc, want)
            self.assertEqual(diff[:20], [], f"{len(diff)} differences between the API and "
                                            "the truth")
            self.assertEqual(doc["stats"]["lost_records"], 0)
            self.assertEqual(doc["stats"]["bad_records"], truth["stats"]["bad_records"])
        return truth

    def test_brokers_down_10_seconds(self):
        """Every broker down for 10 s mid-stream (longer than the 6 s session
        timeout, so the group also expires the member and it joins again);
        once in make test, ROUNDS // 3 times in make chaos."""
        eng = self.engine("a")
        wait_for(lambda: assigned_count(eng.stderr_text()) >= 1, 30, "the assignment")
        sim = self.stream()
        for i in range(max(1, ROUNDS // 3)):
            n = assigned_count(eng.stderr_text())
            time.sleep(4)
            self.assertTrue(sim.alive(), f"the stream ended before outage {i}")
            # The producer holds with nothing in flight while the brokers are
            # down: the dev broker appends a retried produce twice (no
            # idempotence in librdkafka's mock cluster), and the truth is about
            # what the simulator delivered. The engine's side is unchanged: it
            # is reading behind the stream when the brokers go.
            held = sim.stderr_text().count("held:")
            sim.signal(signal.SIGUSR1)
            wait_for(lambda: sim.stderr_text().count("held:") > held, 30,
                     f"outage {i}: the simulator to hold")
            self.ctl.cmd("down all")
            time.sleep(10)
            self.ctl.cmd("up all")
            sim.signal(signal.SIGUSR2)
            wait_for(lambda: assigned_count(eng.stderr_text()) > n, 60,
                     f"outage {i}: the partitions to be assigned again")
        self.finish(sim, [eng], local_view=eng)

    def test_fetch_and_offset_commit_error_bursts(self):
        """Bursts of errors on Fetch (leader moved, unknown partition, a
        dropped connection) and OffsetCommit (timeouts, coordinator moved)
        every second while the stream runs."""
        eng = self.engine("a")
        wait_for(lambda: assigned_count(eng.stderr_text()) >= 1, 30, "the assignment")
        sim = self.stream()
        time.sleep(2)
        for i in range(max(ROUNDS * 3, 8)):
            if not sim.alive():
                break
            self.ctl.cmd("errors Fetch 20 NOT_LEADER_FOR_PARTITION,UNKNOWN_TOPIC_OR_PART,"
                         "_TRANSPORT,OFFSET_NOT_AVAILABLE")
            self.ctl.cmd("errors OffsetCommit 5 REQUEST_TIMED_OUT,COORDINATOR_NOT_AVAILABLE,"
                         "NOT_COORDINATOR,COORDINATOR_LOAD_IN_PROGRESS")
            time.sleep(1)
        self.ctl.cmd("clear Fetch")
        self.ctl.cmd("clear OffsetCommit")
        self.finish(sim, [eng], local_view=eng)

    def test_heartbeat_and_join_group_errors(self):
        """The coordinator answers heartbeats with "rebalance in progress"
        and "unknown member" (the member rejoins, partitions are revoked and
        assigned again) and fails some JoinGroup requests on the way."""
        eng = self.engine("a")
        wait_for(lambda: assigned_count(eng.stderr_text()) >= 1, 30, "the assignment")
        sim = self.stream()
        time.sleep(2)
        for i in range(ROUNDS):
            n = assigned_count(eng.stderr_text())
            self.ctl.cmd("errors JoinGroup 2 COORDINATOR_LOAD_IN_PROGRESS,NOT_COORDINATOR")
            self.ctl.cmd("errors Heartbeat 1 " + ("REBALANCE_IN_PROGRESS" if i % 2 == 0
                                                   else "UNKNOWN_MEMBER_ID"))
            wait_for(lambda: assigned_count(eng.stderr_text()) > n, 60,
                     f"round {i}: the partitions to be assigned again")
            time.sleep(1)
        self.ctl.cmd("clear JoinGroup")
        self.ctl.cmd("clear Heartbeat")
        self.finish(sim, [eng], local_view=eng)

    def test_second_engine_joins_and_leaves_three_times(self):
        """Engine b joins the group (partitions move to it), counts for a
        while and leaves cleanly (SIGTERM: its partitions move back), ROUNDS
        times while the simulator produces."""
        a = self.engine("a")
        wait_for(lambda: assigned_count(a.stderr_text()) >= 1, 30, "a's assignment")
        sim = self.stream(count=max(ORDERS, 60000 * ROUNDS))  # long enough for every round
        for i in range(ROUNDS):
            self.assertTrue(sim.alive(), f"the stream ended before round {i}")
            n = assigned_count(a.stderr_text())
            b = self.engine(f"b{i}")
            wait_for(lambda: assigned_count(b.stderr_text()) >= 1, 60,
                     f"round {i}: b's assignment")
            wait_for(lambda: b.alive() and os.path.exists(b.snap) and
                     load_json(b.snap)["totals"]["orders"] > 0, 30,
                     f"round {i}: b to count orders")
            self.assertEqual(b.stop(timeout=60), 0, b.stderr_text()[-3000:])
            # Eager rebalances: a gave half away when b joined, takes all back now.
            wait_for(lambda: assigned_count(a.stderr_text()) >= n + 2 and
                     last_assignment(a.stderr_text()) == 8, 60,
                     f"round {i}: a to take every partition back")
        self.finish(sim, [a])


class Lag(E2ETest):
    def test_partitions_and_lag_per_partition(self):
        """/metrics has one orderpulse_lag sample per partition the engine
        reads, the snapshot lists them, and both reach 0 once it caught up."""
        _, boot = self.start_devbroker(partitions=4)
        port = free_port()
        eng = self.start([binary("orderpulse"), "--brokers", boot, "--group", "lag",
                          "--workers", 2, "--tick", "100ms", "--http", f"127.0.0.1:{port}"])
        wait_for(lambda: "assigned 4 partition(s)" in eng.stderr_text(), 30, "the assignment")
        self.run_sim(["--brokers", boot, "--rate", 0, "--count", 20000, "--quiet"])

        def caught_up():
            doc = get_json(port)
            return doc if doc and doc["totals"]["orders"] == 20000 and doc["stats"]["lag"] == 0 \
                else None
        doc = wait_for(caught_up, 60, "the engine to read 20 000 orders")
        parts = doc["stats"]["partitions"]
        self.assertEqual([p["partition"] for p in parts], [0, 1, 2, 3])
        self.assertEqual(sum(p["next_offset"] for p in parts), 20000)
        for p in parts:
            self.assertEqual(p["next_offset"], p["end_offset"])
            self.assertEqual(p["lag"], 0)
        self.assertEqual(doc["stats"]["lost_records"], 0)
        self.assertEqual(doc["stats"]["lost_by_partition"], {})
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        lags = dict(re.findall(r'^orderpulse_lag\{partition="(\d+)"\} (\d+)$', text, re.M))
        self.assertEqual(lags, {"0": "0", "1": "0", "2": "0", "3": "0"})
        self.assertNotIn("orderpulse_lost_records_total{", text)


class LostRecords(E2ETest):
    """A group commits offset COMMITTED of a one-partition topic, then the
    simulator produces past the dev broker's ~5 MB, which deletes the start
    of the log. The next run counts what it finds and, as lost, the range
    between the committed offset and the new log start."""

    COMMITTED = 1000

    def setUp(self):
        super().setUp()
        try:
            self.commit_then_overflow()
        except BaseException:
            self.tearDown()  # unittest skips tearDown when setUp fails
            raise

    def commit_then_overflow(self):
        self.broker, self.boot = self.start_devbroker(partitions=1)
        self.run_sim(["--brokers", self.boot, "--rate", 0, "--count", self.COMMITTED,
                      "--seed", 1, "--quiet"])
        r = subprocess.run([binary("orderpulse"), "--brokers", self.boot, "--group", "lost",
                            "--once", "--workers", "2"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.run_sim(["--brokers", self.boot, "--rate", 0, "--count", 250000, "--seed", 2,
                      "--quiet"])
        self.total = self.COMMITTED + 250000
        self.log_start = self.low_watermark()
        self.assertGreater(self.log_start, self.COMMITTED, "the dev broker kept the log start")

    def low_watermark(self):
        out = subprocess.run(["kcat", "-Q", "-b", self.boot, "-t", "orders:0:-2"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=30).stdout.decode()
        return int(re.search(r"offset (\d+)", out).group(1))

    def line(self, text):
        want = (f"orderpulse: kafka: orders [0]: {self.log_start - self.COMMITTED} records at "
                f"offsets {self.COMMITTED}..{self.log_start - 1} were deleted by the broker "
                f"before they were read (log start {self.log_start})")
        lines = [s for s in text.splitlines() if "deleted by the broker" in s]
        self.assertEqual(len(lines), 1, text[-3000:])
        self.assertTrue(lines[0].startswith(want), f"{lines[0]!r}, want {want!r}")
        return lines[0]

    def test_once_counts_and_logs_the_deleted_range(self):
        r = subprocess.run([binary("orderpulse"), "--brokers", self.boot, "--group", "lost",
                            "--once", "--workers", "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err[-3000:])
        self.assertTrue(self.line(err).endswith("counted in lost_records"))
        doc = json.loads(r.stdout)
        lost = self.log_start - self.COMMITTED
        self.assertEqual(doc["stats"]["lost_records"], lost)
        self.assertEqual(doc["stats"]["lost_by_partition"], {"0": lost})
        self.assertEqual(doc["totals"]["orders"], self.total - self.log_start)
        # The committed offset moved past the gap: a second run loses nothing more.
        r = subprocess.run([binary("orderpulse"), "--brokers", self.boot, "--group", "lost",
                            "--once", "--workers", "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(r.returncode, 0)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["stats"]["lost_records"], 0)
        self.assertEqual(doc["totals"]["orders"], 0)

    def test_group_consumer_counts_it_in_metrics(self):
        port = free_port()
        eng = self.start([binary("orderpulse"), "--brokers", self.boot, "--group", "lost",
                          "--workers", 2, "--tick", "100ms", "--http", f"127.0.0.1:{port}"])
        want = self.total - self.log_start

        def counted():
            doc = get_json(port)
            return doc if doc and doc["totals"]["orders"] >= want else None
        doc = wait_for(counted, 60, f"the engine to count {want} orders")
        self.assertEqual(doc["totals"]["orders"], want)
        lost = self.log_start - self.COMMITTED
        self.assertEqual(doc["stats"]["lost_records"], lost)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        self.assertIn(f'orderpulse_lost_records_total{{partition="0"}} {lost}\n', text)
        self.line(eng.stderr_text())

    def test_on_loss_stop_exits_4_without_reading_past_the_gap(self):
        for once in (True, False):
            with self.subTest(once=once):
                p = self.start([binary("orderpulse"), "--brokers", self.boot, "--group", "lost",
                                "--workers", 2, "--on-loss", "stop",
                                *(["--once"] if once else [])], stdout=subprocess.PIPE)
                self.assertEqual(p.wait(timeout=60), 4, p.stderr_text()[-3000:])
                self.assertTrue(self.line(p.stderr_text()).endswith(
                    "stopping (--on-loss stop): they are not counted"))
                self.assertEqual(p.p.stdout.read(), b"", "a snapshot after --on-loss stop")


class LostRecordsWithRedis(E2ETest):
    def test_the_count_survives_a_restart(self):
        """With Redis, lost records are committed with the offsets past the
        gap (and with Redis, Redis's offset, not the group's, is where a
        partition resumes): a restart shows the same count, and does not
        count the gap twice."""
        _, boot = self.start_devbroker(partitions=1)
        _, rport = self.start_redis()
        port = free_port()

        def engine():
            return self.start([binary("orderpulse"), "--brokers", boot, "--group", "lr",
                               "--workers", 2, "--tick", "100ms", "--http", f"127.0.0.1:{port}",
                               "--redis", f"127.0.0.1:{rport}",
                               "--kafka-config", GROUP_CONF])

        def counted(orders):
            def check():
                doc = get_json(port)
                return doc if doc and doc["totals"]["orders"] == orders else None
            return wait_for(check, 90, f"the engine to show {orders} orders")

        self.run_sim(["--brokers", boot, "--rate", 0, "--count", 1000, "--seed", 1, "--quiet"])
        eng = engine()
        counted(1000)
        self.assertEqual(eng.stop(timeout=60), 0)
        self.run_sim(["--brokers", boot, "--rate", 0, "--count", 250000, "--seed", 2,
                      "--quiet"])
        out = subprocess.run(["kcat", "-Q", "-b", boot, "-t", "orders:0:-2"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=30).stdout.decode()
        log_start = int(re.search(r"offset (\d+)", out).group(1))
        lost, orders = log_start - 1000, 251000 - log_start + 1000
        eng = engine()
        doc = counted(orders)
        self.assertEqual(doc["stats"]["lost_records"], lost)
        time.sleep(1.0)  # a few ticks: the flush with the gap is in Redis
        self.assertEqual(eng.stop(timeout=60), 0)
        eng = engine()
        doc = counted(orders)
        self.assertEqual(doc["stats"]["lost_records"], lost, "the count after a restart")
        self.assertEqual(doc["stats"]["lost_by_partition"], {"0": lost})
        self.assertNotIn("deleted by the broker", eng.stderr_text())
