#!/usr/bin/env python3
"""freshness.py — order produced → visible in the API, for bench/freshness_bench.sh.

  freshness.py poll URL OUT EXPECTED [TIMEOUT_S]
      GET URL (/api/v1/snapshot) every 10 ms on one keep-alive connection;
      for every new snapshot (its "tick" changed) append one line to OUT:
          seen_ms  tick  as_of  watermark  orders
      seen_ms is the wall clock (ms) when the response carrying it arrived.
      Stops 3 ticks after totals.orders reached EXPECTED, or after TIMEOUT_S.

  freshness.py analyze OUT TICK_MS [WARMUP_MS] [RATE]
      prints one SUMMARY line (see below); RATE (orders/s) is only echoed.

The method. The simulator stamps each order with the wall clock when it
generates it (orderTimeSeries, live clock, no jitter), so event time = the
moment the order was produced, on the same clock as seen_ms. The engine
runs with --lateness 0, so a snapshot's `watermark` is the minimum over the
partitions of the largest event time read from each. Within a partition the
orders are in event-time order (one producer, live clock), hence every
order with event time <= watermark is in that snapshot. So an order
produced at t is visible by the first snapshot k with watermark_k >= t, and
   latency(t) = seen_k - t
(an upper bound, tight to within a partition's gap between two orders: a
few ms at 5 000 orders/s over 8 partitions, well under one at 200 000/s,
plus the 10 ms poll interval).
The orders arrive at a constant rate, so taking t on a 1 ms grid over the
steady part of the stream weighs every order equally; p50/p99 are over
those per-order latencies. Every snapshot (one per tick) is one sample of
the tick's phase; the benchmark checks there are at least 20 in the window.

Also reported: pipeline_ms, the p50 over ticks of seen_k - watermark_k, the
age of the newest order a snapshot holds when it becomes visible (producer
linger + Kafka fetch + worker hand-over + merge + render + poll: the delay
that is not the tick's phase; the snapshot with the stream's last orders is
left out, nothing newer exists); and publish_ms, p50 of seen_k - as_of_k
(as_of is stamped when the merger builds the snapshot).
"""
import bisect
import http.client
import json
import sys
import time
import urllib.parse


def poll(url, out, expected, timeout_s):
    u = urllib.parse.urlsplit(url)
    conn = None
    last_tick = None
    reached = None
    deadline = time.time() + timeout_s
    with open(out, "w") as f:
        next_t = time.time()
        while time.time() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
                conn.request("GET", u.path)
                resp = conn.getresponse()
                body = resp.read()
                seen = time.time() * 1000.0
                if resp.status == 200:
                    s = json.loads(body)
                    if s["tick"] != last_tick:
                        last_tick = s["tick"]
                        orders = s["totals"]["orders"]
                        wm = s["watermark"] if s["watermark"] is not None else -1
                        f.write(f"{seen:.1f}\t{s['tick']}\t{s['as_of']}\t{wm}\t{orders}\n")
                        f.flush()
                        if orders >= expected and reached is None:
                            reached = s["tick"]
                        if reached is not None and s["tick"] >= reached + 3:
                            return 0
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
            next_t += 0.010
            d = next_t - time.time()
            if d > 0:
                time.sleep(d)
            else:
                next_t = time.time()
    print(f"freshness: timed out, last tick {last_tick}", file=sys.stderr)
    return 1


def pct(sorted_vals, p):
    """Nearest-rank percentile of a sorted list."""
    i = max(0, min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100.0 + 0.999999) - 1))
    return sorted_vals[i]


def analyze(out, tick_ms, warmup_ms, rate=0):
    ticks = []
    with open(out) as f:
        for line in f:
            seen, tick, as_of, wm, orders = line.split()
            ticks.append((float(seen), int(tick), int(as_of), int(wm), int(orders)))
    ticks = [t for t in ticks if t[3] >= 0]
    if len(ticks) < 3:
        print("freshness: fewer than 3 snapshots with orders", file=sys.stderr)
        return 1
    wms = [t[3] for t in ticks]
    if any(b < a for a, b in zip(wms, wms[1:])):
        print("freshness: the watermark went back", file=sys.stderr)
        return 1
    # The steady part: from WARMUP_MS after the first watermark to the last
    # watermark (the newest order every partition has delivered).
    lo = wms[0] + warmup_ms
    hi = wms[-1]
    lat = []
    for t in range(lo, hi + 1):
        k = bisect.bisect_left(wms, t)
        lat.append(ticks[k][0] - t)
    lat.sort()
    # ticks whose watermark advanced inside the window: the samples of the tick phase
    samples = [t for i, t in enumerate(ticks) if i > 0 and lo < t[3] <= hi and t[3] > ticks[i - 1][3]]
    # The snapshot that shows the stream's last orders is not a sample of the
    # pipeline delay: nothing newer exists, its orders waited for the tick.
    steady = [t for t in samples if t[3] < hi]
    pipe = sorted(t[0] - t[3] for t in steady)
    pub = sorted(t[0] - t[2] for t in steady)
    print(
        "SUMMARY bench=freshness ticks=%d orders=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f "
        "pipeline_p50_ms=%.0f pipeline_max_ms=%.0f publish_p50_ms=%.1f tick_ms=%d "
        "ratio_p50=%.3f ratio_p99=%.3f rate=%d"
        % (len(samples), ticks[-1][4], pct(lat, 50), pct(lat, 99), lat[-1], pct(pipe, 50), pipe[-1],
           pct(pub, 50), tick_ms, pct(lat, 50) / tick_ms, pct(lat, 99) / tick_ms, rate))
    if len(samples) < 20:
        print("freshness: only %d ticks in the window, 20 needed" % len(samples), file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "poll":
        return poll(argv[2], argv[3], int(argv[4]), float(argv[5]) if len(argv) > 5 else 120)
    if len(argv) >= 4 and argv[1] == "analyze":
        return analyze(argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else 2000,
                       int(argv[5]) if len(argv) > 5 else 0)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
