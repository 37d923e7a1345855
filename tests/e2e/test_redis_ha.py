"""Redis high availability (docs/REDIS.md, "Sentinel and Cluster"): the engine
follows Sentinel failovers and Redis Cluster redirections, migrations and
failovers, and stays exact when a failover loses writes it saw committed --
every Redis key, every user, late and bad counts and the API, compared with
the simulator's truth, read from whichever node is the primary at the end.

Each test also prints how long the engine went without a commit after a
primary died (from the kill to the first commit Redis timestamps), next to
Sentinel's down-after-milliseconds or the cluster's node timeout.
"""

import os
import random
import signal
import statistics
import subprocess
import time

from harness import (E2ETest, Redis, binary, cluster_owner, cluster_slots, free_port, load_json,
                     migrate_slot, redis_info, redis_state, sentinel_primary, sentinel_replicas_ok,
                     snapshot_diff, state_diff, wait_for)

START = "2024-11-11T00:00:00"
KAFKA_FAST = "session.timeout.ms=6000,heartbeat.interval.ms=500"
NAME = "opm"
SLOT = 9603  # CLUSTER KEYSLOT '{op}'
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
NODE_TIMEOUT_MS = 1000


def meta_pos(port):
    """The log position the primary on port holds (-1: unreachable)."""
    try:
        r = Redis(port, timeout=2)
        try:
            v = r.call("HGET", "{op}:meta", "pos")
        finally:
            r.close()
        return int(v) if v else 0
    except (OSError, ConnectionError, RuntimeError):
        return -1


def last_commit_ms(port):
    """Redis's own time of the newest write an engine made (op_commit stamps
    <prefix>:readers with it); 0 when there is none or no answer."""
    try:
        r = Redis(port, timeout=1)
        try:
            v = r.call("HVALS", "{op}:readers") or []
        finally:
            r.close()
        return max((int(x.split()[1]) for x in v), default=0)
    except (OSError, ConnectionError, RuntimeError, ValueError):
        return 0


def replica_backlog(r):
    """Bytes the primary (client r) holds for its replica, not yet sent."""
    text = r.call("CLIENT", "LIST", "TYPE", "replica").decode()
    return sum(int(w.split("=")[1]) for w in text.split() if w.startswith("omem="))


class HATest(E2ETest):
    def engine(self, boot, spec, group, snap, *extra, name="orderpulse"):
        return self.start([binary("orderpulse"), "--brokers", boot, "--group", group,
                           "--workers", 2, "--tick", "200ms", "--redis", spec,
                           "--kafka-config", KAFKA_FAST, "--snapshot-file", snap,
                           *[str(a) for a in extra]], name=name)

    def stream(self, boot, orders, rate=5000, seed=1):
        """The simulator in the background (late orders too: its clock runs 4x,
        so they happen while primaries die). Returns (process, truth path)."""
        truth = self.path("truth.json")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", rate,
                          "--count", orders, "--start", START, "--jitter", "2s", "--speed", 4,
                          "--late-fraction", 0.03, "--bad-fraction", 0.01, "--seed", seed,
                          "--truth", truth, "--truth-users", self.path("users.tsv"), "--quiet"],
                         name="orderpulse-sim")
        return sim, truth

    def settle_and_compare(self, sim, truth_path, primary, snaps, timeout=150):
        """Waits for the stream's end and for the primary (primary() says which
        port it is now) to hold every record; then compares all of it, and
        every engine's API, with the truth."""
        self.assertEqual(sim.wait(timeout=240), 0, sim.stderr_text())
        truth = load_json(truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]

        def complete():
            try:
                st = redis_state(primary())
            except (OSError, ConnectionError, RuntimeError, TypeError):
                return None
            return st if st["totals"]["orders"] + st["bad"] >= total else None
        wait_for(complete, timeout, f"the primary to hold {total} records", interval=0.5)
        time.sleep(1.0)  # anything beyond the truth would show up now
        diff = state_diff(redis_state(primary()), truth, self.path("users.tsv"))
        self.assertEqual(diff[:20], [], f"{len(diff)} differences between Redis and the truth")
        want = dict(truth)
        want["minutes"] = [{k: v for k, v in m.items() if k not in ("final", "state")}
                           for m in truth["minutes"]]
        for snap in snaps:
            def api_exact(path=snap):
                api = load_json(path)
                for m in api["minutes"]:
                    m.pop("final")
                    m.pop("state", None)
                return not snapshot_diff(api, want)
            wait_for(api_exact, 30, f"the API of {os.path.basename(snap)} to equal the truth",
                     interval=0.3)
        return truth

    def report(self, setup, outages, switches, limit_name, limit_ms):
        """One line in the test's output; with OP_HA_REPORT=FILE also a
        SUMMARY line there (bench/redis_ha.sh puts it in docs/BENCHMARKS.md).
        The ceiling is the failover itself: when Sentinel (or the cluster)
        first named the new primary -- no client can commit before."""
        commit, switch = int(statistics.median(outages)), int(statistics.median(switches))
        print(f"\n  {setup}: primary killed -> next commit "
              + ", ".join(f"{ms} ms" for ms in outages) + f" (median {commit} ms); new primary "
              "named after " + ", ".join(f"{ms} ms" for ms in switches)
              + f" (median {switch} ms); {limit_name} {limit_ms} ms", flush=True)
        out = os.environ.get("OP_HA_REPORT")
        if out:
            with open(out, "a") as f:
                f.write(f"SUMMARY bench=redis_failover setup={setup} kills={len(outages)} "
                        f"{limit_name}_ms={limit_ms} commit_ms={commit} switch_ms={switch} "
                        f"commit_ms_all={','.join(map(str, outages))} "
                        f"ratio={switch / commit if commit else 0:.2f}\n")


class SentinelFailover(HATest):
    """A primary, a replica and three Sentinels; the primary kill -9ed at a
    random moment, again and again, each time the old primary coming back as
    a replica of the new one."""

    kills = int(os.environ.get("OP_E2E_HA_KILLS", "3"))
    orders = int(os.environ.get("OP_E2E_HA_ORDERS", "0"))

    def setUp(self):
        super().setUp()
        self.rng = random.Random(os.environ.get("OP_E2E_SEED", str(time.time())))
        self.redis = {}  # port -> process
        proc, primary = self.start_redis()
        self.redis[primary] = proc
        proc, replica = self.start_redis(extra=("--replicaof", "127.0.0.1", primary))
        self.redis[replica] = proc
        wait_for(lambda: redis_info(replica).get("master_link_status") == "up", 20,
                 "the replica to sync")
        self.sentinels = self.start_sentinels(primary, NAME, down_after_ms=DOWN_AFTER_MS,
                                              failover_timeout_ms=FAILOVER_TIMEOUT_MS)
        wait_for(lambda: replica in sentinel_replicas_ok(self.sentinels[0][1]), 30,
                 "Sentinel to see the replica")
        self.spec = "sentinel://" + ",".join(f"127.0.0.1:{p}" for _, p in self.sentinels) + \
            "/" + NAME

    def primary(self):
        for _, port in self.sentinels:
            p = sentinel_primary(port, NAME)
            if p:
                return p
        return None

    def kill_primary(self, behind):
        """kill -9 of the primary once an engine committed on it; with behind,
        the replica is frozen first until the primary has committed at least
        twice more, so the replica Sentinel promotes misses those commits.
        The old primary comes back as a replica. Returns the ms from the kill
        to the first commit on the new primary, and to Sentinel naming it."""
        old = self.primary()
        replica = next(p for p in self.redis if p != old)
        before = meta_pos(old)
        wait_for(lambda: meta_pos(old) > before, 30, "a commit on the primary")
        if behind:
            self.redis[replica].signal(signal.SIGSTOP)
            # The kernel takes megabytes for the frozen replica on loopback:
            # fill that first (keys outside the prefix), so that what the
            # primary sends next waits in its own memory and dies with it.
            r = Redis(old)
            filler = b"x" * (1 << 20)
            for i in range(32):
                r.call("SET", f"ha-filler:{i}", filler)
            wait_for(lambda: replica_backlog(r) > 0, 10, "the primary to queue replication")
            frozen_at = meta_pos(old)
            wait_for(lambda: meta_pos(old) >= frozen_at + 2, 10,
                     "two commits the replica does not have")
            self.assertGreater(replica_backlog(r), 0)
            r.close()
        time.sleep(self.rng.uniform(0.0, 0.4))
        self.redis[old].kill()
        killed_ms = int(time.time() * 1000)
        if behind:
            self.redis[replica].signal(signal.SIGCONT)
        wait_for(lambda: self.primary() == replica, 60, "Sentinel to promote the replica",
                 interval=0.01)
        switch = int(time.time() * 1000) - killed_ms
        wait_for(lambda: last_commit_ms(replica) > killed_ms, 60,
                 "a commit on the new primary", interval=0.01)
        outage = last_commit_ms(replica) - killed_ms
        # Back as a replica Sentinel may not promote (priority 0) until it
        # has synced: promoting an empty replica would lose the whole state
        # (the engine stops then, it does not count from zero again).
        proc, _ = self.start_redis(port=old, extra=("--replicaof", "127.0.0.1", replica,
                                                    "--replica-priority", 0))
        self.redis[old] = proc
        wait_for(lambda: redis_info(old).get("master_link_status") == "up", 30,
                 "the old primary to sync as a replica")
        r = Redis(old)
        r.call("CONFIG", "SET", "replica-priority", 100)
        r.close()
        wait_for(lambda: old in sentinel_replicas_ok(self.sentinels[0][1]), 60,
                 "Sentinel to see the old primary as a replica")
        # A Sentinel that voted starts no failover for twice failover-timeout.
        while time.time() * 1000 < killed_ms + 2 * FAILOVER_TIMEOUT_MS + 500:
            time.sleep(0.1)
        return outage, switch

    def run_kills(self, behind, engines=1, view_redis=False, kills=None, extra=()):
        kills = kills or self.kills
        _, boot = self.start_devbroker(partitions=8)
        snaps = [self.path(f"snap{i}.json") for i in range(engines)]
        extra = (*extra, *(("--view", "redis") if view_redis else ()))
        engs = [self.engine(boot, self.spec, "ha", snaps[i], *extra, name=f"engine-{i}")
                for i in range(engines)]
        wait_for(lambda: all("assigned" in e.stderr_text() for e in engs), 60,
                 "every engine to get partitions")
        # 5 000/s, for long enough that every kill lands mid-stream (a kill,
        # its failover, the resync of the old primary and the pause Sentinel
        # needs before its next failover take ~8 s).
        orders = self.orders or 5000 * (15 + 11 * kills)
        sim, truth = self.stream(boot, orders)
        outages, switches = [], []
        for _ in range(kills):
            outage, switch = self.kill_primary(behind)
            outages.append(outage)
            switches.append(switch)
            self.assertTrue(sim.alive(), "the stream ended before every kill landed")
        self.settle_and_compare(sim, truth, self.primary, snaps)
        for e in engs:
            self.assertTrue(e.alive(), e.stderr_text()[-3000:])
        return engs, outages, switches

    def test_primary_kills_at_random_moments(self):
        _, outages, switches = self.run_kills(behind=False)
        self.report("sentinel", outages, switches, "down_after", DOWN_AFTER_MS)

    def test_kills_with_the_replica_behind(self):
        """The promoted replica lacks commits the engine saw acknowledged:
        the engine notices Redis went back in time, says how far, rewinds."""
        (eng,), outages, switches = self.run_kills(behind=True)
        text = eng.stderr_text()
        rewinds = text.count("commits were lost")
        self.assertGreaterEqual(rewinds, self.kills,
                                f"expected a rewind with lost commits per kill:\n{text[-3000:]}")
        self.assertIn("Redis went back in time", text)
        self.report("sentinel_replica_behind", outages, switches, "down_after", DOWN_AFTER_MS)

    def test_scale_out_through_failovers(self):
        """Two engines, one group, --view redis: each folds the other's
        commits; a failover that loses some of both must not leave either
        building on the lost history (or on the new one without it)."""
        engs, _, _ = self.run_kills(behind=True, engines=2, view_redis=True,
                                 kills=max(2, self.kills // 3))
        self.assertTrue(any("went back in time" in e.stderr_text() for e in engs))


    def test_min_replicas_no_counted_commit_lost(self):
        """--redis-min-replicas 1: a commit counts once the replica has it
        (WAIT), so the replica Sentinel promotes holds every counted commit:
        no rewind for a lost counted commit, whatever the moment of the kill
        (one that was applied but not yet on the replica is not counted yet:
        the engine looks for it on the new primary, and reloads if it is not
        there)."""
        (eng,), _, _ = self.run_kills(behind=False, kills=max(2, self.kills // 3),
                                      extra=("--redis-min-replicas", 1))
        text = eng.stderr_text()
        self.assertNotIn("Redis went back in time", text)
        self.assertNotIn("commits were lost", text)


class SentinelFaults(E2ETest):
    """Wrong passwords, an unreachable Sentinel, an unknown primary name: one
    line and a non-zero exit at start."""

    def run_engine(self, spec, *extra):
        r = subprocess.run([binary("orderpulse"), "--source", f"file:{self.data}", "--once",
                            "--workers", "1", "--redis", spec, "--redis-timeout", "500ms",
                            *map(str, extra)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        return r.returncode, r.stderr.decode().strip().splitlines()

    def test_faults_at_start_are_one_line(self):
        self.data = self.path("orders.jsonl")
        self.run_sim(["--out", self.data, "--rate", 0, "--count", 2000, "--start", START,
                      "--truth", self.path("truth.json"), "--truth-users",
                      self.path("users.tsv"), "--quiet"])
        _, primary = self.start_redis(extra=("--requirepass", "p4ss"))
        sentinels = self.start_sentinels(primary, NAME, password="s3nt", master_password="p4ss")
        good = f"sentinel://127.0.0.1:{sentinels[0][1]}/{NAME}"
        cases = [
            ("unreachable", f"sentinel://127.0.0.1:{free_port()}/{NAME}",
             ("--redis-sentinel-password", "s3nt", "--redis-password", "p4ss"),
             ["sentinel", "connect"]),
            ("sentinel password", good,
             ("--redis-sentinel-password", "wrong", "--redis-password", "p4ss"),
             ["sentinel", "AUTH"]),
            ("redis password", good,
             ("--redis-sentinel-password", "s3nt", "--redis-password", "wrong"), ["AUTH"]),
            ("no redis password", good, ("--redis-sentinel-password", "s3nt"), ["AUTH"]),
            ("unknown name", f"sentinel://127.0.0.1:{sentinels[0][1]}/nosuch",
             ("--redis-sentinel-password", "s3nt", "--redis-password", "p4ss"),
             ["no primary named 'nosuch'"]),
            ("bad spec", "sentinel://127.0.0.1:1", (), ["--redis", "sentinel://"]),
        ]
        for what, spec, extra, words in cases:
            with self.subTest(what):
                rc, lines = self.run_engine(spec, *extra)
                self.assertNotEqual(rc, 0, lines)
                self.assertEqual(len(lines), 1, lines)
                for w in words:
                    self.assertIn(w, lines[0])
        # And with everything right, the file is counted.
        # (the first Sentinel listed is down: the next ones are asked)
        spec = "sentinel://" + ",".join(f"127.0.0.1:{p}" for p in
                                        [free_port()] + [p for _, p in sentinels]) + "/" + NAME
        rc, lines = self.run_engine(spec, "--redis-sentinel-password", "s3nt",
                                    "--redis-password", "p4ss")
        self.assertEqual(rc, 0, lines)
        r = Redis(primary)
        r.call("AUTH", "p4ss")
        totals = r.hgetall("{op}:totals")
        r.close()
        truth = load_json(self.path("truth.json"))
        self.assertEqual(totals["orders"], truth["totals"]["orders"])


class ClusterHA(HATest):
    """A Redis Cluster of three primaries, each with a replica."""

    def test_moved_migration_and_failover(self):
        """The engine is pointed at a node that does not own the {op} slot (it
        finds the owner with CLUSTER SLOTS); mid-stream the slot is migrated by
        hand to another primary, two keys at a time (the engine meets ASK,
        TRYAGAIN, then MOVED); then that primary is kill -9ed and its replica
        takes over (and may lack the last commits)."""
        kills = int(os.environ.get("OP_E2E_CLUSTER_KILLS", "1"))
        nodes = self.start_cluster(masters=3, replicas=1)
        procs = dict((port, proc) for proc, port in nodes)
        ports = list(procs)
        owner = cluster_owner(ports, SLOT)
        masters = sorted({m for m, _ in cluster_slots(ports).values()})
        elsewhere = next(p for p in masters if p != owner)
        _, boot = self.start_devbroker(partitions=8)
        snap = self.path("snap.json")
        eng = self.engine(boot, f"127.0.0.1:{elsewhere}", "cl", snap)
        wait_for(lambda: "assigned" in eng.stderr_text(), 60, "the assignment")
        sim, truth = self.stream(boot, 5000 * (25 + 10 * kills))
        wait_for(lambda: meta_pos(owner) > 3, 30, "commits on the slot's owner")
        r = Redis(elsewhere)
        self.assertEqual(r.call("DBSIZE"), 0, "keys were written on the node asked first")
        r.close()
        # The migration, slowly enough that commits meet it half done.
        target = next(p for p in masters if p not in (owner, elsewhere))
        moved = migrate_slot(ports, SLOT, owner, target, batch=2, pause=0.1)
        self.assertGreater(moved, 10)
        self.assertEqual(cluster_owner(ports, SLOT), target)
        before = meta_pos(target)
        wait_for(lambda: meta_pos(target) > before, 30, "commits on the new owner")
        outages, switches = [], []
        for _ in range(kills):
            dead = cluster_owner(ports, SLOT)
            live = [p for p in ports if p != dead]
            before = meta_pos(dead)
            wait_for(lambda: meta_pos(dead) > before, 30, "a commit on the owner")
            # A replica takes over only if its link to the primary was up
            # lately (Redis's own rule): the kill waits until it is, as in
            # production a failover needs a replica in step to begin with.
            # The topology is asked again each time: right after the previous
            # round the node asked may not list the rejoined replica yet.
            def replicas_in_step():
                reps = next((r for (p, r) in cluster_slots(live).values() if p == dead), [])
                return [r for r in reps if redis_info(r).get("master_link_status") == "up"]
            replicas = wait_for(replicas_in_step, 30, "the owner's replica to be in step")
            time.sleep(random.uniform(0.0, 0.4))
            procs[dead].kill()
            killed_ms = int(time.time() * 1000)
            try:
                wait_for(lambda: cluster_owner(live, SLOT) not in (None, dead), 60,
                         "the replica to take the slot over", interval=0.01)
            except AssertionError as e:  # Redis's own account of why not
                logs = ""
                for r in replicas:
                    with open(os.path.join(self.path(f"redis-{r}"), "redis.log"),
                              errors="replace") as f:
                        logs += f"\n--- redis.log of replica {r}:\n" + f.read()[-3000:]
                raise AssertionError(f"{e}{logs}") from None
            switches.append(int(time.time() * 1000) - killed_ms)
            new = cluster_owner(live, SLOT)
            wait_for(lambda: last_commit_ms(new) > killed_ms, 60, "a commit on the new owner",
                     interval=0.01)
            outages.append(last_commit_ms(new) - killed_ms)
            # The old primary comes back, and the cluster makes it a replica.
            procs[dead], _ = self.start_cluster_node(dead)
            wait_for(lambda: redis_info(dead).get("master_link_status") == "up", 60,
                     "the old owner to rejoin as a replica")
            self.assertTrue(sim.alive(), "the stream ended before every kill landed")

        def primary():
            return cluster_owner([p for p in ports if procs[p].alive()], SLOT)
        self.settle_and_compare(sim, truth, primary, [snap])
        self.assertTrue(eng.alive(), eng.stderr_text()[-3000:])
        self.report("cluster", outages, switches, "node_timeout", NODE_TIMEOUT_MS)
