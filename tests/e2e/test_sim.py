"""End-to-end tests of orderpulse-sim and orderpulse-devbroker.

The simulator's --truth document is checked against an independent
recomputation, in Python, from the JSONL it wrote: every line is parsed with
the json module and checked against the schema of DESIGN §2 (the rules of
engine/parse.h), lines that fail count as bad, and the eight metrics are
recomputed with Decimal amounts. Then the Kafka path (dev broker + kcat), the
option errors and reproducibility.

Run: python3 -m unittest discover -s tests/e2e -p 'test_sim.py' -v
"""

import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import unittest
from decimal import Decimal, ROUND_HALF_UP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETest, binary, cents, load_json, wait_for  # noqa: E402

START = "2024-11-10T10:10:00"
TZ = datetime.timezone(datetime.timedelta(hours=8))
MAX_DEPTH = 64            # OP_PARSE_MAX_DEPTH
MAX_NAME = 255            # OP_PARSE_MAX_NAME
MAX_NUM = 1000000         # OP_PARSE_MAX_NUM
MAX_CENTS = 100000000000  # OP_PARSE_MAX_CENTS
MAX_EVENT_MS = 253402300799999
LATENESS_MS = 5000


# --- an independent reading of one record ------------------------------------

def _depth(v):
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _all_strings_utf8(v):
    """json.loads lets lone surrogates (\\ud800) through; the engine does not."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
            return True
        except UnicodeEncodeError:
            return False
    if isinstance(v, dict):
        return all(_all_strings_utf8(k) and _all_strings_utf8(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_all_strings_utf8(x) for x in v)
    return True


def _is_number(v):
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def _integral(v, lo, hi):
    if not _is_number(v) or Decimal(v) != Decimal(v).to_integral_value():
        return None
    v = int(v)
    return v if lo <= v <= hi else None


def parse_order(line):
    """The fields the metrics need, or None if the engine must reject the line."""
    try:
        doc = json.loads(line.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or _depth(doc) > MAX_DEPTH or not _all_strings_utf8(doc):
        return None
    out = {}
    for key in ("userName", "gender", "goodsType", "brand"):
        v = doc.get(key)
        if not isinstance(v, str) or not 1 <= len(v.encode("utf-8")) <= MAX_NAME:
            return None
        out[key] = v
    out["num"] = _integral(doc.get("num"), 1, MAX_NUM)
    if out["num"] is None:
        return None
    total = doc.get("totalPrice")
    if not _is_number(total):
        return None
    c = int((Decimal(total) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if not 0 <= c <= MAX_CENTS:
        return None
    out["cents"] = c
    if "orderTimeSeries" in doc:
        out["event_ms"] = _integral(doc["orderTimeSeries"], 1, MAX_EVENT_MS)
        if out["event_ms"] is None:
            return None
    elif isinstance(doc.get("orderTime"), str):
        try:
            t = datetime.datetime.strptime(doc["orderTime"], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        out["event_ms"] = int(t.replace(tzinfo=TZ).timestamp()) * 1000
    else:
        return None
    # The simulated clock is in the orderId ("O" + clock ms + 6-digit sequence);
    # a late record was pushed back by >= 10 s, jitter by at most 2 s.
    oid = doc.get("orderId", "")
    out["late"] = oid.startswith("O") and out["event_ms"] <= int(oid[1:-6]) - 10000
    return out


def recompute(jsonl_path):
    """The expected snapshot (in comparable Python values) from the JSONL file."""
    with open(jsonl_path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    lines = data[:-1].split(b"\n")
    orders = quantity = amount = bad = late = 0
    max_event = None
    minutes, cats, slots = {}, {}, {}
    brands, users, genders = {}, {}, {}
    for line in lines:
        o = parse_order(line)
        if o is None:
            bad += 1
            continue
        n, c, ev = o["num"], o["cents"], o["event_ms"]
        orders += 1
        quantity += n
        amount += c
        late += o["late"]
        max_event = ev if max_event is None else max(max_event, ev)
        m = ev // 60000 * 60000
        mo = minutes.setdefault(m, [0, 0, 0])
        mo[0] += 1
        mo[1] += n
        mo[2] += c
        cq = cats.setdefault(m, {}).setdefault(o["goodsType"], [0, 0])
        cq[0] += n
        cq[1] += c
        s = slots.setdefault(ev // 600000 * 600000, {})
        s[o["gender"]] = s.get(o["gender"], 0) + n
        b = brands.setdefault(o["brand"], [0, 0])
        b[0] += n
        b[1] += c
        u = users.setdefault(o["userName"], [0, 0])
        u[0] += c
        u[1] += 1
        g = genders.setdefault(o["gender"], [0, 0])
        g[0] += n
        g[1] += c

    def ranking(d, by_amount=False):
        items = [(name, q, a) for name, (q, a) in d.items()]
        key = (lambda t: (-t[2], t[0].encode())) if by_amount else (lambda t: (-t[1], t[0].encode()))
        return sorted(items, key=key)

    return {
        "lines": len(lines),
        "watermark": max_event - LATENESS_MS if max_event is not None else 0,
        "totals": (orders, quantity, amount),
        "minutes": [(m, *minutes[m], True) for m in sorted(minutes)],
        "categories": [(m, ranking(cats[m])) for m in sorted(cats)],
        "brands": ranking(brands),
        "top_users": sorted(((n, a, k) for n, (a, k) in users.items()),
                            key=lambda t: (-t[1], t[0].encode()))[:10],
        "gender": [(name, q, a, Decimal(q) / quantity, Decimal(a) / amount)
                   for name, q, a in ranking(genders, by_amount=True)],
        "gender_slots": [(s, slots[s]) for s in sorted(slots)],
        "stats": (bad, late, 0),
    }


def truth_as_tuples(t):
    """The truth document in the same comparable form (amounts in cents)."""
    def rk(entries):
        return [(e["name"], e["quantity"], cents(e["amount"])) for e in entries]
    return {
        "watermark": t["watermark"],
        "totals": (t["totals"]["orders"], t["totals"]["quantity"], cents(t["totals"]["amount"])),
        "minutes": [(m["minute"], m["orders"], m["quantity"], cents(m["amount"]), m["final"])
                    for m in t["minutes"]],
        "categories": [(c["minute"], rk(c["ranking"])) for c in t["categories"]],
        "brands": rk(t["brands"]),
        "top_users": [(u["name"], cents(u["amount"]), u["orders"]) for u in t["top_users"]],
        "gender": [(g["name"], g["quantity"], cents(g["amount"]), Decimal(g["quantity_share"]),
                    Decimal(g["amount_share"])) for g in t["gender"]],
        "gender_slots": [(s["slot"], s["quantity"]) for s in t["gender_slots"]],
        "stats": (t["stats"]["bad_records"], t["stats"]["late_records"], t["stats"]["lag"]),
    }


class SimTruthTest(E2ETest):
    COUNT = 200000

    def check_truth(self, *extra):
        out, truth = self.path("orders.jsonl"), self.path("truth.json")
        before = int(time.time() * 1000)
        self.run_sim(["--out", out, "--truth", truth, "--rate", 0, "--count", self.COUNT,
                      "--start", START, "--speed", 10, "--jitter", "2s", "--late-fraction", 0.05,
                      "--bad-fraction", 0.05, "--seed", 7, "--quiet", *extra])
        doc = load_json(truth)
        self.assertEqual(list(doc), ["as_of", "watermark", "tick", "tick_ms", "display_timezone",
                                     "totals", "minutes", "categories", "brands", "top_users",
                                     "gender", "gender_slots", "stats"])
        self.assertEqual(doc["display_timezone"], "+08:00")
        for member in ("minutes", "categories", "gender_slots"):
            self.assertEqual({w["state"] for w in doc[member]}, {"final"}, member)
        self.assertGreaterEqual(doc["as_of"], before)
        self.assertEqual(doc["tick"], 0)
        want = recompute(out)
        got = truth_as_tuples(doc)
        self.assertEqual(want.pop("lines"), self.COUNT)
        for member in ("watermark", "totals", "minutes", "categories", "brands", "top_users",
                       "gender_slots", "stats"):
            self.assertEqual(got[member], want[member], member)
        self.assertEqual(len(got["gender"]), len(want["gender"]))
        for g, w in zip(got["gender"], want["gender"]):
            self.assertEqual(g[:3], w[:3])
            self.assertAlmostEqual(g[3], w[3], delta=Decimal("0.000001"))
            self.assertAlmostEqual(g[4], w[4], delta=Decimal("0.000001"))
        # The run exercised what it was meant to.
        bad, late, _ = want["stats"]
        self.assertTrue(8000 < bad < 12000, bad)
        # late-eligible once the clock is 130 s in: i >= 13 000 at --speed 10
        self.assertTrue(7000 < late < 11000, late)
        self.assertGreater(len(want["minutes"]), 30)
        self.assertEqual(len(got["top_users"]), 10)
        return doc

    def test_truth_matches_recomputation_default_time_fields(self):
        self.check_truth()

    def test_truth_matches_recomputation_earlier_zipf_users(self):
        self.check_truth("--zipf", 1.1)

    def test_truth_matches_recomputation_time_string(self):
        doc = self.check_truth("--time-field", "string")
        self.assertEqual(doc["watermark"] % 1000, 0, "string times have second precision")
        with open(self.path("orders.jsonl"), "rb") as f:
            head = f.read(4096)
        self.assertNotIn(b"orderTimeSeries", head)


class SimKafkaTest(E2ETest):
    def consume(self, boot, count, topic="orders", fmt="%k\\t%s\\n"):
        # Started before the simulator and reading while it produces. The mock
        # broker keeps only ~5 MB per partition, and 200 000 orders of ~360 bytes
        # are ~9 MB per partition on 8 partitions (more on those holding the
        # Zipf-hot users: the hottest gets ~43 000 orders). What makes them fit
        # is that the mock stores the producer's message sets as sent, and the
        # simulator compresses them with lz4 (its default) to ~85 bytes an
        # order. Measured here: a partition keeps its last ~14 000 orders with
        # --compression none (every partition had lost its first offsets by the
        # end of this run) and ~60 000 with lz4 (all start at offset 0).
        # Consuming concurrently is the second line of defence.
        out = open(self.path(f"kcat-{topic}.out"), "wb")
        self.addCleanup(out.close)
        return self.start(["kcat", "-C", "-b", boot, "-t", topic, "-o", "beginning", "-c", count,
                           "-q", "-f", fmt], name="kcat", stdout=out)

    def test_devbroker_and_sim_deliver_every_order_keyed_by_user(self):
        count = 200000
        _, boot = self.start_devbroker(partitions=8)
        kcat = self.consume(boot, count)
        truth = self.path("truth.json")
        t0 = time.monotonic()
        err = self.run_sim(["--brokers", boot, "--topic", "orders", "--rate", 0, "--count", count,
                            "--start", START, "--truth", truth, "--quiet"], timeout=60)
        elapsed = time.monotonic() - t0
        self.assertIn(f"delivered={count} errors=0", err)
        kcat.wait(timeout=60)
        self.assertEqual(kcat.p.returncode, 0, kcat.stderr_text())
        n = 0
        with open(self.path("kcat-orders.out"), "rb") as f:
            for line in f:
                key, _, value = line.rstrip(b"\n").partition(b"\t")
                self.assertEqual(key.decode(), json.loads(value)["userName"])
                n += 1
        self.assertEqual(n, count)
        self.assertEqual(load_json(truth)["totals"]["orders"], count)
        print(f"\n  sim -> devbroker: {count} orders in {elapsed:.2f}s "
              f"({count / elapsed:,.0f}/s incl. start-up)", file=sys.stderr)

    def test_random_and_no_keys(self):
        _, boot = self.start_devbroker(partitions=2, topics="r,n")
        for topic, mode in (("r", "random"), ("n", "none")):
            # Random keys are binary (they may hold '\n'): read their lengths only.
            kcat = self.consume(boot, 500, topic, fmt="%K\\n")
            self.run_sim(["--brokers", boot, "--topic", topic, "--key", mode, "--rate", 0,
                          "--count", 500, "--quiet"], timeout=30)
            kcat.wait(timeout=30)
            with open(self.path(f"kcat-{topic}.out"), "rb") as f:
                lengths = f.read().split()
            self.assertEqual(len(lengths), 500)
            self.assertEqual(set(lengths), {b"-1" if mode == "none" else b"16"}, mode)

    def test_sigterm_flushes_and_writes_truth_for_what_was_delivered(self):
        _, boot = self.start_devbroker(partitions=4)
        kcat_out = self.path("kcat-all.out")
        truth = self.path("truth.json")
        sim = self.start([binary("orderpulse-sim"), "--brokers", boot, "--rate", 2000,
                          "--duration", "60s", "--truth", truth], name="orderpulse-sim")
        wait_for(lambda: "sent=" in sim.stderr_text(), 10, "a progress line")
        sim.signal(signal.SIGTERM)
        self.assertEqual(sim.wait(timeout=30), 0, sim.stderr_text())
        last = sim.stderr_text().strip().splitlines()[-1]
        self.assertIn("stopped by signal", last)
        orders = load_json(truth)["totals"]["orders"]
        self.assertGreater(orders, 500)
        with open(kcat_out, "wb") as out:
            subprocess.run(["kcat", "-C", "-b", boot, "-t", "orders", "-e", "-q", "-f", "%o\\n"],
                           stdout=out, timeout=30, check=True)
        with open(kcat_out, "rb") as f:
            self.assertEqual(sum(1 for _ in f), orders)


class SimOptionsTest(E2ETest):
    def expect_usage_error(self, prog, args, needle):
        r = subprocess.run([binary(prog), *map(str, args)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 2, f"{args}: {err}")
        self.assertEqual(len(err.splitlines()), 1, f"{args}: {err!r}")
        self.assertTrue(err.startswith(f"{prog}: "), err)
        self.assertIn(needle, err)
        self.assertEqual(r.stdout, b"")

    def test_bad_flags_exit_2_with_one_line(self):
        out = self.path("x.jsonl")
        cases = [
            (["--out", out, "--count", 1, "--rate", "abc"], "--rate"),
            (["--out", out, "--count", 1, "--zipf", -1], "--zipf"),
            (["--out", out, "--count", 1, "--no-such-flag"], "--no-such-flag"),
            (["--out", "/nonexistent-dir/x.jsonl", "--count", 1], "/nonexistent-dir/x.jsonl"),
            (["--out", out, "--count", 1, "--truth", "/nonexistent-dir/t.json"], "--truth"),
            (["--out", out, "--brokers", "127.0.0.1:1", "--count", 1], "--brokers"),
            (["--count", 1], "--out"),
            (["--out", out], "--count"),
            (["--out", out, "--count", 1, "--config", self.path("missing.conf")], "missing.conf"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                self.expect_usage_error("orderpulse-sim", args, needle)
        self.expect_usage_error("orderpulse-devbroker", ["--partitions", 0], "--partitions")
        self.expect_usage_error("orderpulse-devbroker", ["--port", 9092], "--port")

    def test_help_and_environment(self):
        for prog, word in (("orderpulse-sim", "--truth"), ("orderpulse-devbroker", "no --port")):
            r = subprocess.run([binary(prog), "--help"], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0)
            self.assertIn(word, r.stdout.decode())
        out = self.path("env.jsonl")
        r = subprocess.run([binary("orderpulse-sim"), "--out", out, "--quiet"],
                           env={**os.environ, "ORDERPULSE_SIM_COUNT": "7",
                                "ORDERPULSE_SIM_RATE": "0"},
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 7)

    def test_explicit_zipf_gives_the_earlier_streams(self):
        """--zipf S (or --popularity zipf) is the generator as it was before
        the realistic default: byte for byte, so benchmarks keep their data.
        The digest is of the stream the earlier binary wrote for these flags."""
        common = ["--rate", 0, "--count", 20000, "--start", "2024-11-11T00:00:00", "--seed", 7,
                  "--jitter", "2s", "--late-fraction", 0.02, "--bad-fraction", 0.01, "--quiet"]
        digests = set()
        for extra in (["--zipf", 1.1], ["--popularity", "zipf"], ["--popularity", "zipf:1.1"]):
            path = self.path("z.jsonl")
            self.run_sim(["--out", path, *common, *extra])
            with open(path, "rb") as f:
                digests.add(hashlib.sha256(f.read()).hexdigest())
        self.assertEqual(digests,
                         {"a3fb6a7bad448f15673b7c0751fd80c0e00a79145bc3764b950696e562b36aaa"})

    def test_default_users_are_realistic(self):
        """No user above a fraction of a percent of the orders; a name's given
        name agrees with its gender; --start takes the zone of the sales day."""
        path = self.path("r.jsonl")
        self.run_sim(["--out", path, "--rate", 0, "--count", 300000, "--start",
                      "2024-11-11T00:00:00+08:00", "--quiet"])
        per_user, gender_of, givens = {}, {}, {"男": set(), "女": set()}
        first = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                first = first or o
                u = o["userName"]
                per_user[u] = per_user.get(u, 0) + 1
                self.assertEqual(gender_of.setdefault(u, o["gender"]), o["gender"], u)
                givens[o["gender"]].add(u[1:].rstrip("0123456789"))
        self.assertEqual(first["orderTime"], "2024-11-11 00:00:00")
        self.assertEqual(first["orderTimeSeries"], 1731254400000)
        top = max(per_user.values())
        self.assertLess(top / 300000, 0.002, f"the heaviest user has {top} of 300000 orders")
        heavy = sorted(per_user.values(), reverse=True)[:len(per_user) // 5]
        self.assertGreater(sum(heavy) / 300000, 0.5)  # skewed, not uniform
        self.assertEqual(givens["男"] & givens["女"], set())
        self.assertIn("芳", givens["女"])
        self.assertIn("伟", givens["男"])

    def test_same_seed_same_bytes(self):
        def run(name, seed):
            path, truth = self.path(name + ".jsonl"), self.path(name + ".json")
            self.run_sim(["--out", path, "--truth", truth, "--rate", 0, "--count", 50000,
                          "--start", START, "--jitter", "2s", "--late-fraction", 0.1,
                          "--bad-fraction", 0.1, "--seed", seed, "--quiet"])
            with open(path, "rb") as f:
                data = f.read()
            t = load_json(truth)
            t.pop("as_of")
            return data, t
        a, ta = run("a", 42)
        b, tb = run("b", 42)
        c, _ = run("c", 43)
        self.assertEqual(a, b)
        self.assertEqual(ta, tb)
        self.assertNotEqual(a, c)


if __name__ == "__main__":
    unittest.main()
