"""The MariaDB archive (--archive): after every kind of run the three window
tables (op_minute, op_category_minute, op_gender_slot) equal the
simulator's truth to the cent, and the per-day tables equal a count made
here from the orders themselves -- after a 1 M-order replay with jitter,
late and bad records, after kill -9 of the engine mid-stream (with Redis),
and with MariaDB stopped for 30 s or frozen past the pending-row bound. Also:
tables of another shape are refused with one line, the grants of
docs/OPERATIONS.md suffice, the history API reads the archive back, and the
dashboard draws yesterday's minutes.

Every test starts its own mariadbd on a free loopback port with a
temporary data directory and stops it by its pid.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ROOT, E2ETest, archive_doc, binary, cents, free_port, load_json,  # noqa: E402
                     read_users_truth, redis_snapshot, snapshot_diff, truth_windows, wait_for)
from test_api import sanitizer_env, sanitizer_reports  # noqa: E402

START = "2024-11-11T00:00:00"
TZ_MS = 8 * 3600 * 1000  # the engine's default --timezone, +08:00
DAY_MS = 86400000


def url_of(port, user="root", password=None, db="op"):
    auth = user + (f":{password}" if password is not None else "")
    return f"mysql://{auth}@127.0.0.1:{port}/{db}"


def day_text(event_ms):
    return time.strftime("%Y-%m-%d", time.gmtime((event_ms + TZ_MS) // 1000))


def days_from_orders(path):
    """Brands, genders and users per calendar day (+08:00), counted from a
    JSONL file of good orders: {table: {(day, name): (orders, quantity, cents)}}."""
    out = {t: defaultdict(lambda: [0, 0, 0]) for t in ("brand", "gender", "user")}
    with open(path, "rb") as f:
        for line in f:
            o = json.loads(line, parse_float=Decimal)
            day = day_text(o["orderTimeSeries"])
            cents = int(Decimal(o["totalPrice"]) * 100)
            for t, name in (("brand", o["brand"]), ("gender", o["gender"]),
                            ("user", o["userName"])):
                row = out[t][(day, name)]
                row[0] += 1
                row[1] += o["num"] if t != "user" else 0
                row[2] += cents
    return {t: {k: tuple(v) for k, v in rows.items()} for t, rows in out.items()}


def days_from_archive(db):
    def cents(a):
        return int(Decimal(a) * 100)
    return {
        "brand": {(d, n): (int(o), int(q), cents(a)) for d, n, o, q, a in
                  db.run("SELECT day, brand, orders, quantity, amount FROM op.op_brand_day")},
        "gender": {(d, n): (int(o), int(q), cents(a)) for d, n, o, q, a in
                   db.run("SELECT day, gender, orders, quantity, amount FROM op.op_gender_day")},
        "user": {(d, n): (int(o), 0, cents(a)) for d, n, o, a in
                 db.run("SELECT day, user_name, orders, amount FROM op.op_user_day")},
    }


def only_final(doc, watermark):
    """The windows of a document (archive_doc's shape) that end at or before
    the watermark."""
    return {"minutes": [m for m in doc["minutes"] if m["minute"] + 60000 <= watermark],
            "categories": [c for c in doc["categories"] if c["minute"] + 60000 <= watermark],
            "gender_slots": [s for s in doc["gender_slots"] if s["slot"] + 600000 <= watermark]}


def http_json(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode("utf-8"), parse_float=Decimal)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode("utf-8") or "null")
    except OSError:
        return None, None


class ArchiveTest(E2ETest):
    def mariadb(self, **kw):
        p, port, db = self.start_mariadb(**kw)
        db.run("CREATE DATABASE op")
        return p, port, db

    def once(self, data, port, *extra, check=True):
        r = subprocess.run([binary("orderpulse"), "--source", "file:" + data, "--once",
                            "--workers", "2", "--archive", url_of(port), *map(str, extra)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        err = r.stderr.decode("utf-8", "replace")
        if check:
            self.assertEqual(r.returncode, 0, err[-3000:])
        return r.returncode, err

    def assert_windows(self, db, truth, what):
        diff = snapshot_diff(archive_doc(db), truth_windows(truth))
        self.assertEqual(diff[:20], [], f"{what}: {len(diff)} differences with the truth")


class ArchiveReplay(ArchiveTest):
    def test_million_orders_with_jitter_late_and_bad(self):
        """1 M orders over midnight (+08:00), 2 % late, 1 % bad, 10 ms ticks
        so that windows turn final and late orders rewrite them during the
        run: the window tables equal the truth; the day tables add up to its
        brands, genders, top users and totals."""
        n = int(os.environ.get("OP_E2E_ARCHIVE_ORDERS", "1000000"))
        _, port, db = self.mariadb()
        data, truth_path = self.path("orders.jsonl"), self.path("truth.json")
        self.run_sim(["--out", data, "--rate", 0, "--count", n, "--speed", 3,
                      "--start", "2024-11-11T15:40:00", "--jitter", "2s", "--late-fraction", 0.02,
                      "--bad-fraction", 0.01, "--truth", truth_path, "--quiet"])
        truth = load_json(truth_path)
        self.assertGreater(truth["stats"]["late_records"], n // 100)
        self.once(data, port, "--tick", "10ms")
        self.assert_windows(db, truth, "after the replay")
        # The amounts the truth has per total only: every table adds up to it.
        for table in ("op_category_minute", "op_gender_slot"):
            self.assertEqual(db.run(f"SELECT SUM(amount) FROM op.{table}"),
                             [(str(truth["totals"]["amount"]),)], table)

        days = days_from_archive(db)
        self.assertEqual(len({d for d, _ in days["brand"]}), 2, "the stream spans midnight")
        for table, member, key in (("brand", "brands", "quantity"), ("gender", "gender", "quantity")):
            sums = defaultdict(lambda: [0, 0])
            for (_, name), (_, q, c) in days[table].items():
                sums[name][0] += q
                sums[name][1] += c
            want = {m["name"]: [m["quantity"], int(m["amount"] * 100)] for m in truth[member]}
            self.assertEqual(dict(sums), want, f"op_{table}_day summed over days")
        per_user = defaultdict(lambda: [0, 0])
        for (_, name), (o, _, c) in days["user"].items():
            per_user[name][0] += o
            per_user[name][1] += c
        for u in truth["top_users"]:
            self.assertEqual(per_user[u["name"]], [u["orders"], int(u["amount"] * 100)], u)
        self.assertEqual(sum(o for o, _ in per_user.values()), truth["totals"]["orders"])
        self.assertEqual(sum(c for _, c in per_user.values()),
                         int(truth["totals"]["amount"] * 100))

    def test_days_equal_a_count_of_the_orders(self):
        """Per-day tables row by row against the orders themselves, with
        emoji, a trailing space and Chinese in names; --late drop keeps late
        orders out of the windows but not out of the days."""
        _, port, db = self.mariadb()
        data = self.path("orders.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 300000, "--start",
                      "2024-11-11T15:58:00", "--jitter", "2s", "--late-fraction", 0.05,
                      "--quiet"])
        odd = ["🛒买家", "trailing ", "trailing", "Ünïcödé ☃", "用户\t制表"]
        with open(data, "a", encoding="utf-8") as f:
            for i, name in enumerate(odd * 3):
                # Midnight +08:00 give or take 7 s, late by then: --late drop.
                f.write(json.dumps({"userName": name, "gender": "女", "goodsType": "🎁礼品",
                                    "brand": "😀 Brand", "num": 1 + i % 3,
                                    "totalPrice": "PRICE",
                                    "orderTimeSeries": 1731340800000 + (i - 7) * 1000},
                                   ensure_ascii=False).replace('"PRICE"', f"{10 + i}.{i:02d}")
                        + "\n")
        self.once(data, port, "--late", "drop", "--tick", "20ms")
        want, got = days_from_orders(data), days_from_archive(db)
        for table in ("brand", "gender", "user"):
            missing = sorted(set(want[table]) - set(got[table]))[:5]
            extra = sorted(set(got[table]) - set(want[table]))[:5]
            wrong = [(k, got[table][k], want[table][k]) for k in want[table]
                     if k in got[table] and got[table][k] != want[table][k]][:5]
            self.assertEqual((missing, extra, wrong), ([], [], []), f"op_{table}_day")
        self.assertEqual(len({d for d, _ in want["user"]}), 2)
        self.assertIn(("2024-11-12", "trailing "), got["user"])

    def test_names_longer_than_their_column_are_counted_not_written(self):
        _, port, db = self.mariadb()
        data = self.path("orders.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for i in range(100):
                f.write(json.dumps({"userName": f"u{i}", "gender": "性" * 65 if i == 5 else "男",
                                    "goodsType": "c", "brand": "b", "num": 1,
                                    "totalPrice": 1.25,
                                    "orderTimeSeries": 1731300000000 + i * 1000},
                                   ensure_ascii=False) + "\n")
        _, err = self.once(data, port)
        self.assertIn("longer than its column", err)
        self.assertEqual(db.run("SELECT orders FROM op.op_gender_day"), [("99",)])
        self.assertEqual(db.run("SELECT SUM(orders) FROM op.op_minute"), [("100",)])


class ArchiveSetup(ArchiveTest):
    def tiny(self):
        data = self.path("tiny.jsonl")
        self.run_sim(["--out", data, "--rate", 0, "--count", 3000, "--speed", 60,
                      "--start", START, "--quiet"])
        return data

    def test_refuses_a_table_of_another_shape(self):
        _, port, db = self.mariadb()
        db.run("CREATE TABLE op.op_minute (minute_start BIGINT PRIMARY KEY, orders INT)")
        rc, err = self.once(self.tiny(), port, check=False)
        self.assertEqual(rc, 1, err)
        lines = [l for l in err.splitlines() if "op_minute" in l]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("drop or rename it", lines[0])
        self.assertIn("orders int", lines[0])

    def test_bad_urls_are_one_line_and_exit_2(self):
        for url, what in (("mysql://host/db", "USER"), ("http://u@h/db", "mysql://"),
                          ("mysql://u@h:99999/db", "port"), ("mysql://u@h/", "DB"),
                          ("mysql://u@h/a;drop", "DB")):
            with self.subTest(url=url):
                r = subprocess.run([binary("orderpulse"), "--source", "file:/dev/null", "--once",
                                    "--archive", url], capture_output=True, timeout=30)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertIn(what, err)

    def test_grants_of_the_operations_guide(self):
        """The user of docs/OPERATIONS.md (SELECT, INSERT, UPDATE, CREATE on
        the database) is enough; a wrong password or a missing database is
        one line and exit 1."""
        _, port, db = self.start_mariadb(grants=True)
        db.run("CREATE DATABASE op; CREATE USER 'orderpulse'@'127.0.0.1' IDENTIFIED BY 's3cr@t';"
               "GRANT SELECT, INSERT, UPDATE, CREATE ON op.* TO 'orderpulse'@'127.0.0.1'")
        data = self.tiny()
        for url, rc, what in ((url_of(port, "orderpulse", "wrong"), 1, "Access denied"),
                              (url_of(port, "orderpulse", "s3cr%40t", "nodb"), 1, "nodb"),
                              (url_of(port, "orderpulse", "s3cr%40t"), 0, None)):
            r = subprocess.run([binary("orderpulse"), "--source", "file:" + data, "--once",
                                "--archive", url], capture_output=True, timeout=60)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, rc, err)
            if what:
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertIn(what, err)
                self.assertNotIn("s3cr", err)
        self.assertEqual(db.run("SELECT SUM(orders) FROM op.op_minute"), [("3000",)])
        # Once the tables exist, CREATE is not needed; without it they cannot be made.
        db.run("CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY 'w';"
               "GRANT SELECT, INSERT, UPDATE ON op.* TO 'writer'@'127.0.0.1';"
               "CREATE DATABASE empty; GRANT SELECT, INSERT, UPDATE ON empty.* TO 'writer'@'127.0.0.1'")
        for db_name, rc in (("op", 0), ("empty", 1)):
            r = subprocess.run([binary("orderpulse"), "--source", "file:" + data, "--once",
                                "--archive", url_of(port, "writer", "w", db_name)],
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, rc, r.stderr.decode())
        self.assertIn("CREATE command denied", r.stderr.decode())

    def test_mariadb_down_at_start_then_up(self):
        """The engine starts without MariaDB, says so once, and writes
        everything when it comes (--once waits for it at the end)."""
        port = free_port()
        data, truth_path = self.path("orders.jsonl"), self.path("truth.json")
        self.run_sim(["--out", data, "--rate", 0, "--count", 50000, "--speed", 20,
                      "--start", START, "--jitter", "2s", "--truth", truth_path, "--quiet"])
        eng = self.start([binary("orderpulse"), "--source", "file:" + data, "--once",
                          "--archive", url_of(port)], stdout=subprocess.DEVNULL)
        wait_for(lambda: "retrying in the background" in eng.stderr_text(), 30, "the warning")
        self.assertTrue(eng.alive(), eng.stderr_text())
        _, _, db = self.mariadb(port=port)
        self.assertEqual(eng.wait(60), 0, eng.stderr_text())
        self.assert_windows(db, load_json(truth_path), "after MariaDB came up")


class ArchiveLive(ArchiveTest):
    """Kafka (dev broker) -> engine with Redis and the archive, live."""

    def engine(self, boot, redis_port, db_port, group, snap, *extra):
        return self.start([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                           "--group", group, "--workers", 2, "--tick", "200ms",
                           "--redis", f"127.0.0.1:{redis_port}", "--snapshot-file", snap,
                           "--archive", url_of(db_port), *extra])

    def stream(self, boot, count, speed, rate=5000):
        truth_path = self.path("truth.json")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", rate,
                          "--count", count, "--start", START, "--speed", speed,
                          "--jitter", "2s", "--late-fraction", 0.02, "--bad-fraction", 0.01,
                          "--truth", truth_path, "--truth-users", self.path("users.tsv"),
                          "--quiet"])
        return sim, truth_path

    def finish(self, sim, truth_path, eng, redis_port, db, db_port, boot, snap):
        """Once the stream is in Redis: the archive's final windows equal
        the truth; then a --once engine finishes every window (from Redis)
        and the whole tables equal it."""
        self.assertEqual(sim.wait(timeout=180), 0, sim.stderr_text())
        truth = load_json(truth_path)
        total = truth["totals"]["orders"] + truth["stats"]["bad_records"]
        wait_for(lambda: (lambda d: d["totals"]["orders"] + d["bad"] >= total)(
            redis_snapshot(redis_port)), 120, f"Redis to hold {total} records")
        self.assertTrue(eng.alive(), eng.stderr_text())
        want = truth_windows(truth)
        last = []

        def final_windows_exact():
            wm = load_json(snap)["watermark"]
            last[:] = snapshot_diff(only_final(archive_doc(db), wm), only_final(want, wm))
            return wm > 0 and not last
        try:
            wait_for(final_windows_exact, 60, "the final windows to be archived", interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}; {len(last)} differences: {last[:10]}") from None
        self.assertGreater(len(only_final(want, load_json(snap)["watermark"])["minutes"]), 10)
        self.assertEqual(eng.stop(timeout=30), 0, eng.stderr_text()[-3000:])
        r = subprocess.run([binary("orderpulse"), "--brokers", boot, "--topic", "orders",
                            "--group", "final", "--once", "--redis", f"127.0.0.1:{redis_port}",
                            "--archive", url_of(db_port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-3000:])
        self.assert_windows(db, truth, "after the stream")
        self.assert_one_day(db, truth)
        return truth

    def assert_one_day(self, db, truth):
        """The stream lies within one calendar day: that day's brand, gender
        and user rows are the truth's cumulative figures, every user's too
        (the day tables survive the kills through Redis like the rest)."""
        days = {day_text(m["minute"]) for m in truth["minutes"]}
        self.assertEqual(len(days), 1, f"the stream spans {sorted(days)}")
        day = days.pop()
        got = days_from_archive(db)
        want_brands = {(day, b["name"]): (b["quantity"], cents(b["amount"]))
                       for b in truth["brands"]}
        self.assertEqual({k: (v[1], v[2]) for k, v in got["brand"].items()}, want_brands)
        want_genders = {(day, g["name"]): (g["quantity"], cents(g["amount"]))
                        for g in truth["gender"]}
        self.assertEqual({k: (v[1], v[2]) for k, v in got["gender"].items()}, want_genders)
        users = read_users_truth(self.path("users.tsv"))
        want_users = {(day, n): (o, c) for n, (c, o) in users.items()}
        got_users = {k: (v[0], v[2]) for k, v in got["user"].items()}
        missing = [k for k in want_users if got_users.get(k) != want_users[k]][:5]
        self.assertEqual(len(got_users), len(want_users), f"users per day; e.g. {missing}")
        self.assertEqual(missing, [], "users per day")

    def test_kill_9_at_random_moments(self):
        kills = int(os.environ.get("OP_E2E_KILLS", "5"))
        # 10 s of stream per kill at least: a restart with the archive (MariaDB's
        # connection and shape check, the claims, a first commit) takes up to
        # ~6 s on a busy machine, and the stream is paced.
        orders = max(int(os.environ.get("OP_E2E_CRASH_ORDERS", "200000")), kills * 50000)
        rng = random.Random(os.environ.get("OP_E2E_SEED", str(time.time())))
        _, boot = self.start_devbroker(partitions=8)
        _, redis_port = self.start_redis()
        _, db_port, db = self.mariadb()
        snap = self.path("snap.json")
        # 5 000/s, 30 simulated seconds each: 20 minutes of event time in
        # 40 s, so windows turn final (and are rewritten by late orders)
        # between the kills.
        sim, truth_path = self.stream(boot, orders, 30)
        eng = self.engine(boot, redis_port, db_port, "c0", snap)
        for i in range(kills):
            before = redis_snapshot(redis_port)["totals"]["orders"]
            wait_for(lambda: redis_snapshot(redis_port)["totals"]["orders"] > before, 30,
                     f"engine {i} to commit a flush")
            time.sleep(rng.uniform(0.0, 0.5))
            self.assertTrue(sim.alive(), "the stream ended before every kill landed")
            eng.kill()
            eng = self.engine(boot, redis_port, db_port, f"c{i + 1}", snap)
        self.finish(sim, truth_path, eng, redis_port, db, db_port, boot, snap)

    def test_mariadb_stopped_for_30_seconds(self):
        _, boot = self.start_devbroker(partitions=8)
        _, redis_port = self.start_redis()
        mdb, db_port, db = self.mariadb()
        datadir = self.path(f"mariadb-{db_port}")
        snap, http_port = self.path("snap.json"), free_port()
        eng = self.engine(boot, redis_port, db_port, "m", snap, "--http", f"127.0.0.1:{http_port}")
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the assignment")
        sim, truth_path = self.stream(boot, 300000, 30)
        time.sleep(8)
        mdb.stop()
        outage_end = time.monotonic() + 30
        ready = f"http://127.0.0.1:{http_port}/readyz"

        def waiting():
            status, doc = http_json(ready)
            a = doc["archive"]
            return status == 200 and not a["connected"] and a["pending_rows"] > 0 and doc
        doc = wait_for(waiting, 25, "/readyz to show rows waiting for MariaDB", interval=0.5)
        self.assertEqual(doc["archive"]["dropped_rows"], 0)
        time.sleep(max(0.0, outage_end - time.monotonic()))
        self.assertTrue(eng.alive(), eng.stderr_text())
        self.start_mariadb(port=db_port, datadir=datadir)
        self.finish(sim, truth_path, eng, redis_port, db, db_port, boot, snap)

    def test_mariadb_frozen_past_the_bound(self):
        """Frozen (SIGSTOP: connections hang, not refused) while more rows
        than --archive-max-pending turn final: the queue is dropped, and
        once MariaDB answers a sweep writes every window still held."""
        _, boot = self.start_devbroker(partitions=8)
        _, redis_port = self.start_redis()
        mdb, db_port, db = self.mariadb()
        snap, http_port = self.path("snap.json"), free_port()
        eng = self.engine(boot, redis_port, db_port, "f", snap, "--http", f"127.0.0.1:{http_port}",
                          "--archive-max-pending", 1000)
        wait_for(lambda: "assigned" in eng.stderr_text(), 30, "the assignment")
        # 4 minutes of event time per second: ~50 rows turn final per second.
        sim, truth_path = self.stream(boot, 200000, 240)
        time.sleep(5)
        mdb.signal(signal.SIGSTOP)
        metrics = f"http://127.0.0.1:{http_port}/metrics"

        def dropped():
            with urllib.request.urlopen(metrics, timeout=10) as r:
                text = r.read().decode()
            return "orderpulse_archive_dropped_rows_total 0\n" not in text
        wait_for(dropped, 40, "rows over the bound to be dropped", interval=0.5)
        mdb.signal(signal.SIGCONT)
        self.finish(sim, truth_path, eng, redis_port, db, db_port, boot, snap)
        self.assertIn("offered again", eng.stderr_text())


class ArchiveHistory(ArchiveTest):
    """Yesterday archived by a replay; today served live: the history API
    returns the archived windows in the snapshot's shapes, and the
    dashboard draws yesterday's minutes beside today's."""

    def test_history_api_and_dashboard(self):
        _, port, db = self.mariadb()
        yday, yday_truth = self.path("yesterday.jsonl"), self.path("yesterday.json")
        # 10:00-11:00 UTC on 2024-11-10, one order per simulated 60 ms.
        self.run_sim(["--out", yday, "--rate", 0, "--count", 60000, "--speed", 60,
                      "--start", "2024-11-10T10:00:00", "--jitter", "2s",
                      "--late-fraction", 0.02, "--truth", yday_truth, "--quiet"])
        self.once(yday, port)
        truth = load_json(yday_truth)
        today = self.path("today.jsonl")
        self.run_sim(["--out", today, "--rate", 0, "--count", 40000, "--speed", 60,
                      "--start", "2024-11-11T10:00:00", "--seed", 2, "--quiet"])
        http_port = free_port()
        base = f"http://127.0.0.1:{http_port}"
        eng = self.start([binary("orderpulse"), "--source", "file:" + today, "--tick", "100ms",
                          "--archive", url_of(port), "--http", f"127.0.0.1:{http_port}"],
                         env=sanitizer_env(self.tmp))
        wait_for(lambda: http_json(base + "/readyz")[0] == 200, 30, "the engine")

        h = base + "/api/v1/history"
        got = {
            "minutes": http_json(h + "/minutes?from=2024-11-10T09:50:00Z&to=2024-11-10T11:00Z")[1],
            "categories": http_json(h + "/categories?from=1731232200000&to=2024-11-10T19:00:00%2B08:00")[1],
            "gender_slots": http_json(h + "/gender/slots?from=2024-11-10&to=2024-11-11")[1],
        }
        want = {k: truth[k] for k in ("minutes", "categories", "gender_slots")}
        want["gender_slots"] = [{"slot": s["slot"], "state": "final",
                                 "quantity": dict(sorted(s["quantity"].items(),
                                                         key=lambda kv: kv[0].encode()))}
                                for s in truth["gender_slots"]]
        self.assertEqual(snapshot_diff(got, want)[:10], [])
        self.assertEqual(json.dumps(got["gender_slots"], ensure_ascii=False),
                         json.dumps(want["gender_slots"], ensure_ascii=False), "names in order")
        # A window starts in [from, to): the next minute is not in.
        status, rows = http_json(h + "/minutes?from=1731232800000&to=1731232860000")
        self.assertEqual((status, [r["minute"] for r in rows]), (200, [1731232800000]))
        # The same minute written every accepted way.
        for q in ("from=1731232800000&to=1731232860000",
                  "from=2024-11-10T10:00Z&to=2024-11-10T10:00:59.999Z",
                  "from=2024-11-10%2010:00:00.000%2B00:00&to=2024-11-10T18:01%2B08:00",
                  "from=2024-11-10T09:00:00-01:00&to=2024-11-10T10:00:30"):
            with self.subTest(q=q):
                status, rows = http_json(h + "/minutes?" + q)
                self.assertEqual((status, [r["minute"] for r in rows]), (200, [1731232800000]))
        for q, code in (("from=2024-11-10&to=2024-11-09", 400), ("from=soon", 400),
                        ("from=2024-11-10T25:00:00Z", 400), ("from=2024-02-30", 400),
                        ("from=2024-11-01&to=2024-12-03", 400), ("from=-001-11-10", 400),
                        ("from=2024-1-10", 400), ("from=2024-11-10T10:00%2B8:00", 400),
                        ("from=2024-11-10T10", 400), ("from=%zz", 400)):
            with self.subTest(q=q):
                status, doc = http_json(h + "/minutes?" + q)
                self.assertEqual(status, code, doc)
                self.assertIn("error", doc)
        status, doc = http_json(h + "/categories?from=2024-11-10&to=2024-11-11T00:00:01Z")
        self.assertEqual(status, 400, doc)
        self.run_browser(base, truth)
        # Many queries at once, some given up by their clients: every
        # answer reaches its own request, and the engine stops cleanly.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: http_json(
                h + f"/minutes?from={1731232800000 + i * 60000}&to={1731232860000 + i * 60000}"),
                range(40)))
        self.assertEqual([[r["minute"] for r in rows] for _, rows in answers],
                         [[1731232800000 + i * 60000] for i in range(40)])
        for _ in range(20):
            try:
                urllib.request.urlopen(h + "/categories?from=2024-11-10T10:00Z", timeout=0.001)
            except OSError:
                pass
        self.assertEqual(http_json(base + "/readyz")[0], 200)
        self.assertEqual(eng.stop(timeout=30), 0, eng.stderr_text()[-3000:])
        self.assertEqual(sanitizer_reports(eng.stderr_text()), [])

    def run_browser(self, base, truth):
        node = shutil.which("node")
        chromium = os.environ.get("OP_CHROMIUM", "/usr/bin/chromium")
        if not node or not os.access(chromium, os.X_OK) or not os.path.isdir(
                os.path.join(ROOT, "node_modules", "playwright-core")):
            if os.environ.get("OP_ALLOW_SKIP"):
                raise unittest.SkipTest("node, chromium or playwright-core is missing")
            raise FileNotFoundError("node, chromium or playwright-core is missing (make deps)")
        r = subprocess.run([node, os.path.join(ROOT, "tests", "browser", "yesterday.test.mjs")],
                           env={**os.environ, "OP_DASHBOARD_URL": base + "/"},
                           capture_output=True, timeout=120)
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 0, out[-3000:])
        drawn = json.loads(out.strip().splitlines()[-1])
        want = {m["minute"]: m["amount"] for m in truth["minutes"]}
        self.assertGreater(len(drawn), 20, drawn)
        for minute, amount in drawn:
            self.assertEqual(Decimal(str(amount)), want[minute], minute)


if __name__ == "__main__":
    unittest.main()
