#!/usr/bin/env python3
"""Deterministic generator of a labelled benchmark for Waymark's latency and
failure-rate anomaly detectors.

    python3 tests/data/anomaly/generate.py [--out DIR]

Writes one CSV per series (``timestamp,value,ok``) and ``labels.json`` into DIR
(default: ``series/`` next to this script), and ``manifest.sha256`` (sha256 of
every generated file, ``sha256sum`` format, sorted by name) next to this script.

Standard library only. Every series has its own ``random.Random`` seeded with
``SEED * 1000 + index`` so series are independent of each other, and only
``random.Random`` methods whose output is stable across Python 3.8+ are used
(random, gauss, lognormvariate, uniform, randint, choice). Floats are written
with fixed decimals, so a regeneration is byte-identical; see README.md.
"""

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import time

SEED = 20261122
START = 1767571200  # 2026-01-05T00:00:00Z, a Monday
INTERVAL = 60
DAY = 86400
HOUR = 3600
MINUTE = 60
DAYS = 30
SLOTS = DAYS * DAY // INTERVAL  # 43,200
END = START + SLOTS * INTERVAL  # first timestamp after the series

WARMUP = 2 * DAY  # no labelled anomaly starts before START + WARMUP
MIN_SEPARATION = 2 * DAY  # from the end of one anomaly to the start of the next
END_MARGIN = 12 * HOUR  # labelled anomalies end at least this long before END
SPIKE_CLEARANCE = 2 * HOUR  # benign spikes stay this far from anomalies
GAP_CLEARANCE = HOUR  # missing-data gaps stay this far from anything labelled
TIMEOUT_MS = 10000.0  # latency written for the runs of an outage

# Period-over-period ground truth: days are numbered from 1 (day 1 = 2026-01-05).
PERIOD_A = (START, START + 14 * DAY)  # [start of day 1, start of day 15)
PERIOD_B = (START + 14 * DAY, START + 28 * DAY)  # [start of day 15, start of day 29)

LEVEL_SHIFT_MAGNITUDES = [0.2, 0.3, 0.5, 1.0, 2.0, 4.0]
GRADUAL_MAGNITUDES = [0.5, 1.0, 2.0]
FAILURE_RATES = [0.1, 0.2, 0.5]
REGRESSION_MAGNITUDES = [-0.3, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]

GROUPS = [("clean", 24), ("latency", 24), ("failure", 16), ("regression", 16)]
ANOMALIES_PER_SERIES = 5
SPIKES_PER_SERIES = 5  # latency group only


def slot_of(ts):
    return (ts - START) // INTERVAL


def ts_of(slot):
    return START + slot * INTERVAL


def overlaps(a0, a1, b0, b1, clearance=0):
    """Whether [a0, a1) and [b0, b1) come closer than `clearance` seconds."""
    return a0 < b1 + clearance and b0 < a1 + clearance


class Counters:
    """Global round-robin counters so that every magnitude is well represented."""

    def __init__(self):
        self.level_shift = 0
        self.gradual = 0
        self.failure_rate = 0

    def next(self, name, values):
        i = getattr(self, name)
        setattr(self, name, i + 1)
        return values[i % len(values)]


def draw_baseline_failure_rate(rng, floor=None):
    if floor is not None:
        return round(rng.uniform(floor, 0.05), 4)
    if rng.random() < 0.4:
        return 0.0
    return round(rng.uniform(0.002, 0.05), 4)


def place(rng, durations, lo, hi, separation):
    """Random non-overlapping starts for anomalies of the given durations (s),
    in the order given, each inside [lo, hi), at least `separation` seconds
    between the end of one and the start of the next. Rejection sampling, so
    the placement is uniform over the feasible configurations."""
    for _ in range(100000):
        starts = []
        for d in durations:
            starts.append(ts_of(rng.randint(slot_of(lo), slot_of(hi - d))))
        order = sorted(range(len(durations)), key=lambda j: starts[j])
        ok = True
        for a, b in zip(order, order[1:]):
            if starts[a] + durations[a] + separation > starts[b]:
                ok = False
                break
        if ok:
            return starts
    raise RuntimeError("could not place anomalies")  # pragma: no cover


def latency_anomalies(rng, series_index, counters):
    """5 labelled latency anomalies: 3 level shifts and 2 gradual ramps, in an
    order rotated by series index."""
    kinds = ["level_shift", "gradual", "level_shift", "gradual", "level_shift"]
    r = series_index % len(kinds)
    kinds = kinds[r:] + kinds[:r]
    specs = []
    for kind in kinds:
        if kind == "level_shift":
            m = counters.next("level_shift", LEVEL_SHIFT_MAGNITUDES)
            dur = rng.randint(30, 720) * MINUTE
            specs.append({"type": kind, "magnitude": m, "dur": dur})
        else:
            m = counters.next("gradual", GRADUAL_MAGNITUDES)
            ramp = rng.randint(60, 360) * MINUTE
            hold = rng.randint(60, 240) * MINUTE
            specs.append({"type": kind, "magnitude": m, "dur": ramp + hold, "ramp": ramp})
    return specs


def failure_anomalies(rng, series_index, counters):
    """5 labelled failure anomalies: outages and failure-rate jumps, 3+2 or
    2+3 alternating by series index."""
    if series_index % 2 == 0:
        kinds = ["outage", "failure_rate", "outage", "failure_rate", "outage"]
    else:
        kinds = ["failure_rate", "outage", "failure_rate", "outage", "failure_rate"]
    specs = []
    for kind in kinds:
        if kind == "outage":
            specs.append({"type": kind, "magnitude": 1.0, "dur": rng.randint(5, 60) * MINUTE})
        else:
            r = counters.next("failure_rate", FAILURE_RATES)
            specs.append({"type": kind, "magnitude": r, "dur": rng.randint(60, 360) * MINUTE})
    return specs


def generate_series(group, group_index, global_index, counters):
    """Returns (csv_bytes, label_dict, row_count)."""
    seed = SEED * 1000 + global_index
    rng = random.Random(seed)
    name = "%s-%02d.csv" % (group, group_index + 1)

    # ---- per-series parameters -------------------------------------------
    base_ms = round(math.exp(rng.uniform(math.log(5.0), math.log(800.0))), 3)
    sigma = round(rng.uniform(0.03, 0.15), 4)
    tail_rate = round(rng.uniform(0.002, 0.01), 4)
    utc_offset_h = rng.randint(-8, 9)
    daily_amplitude = round(rng.uniform(0.1, 0.5), 3) if rng.random() < 0.6 else 0.0
    if rng.random() < 0.5:
        drift_total = round(rng.choice([-1, 1]) * rng.uniform(0.05, 0.2), 4)
    else:
        drift_total = 0.0
    has_gaps = rng.random() < 0.3
    if group == "failure" and group_index % 2 == 0:
        failure_rate = draw_baseline_failure_rate(rng, floor=0.005)
    else:
        failure_rate = draw_baseline_failure_rate(rng)

    # ---- labelled anomalies ----------------------------------------------
    anomalies = []
    if group in ("latency", "failure"):
        if group == "latency":
            specs = latency_anomalies(rng, group_index, counters)
        else:
            specs = failure_anomalies(rng, group_index, counters)
        starts = place(
            rng,
            [s["dur"] for s in specs],
            START + WARMUP,
            END - END_MARGIN,
            MIN_SEPARATION,
        )
        for s, st in zip(specs, starts):
            a = {
                "type": s["type"],
                "detector": "latency" if group == "latency" else "failure",
                "start": st,
                "end": st + s["dur"],
                "magnitude": s["magnitude"],
            }
            if "ramp" in s:
                a["ramp_end"] = st + s["ramp"]
            anomalies.append(a)
        anomalies.sort(key=lambda a: a["start"])
    elif group == "regression":
        m = REGRESSION_MAGNITUDES[group_index % len(REGRESSION_MAGNITUDES)]
        change = ts_of(rng.randint(slot_of(START + 10 * DAY), slot_of(START + 20 * DAY) - 1))
        anomalies.append(
            {"type": "regression", "detector": "latency", "start": change, "end": END, "magnitude": m}
        )

    # Windows that benign events keep clear of. A regression only matters
    # around its change point.
    labelled_windows = []
    for a in anomalies:
        if a["type"] == "regression":
            labelled_windows.append((a["start"], a["start"] + INTERVAL))
        else:
            labelled_windows.append((a["start"], a["end"]))

    # ---- benign spikes (latency group) -------------------------------------
    benign = []
    if group == "latency":
        taken = []
        while len(benign) < SPIKES_PER_SERIES:
            n = rng.randint(1, 2)
            st = ts_of(rng.randint(slot_of(START + WARMUP), SLOTS - 1 - n))
            en = st + n * INTERVAL
            if any(overlaps(st, en, w0, w1, SPIKE_CLEARANCE) for w0, w1 in labelled_windows):
                continue
            if any(overlaps(st, en, w0, w1, HOUR) for w0, w1 in taken):
                continue
            factor = round(rng.uniform(3.0, 10.0), 3)
            taken.append((st, en))
            benign.append({"type": "spike", "start": st, "end": en, "factor": factor})
        benign.sort(key=lambda b: b["start"])

    # ---- missing-data gaps -------------------------------------------------
    gaps = []
    if has_gaps:
        want = rng.randint(1, 3)
        avoid = labelled_windows + [(b["start"], b["end"]) for b in benign]
        while len(gaps) < want:
            dur = rng.randint(10, 360) * MINUTE
            st = ts_of(rng.randint(0, SLOTS - dur // INTERVAL))
            en = st + dur
            if any(overlaps(st, en, w0, w1, GAP_CLEARANCE) for w0, w1 in avoid):
                continue
            if any(overlaps(st, en, g0, g1, HOUR) for g0, g1 in gaps):
                continue
            gaps.append((st, en))
        gaps.sort()

    # ---- per-slot deterministic multipliers --------------------------------
    # Noise-free, season-free multiplier drift(t) * anomaly_multiplier(t).
    drift_slope = drift_total / (SLOTS - 1)
    trend = [1.0 + drift_slope * k for k in range(SLOTS)]
    anom = [1.0] * SLOTS
    for a in anomalies:
        s0, s1 = slot_of(a["start"]), slot_of(a["end"])
        m = a["magnitude"]
        if a["type"] in ("level_shift", "regression"):
            for k in range(s0, s1):
                anom[k] *= 1.0 + m
        elif a["type"] == "gradual":
            r1 = slot_of(a["ramp_end"])
            n = r1 - s0
            for k in range(s0, r1):
                anom[k] *= 1.0 + m * (k - s0) / n
            for k in range(r1, s1):
                anom[k] *= 1.0 + m
    underlying = [trend[k] * anom[k] for k in range(SLOTS)]

    def period_median(p):
        return statistics.median(underlying[slot_of(p[0]):slot_of(p[1])])

    true_change = round(period_median(PERIOD_B) / period_median(PERIOD_A) - 1.0, 4)

    spike = [1.0] * SLOTS
    for b in benign:
        for k in range(slot_of(b["start"]), slot_of(b["end"])):
            spike[k] = b["factor"]

    fail_p = [failure_rate] * SLOTS
    outage = [False] * SLOTS
    for a in anomalies:
        s0, s1 = slot_of(a["start"]), slot_of(a["end"])
        if a["type"] == "outage":
            for k in range(s0, s1):
                outage[k] = True
        elif a["type"] == "failure_rate":
            for k in range(s0, s1):
                fail_p[k] = max(fail_p[k], a["magnitude"])

    present = [True] * SLOTS
    for g0, g1 in gaps:
        for k in range(slot_of(g0), slot_of(g1)):
            present[k] = False

    # Daily seasonality, precomputed per minute of the week (slots are whole
    # minutes and offsets whole hours). Raised cosine from 07:00 to 19:00
    # local time peaking at 13:00; Saturday and Sunday at half amplitude.
    week = [1.0] * (7 * 1440)
    if daily_amplitude > 0:
        for minute in range(7 * 1440):
            hour = (minute % 1440) / 60.0
            weekday = minute // 1440  # 0 = Monday
            x = hour - 13.0
            if -6.0 < x < 6.0:
                bump = 0.5 * (1.0 + math.cos(math.pi * x / 6.0))
                amp = daily_amplitude * (0.5 if weekday >= 5 else 1.0)
                week[minute] = 1.0 + amp * bump
    # START is a Monday 00:00 UTC: local minute-of-week of slot k.
    offset_min = utc_offset_h * 60

    # ---- rows ----------------------------------------------------------------
    lognorm = rng.lognormvariate
    rand = rng.random
    uniform = rng.uniform
    out = ["timestamp,value,ok\n"]
    rows = 0
    for k in range(SLOTS):
        # The same random draws happen for every slot, present or not, so a gap
        # does not shift the random stream of the rest of the series.
        noise = lognorm(0.0, sigma)
        tail = uniform(1.5, 6.0) if rand() < tail_rate else 1.0
        u_fail = rand()
        if not present[k]:
            continue
        ts = START + k * INTERVAL
        if outage[k]:
            out.append("%d,%.3f,0\n" % (ts, TIMEOUT_MS))
        else:
            season = week[(k + offset_min) % 10080]
            value = base_ms * season * underlying[k] * spike[k] * noise * tail
            out.append("%d,%.3f,%d\n" % (ts, value, 0 if u_fail < fail_p[k] else 1))
        rows += 1

    label = {
        "file": name,
        "group": group,
        "seed": seed,
        "base_ms": base_ms,
        "sigma": sigma,
        "utc_offset_h": utc_offset_h,
        "daily_amplitude": daily_amplitude,
        "drift_total": drift_total,
        "tail_rate": tail_rate,
        "failure_rate": failure_rate,
        "rows": rows,
        "gaps": [[g0, g1] for g0, g1 in gaps],
        "anomalies": anomalies,
        "benign": benign,
        "periods": {
            "a": [PERIOD_A[0], PERIOD_A[1]],
            "b": [PERIOD_B[0], PERIOD_B[1]],
            "true_change": true_change,
        },
    }
    return "".join(out).encode("ascii"), label, rows


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "series"), help="output directory")
    args = ap.parse_args(argv)

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    counters = Counters()
    labels = []
    digests = {}
    total_rows = 0
    index = 0
    for group, count in GROUPS:
        for i in range(count):
            data, label, rows = generate_series(group, i, index, counters)
            index += 1
            with open(os.path.join(args.out, label["file"]), "wb") as f:
                f.write(data)
            digests[label["file"]] = hashlib.sha256(data).hexdigest()
            labels.append(label)
            total_rows += rows

    doc = {"seed": SEED, "interval_s": INTERVAL, "start": START, "end": END, "series": labels}
    text = (json.dumps(doc, indent=1) + "\n").encode("ascii")
    with open(os.path.join(args.out, "labels.json"), "wb") as f:
        f.write(text)
    digests["labels.json"] = hashlib.sha256(text).hexdigest()

    manifest = "".join("%s  %s\n" % (digests[n], n) for n in sorted(digests))
    with open(os.path.join(here, "manifest.sha256"), "wb") as f:
        f.write(manifest.encode("ascii"))

    print(
        "wrote %d series, %d rows to %s in %.1f s"
        % (len(labels), total_rows, args.out, time.time() - t0),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
