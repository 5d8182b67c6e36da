#!/usr/bin/env python3
"""Deterministic generator of a labelled benchmark for Waymark's anomaly detectors, in two
splits: `train` (tune on it) and `test` (judge on it, never tune on it).

    python3 tests/data/anomaly/generate.py [--split train|test] [--out DIR]

Writes one CSV per series (``timestamp,value,ok``) and ``labels.json`` into DIR/train/ and
DIR/test/ (DIR defaults to ``series/`` next to this script; ``--split`` writes one of them
only), and ``manifest-<split>.sha256`` (sha256 of every generated file of the split,
``sha256sum`` format, sorted by name) next to this script.

The test split has its own seed and wider parameter ranges (levels, noise, magnitudes,
durations, periods, phases, seasonal shape, sampling interval, timestamp jitter), so that a
detector tuned on train cannot have memorised test. The first 80 train series (groups
clean, latency, failure, regression) are byte-identical to the benchmark's first version.

Standard library only. Every series has its own ``random.Random`` seeded with
``seed * 1000 + index``; test-only extras of the first four groups come from a second
generator seeded with the string ``"<seed>/extras"``, so the train stream is unchanged.
Only ``random.Random`` methods whose output is stable across Python 3.8+ are used (random,
gauss, lognormvariate, gammavariate, uniform, randint, choice). Floats are written with
fixed decimals, so a regeneration is byte-identical; see README.md.
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

START = 1767571200  # 2026-01-05T00:00:00Z, a Monday
DAY = 86400
HOUR = 3600
MINUTE = 60
DAYS = 30
END = START + DAYS * DAY  # first timestamp after the series

WARMUP = 2 * DAY  # no labelled anomaly starts before START + WARMUP
MIN_SEPARATION = 2 * DAY  # from the end of one anomaly to the start of the next
END_MARGIN = 12 * HOUR  # labelled anomalies end at least this long before END
SPIKE_CLEARANCE = 2 * HOUR  # benign spikes stay this far from anomalies
GAP_CLEARANCE = HOUR  # missing-data gaps stay this far from anything labelled
TIMEOUT_MS = 10000.0  # latency written for the runs of an outage

# Labelled spikes are SPIKE_NOISE_MULTIPLE[0] to [1] noise deviations; in any series that
# holds one, benign slow runs stay within TAIL_NOISE_MULTIPLE deviations (see README.md).
TAIL_NOISE_MULTIPLE = (3.0, 6.0)
MAX_SPIKE_LOG = 4.0  # no latency spike beyond x e^4 (about 55) whatever the noise

# Period-over-period ground truth: days are numbered from 1 (day 1 = 2026-01-05).
PERIOD_A = (START, START + 14 * DAY)  # [start of day 1, start of day 15)
PERIOD_B = (START + 14 * DAY, START + 28 * DAY)  # [start of day 15, start of day 29)

# Train magnitudes of the first four groups (round robin, so every value is represented).
LEVEL_SHIFT_MAGNITUDES = [0.2, 0.3, 0.5, 1.0, 2.0, 4.0]
GRADUAL_MAGNITUDES = [0.5, 1.0, 2.0]
FAILURE_RATES = [0.1, 0.2, 0.5]
REGRESSION_MAGNITUDES = [-0.3, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]

CLASSIC_GROUPS = ("clean", "latency", "failure", "regression")
GROUPS = [
    ("clean", 24),
    ("latency", 24),
    ("failure", 16),
    ("regression", 16),
    ("periodic", 12),  # even index: with labelled anomalies; odd: anomaly-free
    ("drops", 8),
    ("spikes", 8),
    ("counts", 10),  # even index: with labelled anomalies; odd: anomaly-free
    ("small", 6),
    ("drift", 6),
    ("regime", 8),
    ("gauge", 6),
]
ANOMALIES_PER_SERIES = 5
SPIKES_PER_SERIES = 5  # benign spikes, latency group only
LABELLED_SPIKES = 8  # spikes group


class Split:
    """The seed and the parameter ranges of one split. `wide` (test) widens every range
    and draws magnitudes at random instead of round robin."""

    def __init__(self, name, seed, wide):
        self.name = name
        self.seed = seed
        self.wide = wide
        w = wide
        self.base_ms = (1.0, 5000.0) if w else (5.0, 800.0)
        self.small_ms = (0.05, 5.0) if w else (0.2, 3.0)
        self.sigma = (0.02, 0.3) if w else (0.03, 0.15)
        self.tail_rate = (0.0, 0.02) if w else (0.002, 0.01)
        self.tail_factor = (1.3, 10.0) if w else (1.5, 6.0)
        self.utc_offset = (-12, 14) if w else (-8, 9)
        self.daily_amplitude = (0.05, 0.8) if w else (0.1, 0.5)
        self.drift = (0.02, 0.35) if w else (0.05, 0.2)
        self.gap_probability = 0.4 if w else 0.3
        self.gap_minutes = (5, 720) if w else (10, 360)
        self.gap_count = (1, 4) if w else (1, 3)
        # Periodic normal patterns.
        self.periods = (
            [600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600, 43200]
            if w
            else [1200, 1800, 3600, 3600, 3600, 21600]
        )
        self.pattern_fraction = (1 / 12, 1 / 3) if w else (1 / 6, 1 / 4)
        self.pattern_up = (1.15, 5.0) if w else (1.3, 3.0)
        self.pattern_down = (0.2, 0.9) if w else (0.4, 0.8)
        self.pattern_shapes = ["square", "bump"] if w else ["square"]
        # Labelled anomalies of the new groups.
        self.shift_up = (0.3, 5.0) if w else (0.5, 3.0)
        self.shift_down = (0.15, 0.95) if w else (0.3, 0.9)
        self.shift_minutes = (10, 1440) if w else (30, 720)
        self.steps = (2, 5) if w else (2, 3)
        self.step_minutes = (5, 120) if w else (15, 60)
        self.hold_minutes = (30, 480) if w else (60, 240)
        self.spike_noise = (10.0, 45.0) if w else (10.0, 30.0)
        self.regime_up = (0.2, 4.0) if w else (0.3, 2.0)
        self.regime_down = (0.2, 0.85) if w else (0.3, 0.7)
        self.drift_linear = (0.2, 2.0) if w else (0.3, 1.0)
        self.drift_ramp_days = (1.0, 10.0) if w else (2.0, 7.0)
        self.drift_wander_days = (2.0, 14.0) if w else (3.0, 10.0)
        self.drift_wander = (0.05, 0.5) if w else (0.1, 0.3)
        # Counters: rates are per run (per interval).
        self.count_rate = (0.001, 0.5) if w else (0.005, 0.2)
        self.bursts_per_day = (0.5, 20.0) if w else (1.0, 8.0)
        self.burst_runs = (1, 30) if w else (1, 10)
        self.burst_mean = (1.0, 40.0) if w else (2.0, 15.0)
        self.count_shift_rate = (0.1, 5.0) if w else (0.3, 3.0)
        # Gauges: values in their own unit, noise sigma in the same unit.
        self.gauge_level = (-6.0, 6.0) if w else (-3.0, 3.0)  # in (sigma + daily amplitude)
        self.gauge_sigma = (0.05, 5.0) if w else (0.2, 2.0)
        self.gauge_daily = (0.0, 8.0) if w else (0.0, 5.0)  # amplitude, in sigmas
        self.gauge_ar = (0.0, 0.8) if w else (0.0, 0.0)
        self.gauge_offset = (4.0, 30.0) if w else (6.0, 20.0)  # in sigmas

    def interval(self, rng):
        """Seconds between runs, and the largest timestamp jitter."""
        if not self.wide:
            return 60, 0
        iv = rng.choice([30, 60, 60, 120, 300])
        jitter = rng.choice([0, iv // 10])
        return iv, jitter

    def log_uniform(self, rng, lo_hi):
        return math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1])))


SPLITS = {
    "train": Split("train", 20261122, wide=False),
    "test": Split("test", 20270613, wide=True),
}


class Grid:
    """The run times of one series: one every `iv` seconds from START to END."""

    def __init__(self, iv):
        self.iv = iv
        self.slots = DAYS * DAY // iv

    def slot_of(self, ts):
        return (ts - START) // self.iv

    def ts_of(self, slot):
        return START + slot * self.iv

    def slots_in(self, a0, a1):
        """Slots whose run time lies in [a0, a1)."""
        iv = self.iv
        lo = max(0, -((START - a0) // iv))
        hi = min(self.slots, -((START - a1) // iv))
        return range(lo, hi)


def overlaps(a0, a1, b0, b1, clearance=0):
    """Whether [a0, a1) and [b0, b1) come closer than `clearance` seconds."""
    return a0 < b1 + clearance and b0 < a1 + clearance


class Counters:
    """Round-robin counters of the train split so that every magnitude is well represented."""

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


def place(rng, grid, durations, lo, hi, separation):
    """Random non-overlapping starts for anomalies of the given durations (s),
    in the order given, each inside [lo, hi), at least `separation` seconds
    between the end of one and the start of the next. Rejection sampling, so
    the placement is uniform over the feasible configurations."""
    for _ in range(100000):
        starts = []
        for d in durations:
            starts.append(grid.ts_of(rng.randint(grid.slot_of(lo), grid.slot_of(hi - d))))
        order = sorted(range(len(durations)), key=lambda j: starts[j])
        ok = True
        for a, b in zip(order, order[1:]):
            if starts[a] + durations[a] + separation > starts[b]:
                ok = False
                break
        if ok:
            return starts
    raise RuntimeError("could not place anomalies")  # pragma: no cover


def draw_gaps(rng, split, grid, avoid):
    """One to a few missing-data gaps kept clear of `avoid` windows."""
    gaps = []
    want = rng.randint(*split.gap_count)
    while len(gaps) < want:
        dur = rng.randint(*split.gap_minutes) * MINUTE
        st = grid.ts_of(rng.randint(0, grid.slots - dur // grid.iv))
        en = st + dur
        if any(overlaps(st, en, w0, w1, GAP_CLEARANCE) for w0, w1 in avoid):
            continue
        if any(overlaps(st, en, g0, g1, HOUR) for g0, g1 in gaps):
            continue
        gaps.append((st, en))
    gaps.sort()
    return gaps


def week_table(amplitude, peak_h, half_width_h, weekend, wide):
    """Latency multiplier per local minute of the week: a raised cosine of `half_width_h`
    either side of `peak_h`, scaled by `weekend` on Saturday and Sunday."""
    week = [1.0] * (7 * 1440)
    if amplitude > 0:
        for minute in range(7 * 1440):
            hour = (minute % 1440) / 60.0
            weekday = minute // 1440  # 0 = Monday
            x = hour - peak_h
            if wide:  # a bump may wrap around midnight
                x = (x + 12.0) % 24.0 - 12.0
            if -half_width_h < x < half_width_h:
                bump = 0.5 * (1.0 + math.cos(math.pi * x / half_width_h))
                amp = amplitude * (weekend if weekday >= 5 else 1.0)
                week[minute] = 1.0 + amp * bump
    return week


def seasons(grid, week, offset_min):
    """The week table's multiplier at every slot (`offset_min`: local time minus UTC)."""
    iv = grid.iv
    return [week[(k * iv // 60 + offset_min) % 10080] for k in range(grid.slots)]


def true_change(grid, underlying):
    """Median of the noise-free, season-free multiplier over period B over the same over
    period A, minus 1."""

    def period_median(p):
        r = grid.slots_in(p[0], p[1])
        return statistics.median(underlying[r.start:r.stop])

    return round(period_median(PERIOD_B) / period_median(PERIOD_A) - 1.0, 4)


def periods_label(grid, underlying):
    return {
        "a": [PERIOD_A[0], PERIOD_A[1]],
        "b": [PERIOD_B[0], PERIOD_B[1]],
        "true_change": true_change(grid, underlying),
    }


def warmup_end(periods_s):
    """False episodes count from here: after the detectors' warm-up (two days) and after
    three of the series' longest normal period."""
    return START + max(WARMUP, 3 * max(periods_s, default=0))


# ---- the first four groups (version 1 of the benchmark) ----------------------------------


def latency_anomalies(rng, split, series_index, counters):
    """5 labelled latency anomalies: 3 level shifts and 2 gradual ramps, in an
    order rotated by series index."""
    kinds = ["level_shift", "gradual", "level_shift", "gradual", "level_shift"]
    r = series_index % len(kinds)
    kinds = kinds[r:] + kinds[:r]
    specs = []
    for kind in kinds:
        if kind == "level_shift":
            if split.wide:
                m = round(split.log_uniform(rng, (0.15, 6.0)), 4)
                dur = rng.randint(*split.shift_minutes) * MINUTE
            else:
                m = counters.next("level_shift", LEVEL_SHIFT_MAGNITUDES)
                dur = rng.randint(30, 720) * MINUTE
            specs.append({"type": kind, "magnitude": m, "dur": dur})
        else:
            if split.wide:
                m = round(split.log_uniform(rng, (0.3, 3.0)), 4)
                ramp = rng.randint(30, 720) * MINUTE
                hold = rng.randint(30, 480) * MINUTE
            else:
                m = counters.next("gradual", GRADUAL_MAGNITUDES)
                ramp = rng.randint(60, 360) * MINUTE
                hold = rng.randint(60, 240) * MINUTE
            specs.append({"type": kind, "magnitude": m, "dur": ramp + hold, "ramp": ramp})
    return specs


def failure_anomalies(rng, split, series_index, counters):
    """5 labelled failure anomalies: outages and failure-rate jumps, 3+2 or
    2+3 alternating by series index."""
    if series_index % 2 == 0:
        kinds = ["outage", "failure_rate", "outage", "failure_rate", "outage"]
    else:
        kinds = ["failure_rate", "outage", "failure_rate", "outage", "failure_rate"]
    specs = []
    for kind in kinds:
        if kind == "outage":
            lo, hi = (2, 120) if split.wide else (5, 60)
            specs.append({"type": kind, "magnitude": 1.0, "dur": rng.randint(lo, hi) * MINUTE})
        else:
            if split.wide:
                r = round(rng.uniform(0.05, 0.6), 4)
                dur = rng.randint(30, 720) * MINUTE
            else:
                r = counters.next("failure_rate", FAILURE_RATES)
                dur = rng.randint(60, 360) * MINUTE
            specs.append({"type": kind, "magnitude": r, "dur": dur})
    return specs


def regression_magnitude(rng, split, group_index):
    if not split.wide:
        return REGRESSION_MAGNITUDES[group_index % len(REGRESSION_MAGNITUDES)]
    if group_index % 4 == 0:
        return -round(rng.uniform(0.1, 0.6), 4)
    return round(split.log_uniform(rng, (0.05, 3.0)), 4)


def season_extras(split, seed):
    """Test-only shape of the daily bump and sampling interval, drawn from their own
    generator so that the train stream is exactly the version-1 one."""
    if not split.wide:
        return {"peak_h": 13.0, "half_width_h": 6.0, "weekend": 0.5, "iv": 60, "jitter": 0}
    x = random.Random("%d/extras" % seed)
    iv, jitter = split.interval(x)
    return {
        "peak_h": round(x.uniform(9.0, 18.0), 3),
        "half_width_h": round(x.uniform(3.0, 8.0), 3),
        "weekend": round(x.uniform(0.2, 1.0), 3),
        "iv": iv,
        "jitter": jitter,
    }


def generate_classic(split, group, group_index, global_index, counters):
    """One series of the groups clean, latency, failure and regression.
    Returns (csv_bytes, label_dict, row_count)."""
    seed = split.seed * 1000 + global_index
    rng = random.Random(seed)
    extras = season_extras(split, seed)
    grid = Grid(extras["iv"])
    name = "%s-%02d.csv" % (group, group_index + 1)

    # ---- per-series parameters -------------------------------------------
    base_ms = round(split.log_uniform(rng, split.base_ms), 3)
    sigma = round(rng.uniform(*split.sigma), 4)
    tail_rate = round(rng.uniform(*split.tail_rate), 4)
    utc_offset_h = rng.randint(*split.utc_offset)
    daily_amplitude = round(rng.uniform(*split.daily_amplitude), 3) if rng.random() < 0.6 else 0.0
    if rng.random() < 0.5:
        drift_total = round(rng.choice([-1, 1]) * rng.uniform(*split.drift), 4)
    else:
        drift_total = 0.0
    has_gaps = rng.random() < split.gap_probability
    if group == "failure" and group_index % 2 == 0:
        failure_rate = draw_baseline_failure_rate(rng, floor=0.005)
    else:
        failure_rate = draw_baseline_failure_rate(rng)

    # ---- labelled anomalies ----------------------------------------------
    anomalies = []
    if group in ("latency", "failure"):
        if group == "latency":
            specs = latency_anomalies(rng, split, group_index, counters)
        else:
            specs = failure_anomalies(rng, split, group_index, counters)
        starts = place(
            rng,
            grid,
            [s["dur"] for s in specs],
            START + WARMUP,
            END - END_MARGIN,
            MIN_SEPARATION,
        )
        for s, st in zip(specs, starts):
            a = {
                "type": s["type"],
                "detector": "latency" if group == "latency" else "failure",
                "direction": "up",
                "start": st,
                "end": st + s["dur"],
                "magnitude": s["magnitude"],
            }
            if "ramp" in s:
                a["ramp_end"] = st + s["ramp"]
            anomalies.append(a)
        anomalies.sort(key=lambda a: a["start"])
    elif group == "regression":
        m = regression_magnitude(rng, split, group_index)
        change = grid.ts_of(
            rng.randint(grid.slot_of(START + 10 * DAY), grid.slot_of(START + 20 * DAY) - 1)
        )
        anomalies.append(
            {
                "type": "regression",
                "detector": "latency",
                "direction": "up" if m > 0 else "down",
                "start": change,
                "end": END,
                "magnitude": m,
                "permanent": True,
            }
        )

    # Windows that benign events keep clear of. A regression only matters
    # around its change point.
    labelled_windows = []
    for a in anomalies:
        if a["type"] == "regression":
            labelled_windows.append((a["start"], a["start"] + grid.iv))
        else:
            labelled_windows.append((a["start"], a["end"]))

    # ---- benign spikes (latency group) -------------------------------------
    benign = []
    if group == "latency":
        taken = []
        lo_f, hi_f = (2.0, 15.0) if split.wide else (3.0, 10.0)
        while len(benign) < SPIKES_PER_SERIES:
            n = rng.randint(1, 2)
            st = grid.ts_of(rng.randint(grid.slot_of(START + WARMUP), grid.slots - 1 - n))
            en = st + n * grid.iv
            if any(overlaps(st, en, w0, w1, SPIKE_CLEARANCE) for w0, w1 in labelled_windows):
                continue
            if any(overlaps(st, en, w0, w1, HOUR) for w0, w1 in taken):
                continue
            factor = round(rng.uniform(lo_f, hi_f), 3)
            taken.append((st, en))
            benign.append(
                {"type": "spike", "direction": "up", "start": st, "end": en, "factor": factor}
            )
        benign.sort(key=lambda b: b["start"])

    # ---- missing-data gaps -------------------------------------------------
    gaps = []
    if has_gaps:
        gaps = draw_gaps(rng, split, grid, labelled_windows + [(b["start"], b["end"]) for b in benign])

    # ---- per-slot deterministic multipliers --------------------------------
    slots = grid.slots
    drift_slope = drift_total / (slots - 1)
    trend = [1.0 + drift_slope * k for k in range(slots)]
    anom = [1.0] * slots
    for a in anomalies:
        r = grid.slots_in(a["start"], a["end"])
        m = a["magnitude"]
        if a["type"] in ("level_shift", "regression"):
            for k in r:
                anom[k] *= 1.0 + m
        elif a["type"] == "gradual":
            s0 = r.start
            r1 = grid.slots_in(a["start"], a["ramp_end"]).stop
            n = r1 - s0
            for k in range(s0, r1):
                anom[k] *= 1.0 + m * (k - s0) / n
            for k in range(r1, r.stop):
                anom[k] *= 1.0 + m
    underlying = [trend[k] * anom[k] for k in range(slots)]

    spike = [1.0] * slots
    for b in benign:
        for k in grid.slots_in(b["start"], b["end"]):
            spike[k] = b["factor"]

    fail_p = [failure_rate] * slots
    outage = [False] * slots
    for a in anomalies:
        r = grid.slots_in(a["start"], a["end"])
        if a["type"] == "outage":
            for k in r:
                outage[k] = True
        elif a["type"] == "failure_rate":
            for k in r:
                fail_p[k] = max(fail_p[k], a["magnitude"])

    present = presence(grid, gaps)
    week = week_table(
        daily_amplitude, extras["peak_h"], extras["half_width_h"], extras["weekend"], split.wide
    )
    season = seasons(grid, week, utc_offset_h * 60)

    # ---- rows ----------------------------------------------------------------
    lognorm = rng.lognormvariate
    rand = rng.random
    uniform = rng.uniform
    jitter = extras["jitter"]
    tail_lo, tail_hi = split.tail_factor
    out = ["timestamp,value,ok\n"]
    rows = 0
    for k in range(slots):
        # The same random draws happen for every slot, present or not, so a gap
        # does not shift the random stream of the rest of the series.
        noise = lognorm(0.0, sigma)
        tail = uniform(tail_lo, tail_hi) if rand() < tail_rate else 1.0
        u_fail = rand()
        dt = int(rand() * (jitter + 1)) if jitter else 0
        if not present[k]:
            continue
        ts = START + k * grid.iv + dt
        if outage[k]:
            out.append("%d,%.3f,0\n" % (ts, TIMEOUT_MS))
        else:
            value = base_ms * season[k] * underlying[k] * spike[k] * noise * tail
            out.append("%d,%.3f,%d\n" % (ts, value, 0 if u_fail < fail_p[k] else 1))
        rows += 1

    periods_s = [DAY] if daily_amplitude > 0 else []
    label = {
        "file": name,
        "group": group,
        "value_kind": "latency",
        "seed": seed,
        "interval_s": grid.iv,
        "jitter_s": jitter,
        "base_ms": base_ms,
        "sigma": sigma,
        "utc_offset_h": utc_offset_h,
        "daily_amplitude": daily_amplitude,
        "daily_shape": {k: extras[k] for k in ("peak_h", "half_width_h", "weekend")},
        "drift_total": drift_total,
        "tail_rate": tail_rate,
        "failure_rate": failure_rate,
        "rows": rows,
        "periods_s": periods_s,
        "warmup_end": warmup_end(periods_s),
        "gaps": [[g0, g1] for g0, g1 in gaps],
        "anomalies": anomalies,
        "benign": benign,
        "periods": periods_label(grid, underlying),
    }
    return "".join(out).encode("ascii"), label, rows


def presence(grid, gaps):
    present = [True] * grid.slots
    for g0, g1 in gaps:
        for k in grid.slots_in(g0, g1):
            present[k] = False
    return present


# ---- the groups added in version 2 -----------------------------------------------------


def spike_spec(rng, split, sigma, down_share=0.25):
    """A labelled 1-run spike of `noise_multiple` deviations (log space for latencies)."""
    lo, hi = split.spike_noise
    if sigma > 0:
        hi = max(lo, min(hi, MAX_SPIKE_LOG / sigma))
    nm = round(rng.uniform(lo, hi), 2)
    up = rng.random() >= down_share
    return {"type": "spike", "direction": "up" if up else "down", "noise_multiple": nm}


def shift_spec(rng, split, direction, kind="level_shift"):
    if direction == "up":
        m = round(split.log_uniform(rng, split.shift_up), 4)
    else:
        m = -round(rng.uniform(*split.shift_down), 4)
    dur = rng.randint(*split.shift_minutes) * MINUTE
    return {"type": kind, "direction": direction, "magnitude": m, "dur": dur}


def step_down_spec(rng, split):
    n = rng.randint(*split.steps)
    step = rng.randint(*split.step_minutes) * MINUTE
    hold = rng.randint(*split.hold_minutes) * MINUTE
    m = -round(rng.uniform(*split.shift_down), 4)
    return {
        "type": "step_down",
        "direction": "down",
        "magnitude": m,
        "steps": n,
        "step_s": step,
        "dur": (n - 1) * step + hold,
    }


def place_specs(rng, grid, specs, lo, separation):
    """Gives each spec a start and end, in time order."""
    durs = [s.get("dur", grid.iv) for s in specs]
    starts = place(rng, grid, durs, lo, END - END_MARGIN, separation)
    anomalies = []
    for s, st, d in zip(specs, starts, durs):
        a = {"type": s["type"], "detector": "latency", "direction": s["direction"], "start": st}
        a["end"] = st + d
        for key in ("magnitude", "noise_multiple", "steps", "step_s", "rate", "delta"):
            if key in s:
                a[key] = s[key]
        if s["type"] == "step_down":
            a["full_at"] = st + (s["steps"] - 1) * s["step_s"]
        anomalies.append(a)
    anomalies.sort(key=lambda a: a["start"])
    return anomalies


def draw_patterns(rng, split, count):
    """Normal periodic patterns: a spike or dip of a fixed length at the same phase of
    every period."""
    patterns = []
    for _ in range(count):
        period = rng.choice(split.periods)
        while any(p["period_s"] == period for p in patterns):
            period = rng.choice(split.periods)
        lo, hi = split.pattern_fraction
        dur = max(MINUTE, int(period * rng.uniform(lo, hi)) // MINUTE * MINUTE)
        if rng.random() < 0.25:
            factor = round(rng.uniform(*split.pattern_down), 3)
        else:
            factor = round(rng.uniform(*split.pattern_up), 3)
        patterns.append(
            {
                "period_s": period,
                "phase_s": rng.randint(0, period // MINUTE - 1) * MINUTE,
                "duration_s": dur,
                "factor": factor,
                "shape": rng.choice(split.pattern_shapes),
            }
        )
    return patterns


def pattern_table(grid, patterns):
    """Multiplier of the normal periodic patterns at every slot."""
    table = [1.0] * grid.slots
    for p in patterns:
        period, phase, dur, f = p["period_s"], p["phase_s"], p["duration_s"], p["factor"]
        bump = p["shape"] == "bump"
        for k in range(grid.slots):
            u = (k * grid.iv - phase) % period
            if u < dur:
                if bump:
                    table[k] *= 1.0 + (f - 1.0) * 0.5 * (1.0 - math.cos(2.0 * math.pi * u / dur))
                else:
                    table[k] *= f
    return table


def drift_table(rng, split, grid, group, lo):
    """Slow, normal change of level: small in most groups, large in `drift`."""
    n = grid.slots
    if group != "drift":
        if rng.random() < 0.5:
            total = round(rng.choice([-1, 1]) * rng.uniform(*split.drift), 4)
            slope = total / (n - 1)
            return [1.0 + slope * k for k in range(n)], {"kind": "linear", "total": total}
        return [1.0] * n, None
    kind = ["linear", "ramp", "wander"][rng.randint(0, 2)]
    if kind == "linear":
        up = rng.random() < 0.5
        total = rng.uniform(*split.drift_linear)
        total = round(total if up else -min(0.8, total / (1.0 + total)), 4)
        slope = total / (n - 1)
        return [1.0 + slope * k for k in range(n)], {"kind": kind, "total": total}
    if kind == "ramp":
        total = round(rng.uniform(*split.drift_linear), 4)
        if split.wide and rng.random() < 0.5:
            total = -round(min(0.8, total / (1.0 + total)), 4)
        days = round(rng.uniform(*split.drift_ramp_days), 3)
        r0 = grid.ts_of(rng.randint(grid.slot_of(lo), grid.slot_of(END - int(days * DAY)) - 1))
        r1 = r0 + int(days * DAY)
        table = []
        for k in range(n):
            ts = grid.ts_of(k)
            x = min(1.0, max(0.0, (ts - r0) / (r1 - r0)))
            table.append(1.0 + total * x)
        return table, {"kind": kind, "total": total, "start": r0, "end": r1}
    days = round(rng.uniform(*split.drift_wander_days), 3)
    amp = round(rng.uniform(*split.drift_wander), 4)
    phase = round(rng.uniform(0.0, 2.0 * math.pi), 4)
    w = 2.0 * math.pi / (days * DAY)
    table = [1.0 + amp * math.sin(w * k * grid.iv + phase) for k in range(n)]
    return table, {"kind": kind, "amplitude": amp, "period_days": days, "phase": phase}


def new_series_specs(rng, split, group, group_index, sigma):
    """Labelled anomalies of a latency-valued series of the version-2 groups, before
    placement: (specs, separation)."""
    if group == "periodic":
        if group_index % 2 == 1:
            return [], MIN_SEPARATION
        specs = [
            shift_spec(rng, split, "up"),
            shift_spec(rng, split, "down"),
            spike_spec(rng, split, sigma),
        ]
        return specs, MIN_SEPARATION
    if group == "drops":
        specs = [shift_spec(rng, split, "down") for _ in range(3)]
        specs += [step_down_spec(rng, split) for _ in range(2)]
        return specs, MIN_SEPARATION
    if group == "spikes":
        return [spike_spec(rng, split, sigma) for _ in range(LABELLED_SPIKES)], DAY
    if group == "small":
        specs = [shift_spec(rng, split, "up") for _ in range(3)]
        specs += [shift_spec(rng, split, "down"), spike_spec(rng, split, sigma)]
        return specs, MIN_SEPARATION
    if group == "regime":
        direction = "up" if group_index % 2 == 0 else "down"
        if direction == "up":
            m = round(split.log_uniform(rng, split.regime_up), 4)
        else:
            m = -round(rng.uniform(*split.regime_down), 4)
        return [
            {"type": "regime_change", "direction": direction, "magnitude": m, "permanent": True}
        ], MIN_SEPARATION
    if group == "drift":
        return [], MIN_SEPARATION
    raise ValueError(group)  # pragma: no cover


def generate_latency_v2(split, group, group_index, global_index):
    """A latency-valued series of the groups periodic, drops, spikes, small, drift, regime."""
    seed = split.seed * 1000 + global_index
    rng = random.Random(seed)
    iv, jitter = split.interval(rng)
    grid = Grid(iv)
    name = "%s-%02d.csv" % (group, group_index + 1)

    base_range = split.small_ms if group == "small" else split.base_ms
    base_ms = round(split.log_uniform(rng, base_range), 4)
    sigma = round(rng.uniform(*split.sigma), 4)
    tail_rate = round(rng.uniform(*split.tail_rate), 4)
    utc_offset_h = rng.randint(*split.utc_offset)
    daily_p = 0.3 if group == "periodic" else 0.6
    daily_amplitude = round(rng.uniform(*split.daily_amplitude), 3) if rng.random() < daily_p else 0.0
    if split.wide:
        shape = {
            "peak_h": round(rng.uniform(9.0, 18.0), 3),
            "half_width_h": round(rng.uniform(3.0, 8.0), 3),
            "weekend": round(rng.uniform(0.2, 1.0), 3),
        }
    else:
        shape = {"peak_h": 13.0, "half_width_h": 6.0, "weekend": 0.5}
    failure_rate = draw_baseline_failure_rate(rng)
    has_gaps = rng.random() < split.gap_probability

    patterns = []
    if group == "periodic":
        count = rng.randint(1, 2) if split.wide else 1
        patterns = draw_patterns(rng, split, count)
    periods_s = sorted({p["period_s"] for p in patterns} | ({DAY} if daily_amplitude > 0 else set()))
    wend = warmup_end(periods_s)

    specs, separation = new_series_specs(rng, split, group, group_index, sigma)
    regime = [s for s in specs if s["type"] == "regime_change"]
    anomalies = []
    if regime:
        s = regime[0]
        change = grid.ts_of(rng.randint(grid.slot_of(START + 8 * DAY), grid.slot_of(START + 22 * DAY)))
        anomalies.append(
            {
                "type": "regime_change",
                "detector": "latency",
                "direction": s["direction"],
                "start": change,
                "end": END,
                "magnitude": s["magnitude"],
                "permanent": True,
            }
        )
    elif specs:
        anomalies = place_specs(rng, grid, specs, max(wend, START + WARMUP), separation)
    has_spike = any(a["type"] == "spike" for a in anomalies)

    trend, drift = drift_table(rng, split, grid, group, wend)

    # ---- deterministic multipliers -------------------------------------------
    slots = grid.slots
    anom = [1.0] * slots
    spike = [1.0] * slots
    for a in anomalies:
        r = grid.slots_in(a["start"], a["end"])
        t = a["type"]
        if t in ("level_shift", "regime_change"):
            for k in r:
                anom[k] *= 1.0 + a["magnitude"]
        elif t == "step_down":
            n, step = a["steps"], a["step_s"]
            for k in r:
                j = min(n - 1, (grid.ts_of(k) - a["start"]) // step)
                anom[k] *= 1.0 + a["magnitude"] * (j + 1) / n
        elif t == "spike":
            sign = 1.0 if a["direction"] == "up" else -1.0
            factor = math.exp(sign * a["noise_multiple"] * sigma)
            a["factor"] = round(factor, 4)
            for k in r:
                spike[k] = factor
    underlying = [trend[k] * anom[k] for k in range(slots)]
    pattern = pattern_table(grid, patterns)

    gaps = []
    if has_gaps:
        gaps = draw_gaps(rng, split, grid, [(a["start"], min(a["end"], a["start"] + HOUR)) for a in anomalies])
    present = presence(grid, gaps)
    week = week_table(daily_amplitude, shape["peak_h"], shape["half_width_h"], shape["weekend"], split.wide)
    season = seasons(grid, week, utc_offset_h * 60)

    # In a series with a labelled spike, benign slow runs stay within 3-6 deviations.
    if has_spike:
        tail_lo, tail_hi = (math.exp(m * sigma) for m in TAIL_NOISE_MULTIPLE)
    else:
        tail_lo, tail_hi = split.tail_factor

    expected = [
        base_ms * season[k] * pattern[k] * underlying[k] * spike[k] for k in range(slots)
    ]
    exp = math.exp
    gauss = rng.gauss
    rand = rng.random
    uniform = rng.uniform
    out = ["timestamp,value,ok\n"]
    rows = 0
    for k in range(slots):
        noise = exp(sigma * gauss(0.0, 1.0))
        tail = uniform(tail_lo, tail_hi) if rand() < tail_rate else 1.0
        u_fail = rand()
        dt = int(rand() * (jitter + 1)) if jitter else 0
        if not present[k]:
            continue
        value = expected[k] * noise * tail
        out.append("%d,%.3f,%d\n" % (START + k * iv + dt, value, 0 if u_fail < failure_rate else 1))
        rows += 1

    label = {
        "file": name,
        "group": group,
        "value_kind": "latency",
        "seed": seed,
        "interval_s": iv,
        "jitter_s": jitter,
        "base_ms": base_ms,
        "sigma": sigma,
        "utc_offset_h": utc_offset_h,
        "daily_amplitude": daily_amplitude,
        "daily_shape": shape,
        "drift_total": drift.get("total", 0.0) if drift else 0.0,
        "drift": drift,
        "tail_rate": tail_rate,
        "tail_factor": [round(tail_lo, 4), round(tail_hi, 4)],
        "failure_rate": failure_rate,
        "rows": rows,
        "periods_s": periods_s,
        "patterns": patterns,
        "warmup_end": wend,
        "gaps": [[g0, g1] for g0, g1 in gaps],
        "anomalies": anomalies,
        "benign": [],
        "periods": periods_label(grid, underlying),
    }
    return "".join(out).encode("ascii"), label, rows


def poisson(u, lam):
    """Poisson(lam) by inversion of one uniform draw, so every run costs the same draws."""
    p = math.exp(-lam)
    c = p
    k = 0
    while u > c and k < 1000:
        k += 1
        p *= lam / k
        c += p
    return k


def generate_counts(split, group_index, global_index):
    """A zero-heavy counter (errors per run): a small background rate with a daily bump,
    benign negative-binomial bursts, and for even indices labelled rate shifts."""
    seed = split.seed * 1000 + global_index
    rng = random.Random(seed)
    iv, jitter = split.interval(rng)
    grid = Grid(iv)
    name = "counts-%02d.csv" % (group_index + 1)

    rate = round(split.log_uniform(rng, split.count_rate), 5)
    utc_offset_h = rng.randint(*split.utc_offset)
    daily_amplitude = round(rng.uniform(*split.daily_amplitude), 3) if rng.random() < 0.5 else 0.0
    bursts_per_day = round(rng.uniform(*split.bursts_per_day), 3)
    burst_runs = rng.randint(*split.burst_runs)
    burst_mean = round(rng.uniform(*split.burst_mean), 3)
    burst_shape = round(rng.uniform(0.5, 2.0), 3)
    has_gaps = rng.random() < split.gap_probability
    periods_s = [DAY] if daily_amplitude > 0 else []
    wend = warmup_end(periods_s)

    anomalies = []
    if group_index % 2 == 0:
        specs = []
        for _ in range(3):
            extra = round(rng.uniform(*split.count_shift_rate), 4)
            dur = rng.randint(60, 360) * MINUTE if not split.wide else rng.randint(30, 720) * MINUTE
            specs.append(
                {
                    "type": "rate_shift",
                    "direction": "up",
                    "rate": extra,
                    "magnitude": round(extra / rate, 3),
                    "dur": dur,
                }
            )
        anomalies = place_specs(rng, grid, specs, max(wend, START + WARMUP), MIN_SEPARATION)
    gaps = draw_gaps(rng, split, grid, [(a["start"], a["end"]) for a in anomalies]) if has_gaps else []
    present = presence(grid, gaps)

    slots = grid.slots
    week = week_table(daily_amplitude, 13.0, 6.0, 0.5, False)
    offset_min = utc_offset_h * 60
    lam = [rate * w for w in seasons(grid, week, offset_min)]
    for a in anomalies:
        for k in grid.slots_in(a["start"], a["end"]):
            lam[k] += a["rate"]

    p_burst = bursts_per_day * iv / DAY
    rand = rng.random
    randint = rng.randint
    out = ["timestamp,value,ok\n"]
    rows = 0
    left, mu = 0, 0.0
    for k in range(slots):
        u = rand()
        if left == 0 and rand() < p_burst:
            left = randint(1, burst_runs)
            mu = rng.gammavariate(burst_shape, burst_mean / burst_shape)
        elif left == 0:
            mu = 0.0
        dt = int(rand() * (jitter + 1)) if jitter else 0
        value = poisson(u, lam[k] + (mu if left > 0 else 0.0))
        if left > 0:
            left -= 1
        if not present[k]:
            continue
        out.append("%d,%d,1\n" % (START + k * iv + dt, value))
        rows += 1

    label = {
        "file": name,
        "group": "counts",
        "value_kind": "count",
        "seed": seed,
        "interval_s": iv,
        "jitter_s": jitter,
        "utc_offset_h": utc_offset_h,
        "daily_amplitude": daily_amplitude,
        "counter": {
            "rate": rate,
            "bursts_per_day": bursts_per_day,
            "burst_runs_max": burst_runs,
            "burst_mean": burst_mean,
            "burst_shape": burst_shape,
        },
        "failure_rate": 0.0,
        "rows": rows,
        "periods_s": periods_s,
        "warmup_end": wend,
        "gaps": [[g0, g1] for g0, g1 in gaps],
        "anomalies": anomalies,
        "benign": [],
        "periods": None,
    }
    return "".join(out).encode("ascii"), label, rows


def generate_gauge(split, group_index, global_index):
    """A gauge around zero (a temperature, a delta): level + daily sine + Gaussian (test:
    autocorrelated) noise, with labelled offsets and spikes both ways."""
    seed = split.seed * 1000 + global_index
    rng = random.Random(seed)
    iv, jitter = split.interval(rng)
    grid = Grid(iv)
    name = "gauge-%02d.csv" % (group_index + 1)

    sigma = round(split.log_uniform(rng, split.gauge_sigma), 4)
    daily = round(rng.uniform(*split.gauge_daily) * sigma, 4) if rng.random() < 0.6 else 0.0
    # Around zero: the level is within a few deviations (and the daily swing) of 0.
    level = round(rng.uniform(*split.gauge_level) * (sigma + daily), 3)
    daily_phase = round(rng.uniform(0.0, 2.0 * math.pi), 4)
    ar = round(rng.uniform(*split.gauge_ar), 3)
    periods_s = [DAY] if daily > 0 else []
    wend = warmup_end(periods_s)

    specs = []
    for j in range(4):
        direction = "up" if rng.random() < 0.5 else "down"
        if j % 2 == 0:
            nm = round(rng.uniform(*split.gauge_offset), 2)
            delta = round(nm * sigma * (1 if direction == "up" else -1), 4)
            dur = rng.randint(30, 360) * MINUTE
            specs.append(
                {"type": "offset", "direction": direction, "noise_multiple": nm, "delta": delta, "dur": dur}
            )
        else:
            nm = round(rng.uniform(*split.spike_noise), 2)
            delta = round(nm * sigma * (1 if direction == "up" else -1), 4)
            specs.append({"type": "spike", "direction": direction, "noise_multiple": nm, "delta": delta})
    anomalies = place_specs(rng, grid, specs, max(wend, START + WARMUP), MIN_SEPARATION)

    slots = grid.slots
    add = [0.0] * slots
    for a in anomalies:
        for k in grid.slots_in(a["start"], a["end"]):
            add[k] += a["delta"]
    w = 2.0 * math.pi / DAY
    shift_s = rng.randint(*split.utc_offset) * HOUR
    scale = sigma * math.sqrt(1.0 - ar * ar)
    gauss = rng.gauss
    rand = rng.random
    out = ["timestamp,value,ok\n"]
    rows = 0
    e = gauss(0.0, sigma)
    for k in range(slots):
        e = ar * e + gauss(0.0, scale)
        dt = int(rand() * (jitter + 1)) if jitter else 0
        ts = START + k * iv
        value = level + daily * math.sin(w * (ts + shift_s) + daily_phase) + add[k] + e
        out.append("%d,%.3f,1\n" % (ts + dt, value))
        rows += 1

    label = {
        "file": name,
        "group": "gauge",
        "value_kind": "gauge",
        "seed": seed,
        "interval_s": iv,
        "jitter_s": jitter,
        "gauge": {
            "level": level,
            "sigma": sigma,
            "daily_amplitude": daily,
            "daily_phase": daily_phase,
            "utc_shift_s": shift_s,
            "ar": ar,
        },
        "sigma": sigma,
        "failure_rate": 0.0,
        "rows": rows,
        "periods_s": periods_s,
        "warmup_end": wend,
        "gaps": [],
        "anomalies": anomalies,
        "benign": [],
        "periods": None,
    }
    return "".join(out).encode("ascii"), label, rows


def generate_split(split, parent, here):
    out_dir = os.path.join(parent, split.name)
    os.makedirs(out_dir, exist_ok=True)
    counters = Counters()
    labels = []
    digests = {}
    total_rows = 0
    index = 0
    for group, count in GROUPS:
        for i in range(count):
            if group in CLASSIC_GROUPS:
                data, label, rows = generate_classic(split, group, i, index, counters)
            elif group == "counts":
                data, label, rows = generate_counts(split, i, index)
            elif group == "gauge":
                data, label, rows = generate_gauge(split, i, index)
            else:
                data, label, rows = generate_latency_v2(split, group, i, index)
            index += 1
            with open(os.path.join(out_dir, label["file"]), "wb") as f:
                f.write(data)
            digests[label["file"]] = hashlib.sha256(data).hexdigest()
            labels.append(label)
            total_rows += rows

    doc = {
        "version": 2,
        "split": split.name,
        "seed": split.seed,
        "interval_s": 60,
        "start": START,
        "end": END,
        "series": labels,
    }
    text = (json.dumps(doc, indent=1) + "\n").encode("ascii")
    with open(os.path.join(out_dir, "labels.json"), "wb") as f:
        f.write(text)
    digests["labels.json"] = hashlib.sha256(text).hexdigest()

    manifest = "".join("%s  %s\n" % (digests[n], n) for n in sorted(digests))
    with open(os.path.join(here, "manifest-%s.sha256" % split.name), "wb") as f:
        f.write(manifest.encode("ascii"))
    return len(labels), total_rows, out_dir


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "series"), help="parent output directory")
    ap.add_argument("--split", choices=sorted(SPLITS), help="one split only (default: both)")
    args = ap.parse_args(argv)

    names = [args.split] if args.split else ["train", "test"]
    for name in names:
        t0 = time.time()
        n, rows, out_dir = generate_split(SPLITS[name], args.out, here)
        print(
            "%s: wrote %d series, %d rows to %s in %.1f s" % (name, n, rows, out_dir, time.time() - t0),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
