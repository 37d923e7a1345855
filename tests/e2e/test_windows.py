"""End-to-end tests of the window states and the watermark rule.

(a) Late orders into a closed window: orders with chosen event times go
    through the dev broker (kcat) into an engine with one partition; once
    the snapshot shows the first minutes "final", one late order is produced
    into a closed minute. With --late apply that minute, its category row and
    its 10-minute slot read "revised" (with the order counted in them); every
    other window keeps its state. With --late drop nothing is revised: the
    order is counted late and in the totals only.
(b) Finished inputs do not hold the watermark back: a file replayed live
    (no --once) by two workers reaches max event time - lateness as soon as
    both chunks are read, long before --idle.
(c) Idle inputs do not either: two partitions, the second far ahead in
    event time; once both are quiet for --idle, the watermark is the newest
    event time - lateness.
"""

import json
import os
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETest, binary, free_port, load_json, wait_for  # noqa: E402

MINUTE = 60000
SLOT = 600000
S = 1731283200000  # 2024-11-11 00:00 UTC, the start of a 10-minute slot
LATENESS = 5000


def order(seq, event_ms, cents=1000, gender="男", category="手机数码"):
    return json.dumps({
        "orderId": f"W{seq}", "userName": f"用户{seq % 7}", "gender": gender, "goods": "g",
        "goodsType": category, "brand": "Apple", "orderTimeSeries": event_ms,
        "price": cents / 100, "num": 1, "totalPrice": cents / 100}, ensure_ascii=False)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read().decode("utf-8"))


def try_get(port, path):
    try:
        return get(port, path)
    except OSError:
        return None


class Engine:
    def __init__(self, test, args):
        self.port = free_port()
        self.proc = test.start([binary("orderpulse"), "--http", f"127.0.0.1:{self.port}",
                                "--tick", "200ms", "--lateness", "5s", *map(str, args)])

    def snapshot(self):
        if not self.proc.alive():
            raise AssertionError("the engine exited:\n" + self.proc.stderr_text()[-3000:])
        return try_get(self.port, "/api/v1/snapshot")

    def wait(self, pred, what, timeout=30):
        def check():
            doc = self.snapshot()
            return doc if doc and pred(doc) else None
        return wait_for(check, timeout, what, interval=0.1)


def states(rows, key):
    return {r[key]: r["state"] for r in rows}


class LateOrdersRevise(E2ETest):
    # Two orders a minute from 00:08 to 00:11:30, so that 00:08-00:10 and
    # the slot 00:00-00:10 are closed (watermark 00:11:25) and 00:11 is open.
    ON_TIME = [S + 8 * MINUTE + i * 30000 for i in range(8)]
    LATE = S + 8 * MINUTE + 45000  # into the closed minute 00:08 and slot 00:00
    OPEN = S + 11 * MINUTE + 40000  # into the open minute: revises nothing

    def produce(self, boot, lines):
        subprocess.run(["kcat", "-P", "-b", boot, "-t", "orders", "-p", "0"], check=True,
                       input="".join(line + "\n" for line in lines).encode(), timeout=30)

    def run_case(self, late):
        _, boot = self.start_devbroker(partitions=1)
        eng = Engine(self, ["--brokers", boot, "--topic", "orders", "--group", f"w-{late}",
                            "--workers", 1, "--late", late])
        wait_for(lambda: "assigned" in eng.proc.stderr_text(), 30, "the partition assignment")
        self.produce(boot, [order(i, t) for i, t in enumerate(self.ON_TIME)])
        closed = [S + 8 * MINUTE, S + 9 * MINUTE, S + 10 * MINUTE]
        before = eng.wait(lambda d: d["totals"]["orders"] == 8 and
                          d["watermark"] == self.ON_TIME[-1] - LATENESS, "8 orders and the watermark")
        want = {m: "final" for m in closed}
        want[S + 11 * MINUTE] = "open"
        self.assertEqual(states(before["minutes"], "minute"), want)
        self.assertEqual(states(before["categories"], "minute"), want)
        self.assertEqual(states(before["gender_slots"], "slot"), {S: "final", S + SLOT: "open"})
        for m in before["minutes"]:
            self.assertEqual(m["final"], m["state"] != "open")

        self.produce(boot, [order(100, self.LATE, cents=2500), order(101, self.OPEN)])
        after = eng.wait(lambda d: d["totals"]["orders"] == 10, "the late order")
        self.assertEqual(after["stats"]["late_records"], 1)
        minutes = {m["minute"]: m for m in after["minutes"]}
        slots = {s["slot"]: s for s in after["gender_slots"]}
        if late == "apply":
            want[S + 8 * MINUTE] = "revised"
            self.assertEqual(minutes[S + 8 * MINUTE]["orders"], 3)
            self.assertEqual(minutes[S + 8 * MINUTE]["amount"], 45.0)
            self.assertEqual(slots[S]["quantity"], {"男": 5})
            slot_states = {S: "revised", S + SLOT: "open"}
        else:
            self.assertEqual(minutes[S + 8 * MINUTE]["orders"], 2)
            self.assertEqual(minutes[S + 8 * MINUTE]["amount"], 20.0)
            self.assertEqual(slots[S]["quantity"], {"男": 4})
            slot_states = {S: "final", S + SLOT: "open"}
        self.assertEqual(minutes[S + 11 * MINUTE]["orders"], 3)
        self.assertEqual(states(after["minutes"], "minute"), want)
        self.assertEqual(states(after["categories"], "minute"), want)
        self.assertEqual(states(after["gender_slots"], "slot"), slot_states)
        # The per-resource answers carry the same states.
        self.assertEqual(states(get(eng.port, "/api/v1/sales/minutes"), "minute"), want)
        rank = get(eng.port, f"/api/v1/categories/ranking?minute={S + 8 * MINUTE}")
        self.assertEqual(rank["state"], want[S + 8 * MINUTE])
        self.assertEqual(states(get(eng.port, "/api/v1/gender/slots"), "slot"), slot_states)
        # Later ticks change nothing (a revision is not undone).
        tick = after["tick"]
        again = eng.wait(lambda d: d["tick"] >= tick + 3, "three more ticks")
        self.assertEqual(states(again["minutes"], "minute"), want)

    def test_late_apply_revises_the_closed_windows(self):
        self.run_case("apply")

    def test_late_drop_revises_nothing(self):
        self.run_case("drop")


class WatermarkNotHeldBack(E2ETest):
    def test_finished_chunks_of_a_file(self):
        data, truth_path = self.path("o.jsonl"), self.path("truth.json")
        self.run_sim(["--out", data, "--rate", 0, "--count", 200000, "--start",
                      "2024-11-11T00:00:00+08:00", "--jitter", "2s", "--truth", truth_path,
                      "--quiet"])
        truth = load_json(truth_path)
        wm = truth["watermark"]  # largest event time - 5 s
        # --idle 1h: only "finished" can release the first chunk's partition.
        eng = Engine(self, ["--source", "file:" + data, "--workers", 2, "--idle", "1h"])
        doc = eng.wait(lambda d: d["totals"]["orders"] == truth["totals"]["orders"] and
                       d["watermark"] == wm, f"the watermark {wm}", timeout=20)
        for m in doc["minutes"]:
            closed = m["minute"] + MINUTE <= wm
            self.assertEqual(m["final"], closed, m)
            self.assertEqual(m["state"], "final" if closed else "open", m)
        self.assertEqual(sum(not m["final"] for m in doc["minutes"]), 1, "only the newest is open")

    def test_idle_partitions(self):
        _, boot = self.start_devbroker(partitions=2)
        eng = Engine(self, ["--brokers", boot, "--topic", "orders", "--group", "idle",
                            "--workers", 2, "--idle", "1s"])
        wait_for(lambda: "assigned" in eng.proc.stderr_text(), 30, "the partition assignment")
        for p, base in ((0, S), (1, S + 3 * MINUTE)):
            lines = "".join(order(p * 10 + i, base + i * 1000) + "\n" for i in range(5))
            subprocess.run(["kcat", "-P", "-b", boot, "-t", "orders", "-p", str(p)], check=True,
                           input=lines.encode(), timeout=30)
        newest = S + 3 * MINUTE + 4000
        doc = eng.wait(lambda d: d["watermark"] == newest - LATENESS,
                       "the watermark once both partitions are idle", timeout=20)
        self.assertEqual([m["state"] for m in doc["minutes"]], ["final", "open"])


if __name__ == "__main__":
    unittest.main()
