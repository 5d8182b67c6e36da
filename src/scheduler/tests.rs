//! Scheduler tests. Planning is tested as pure functions; the scheduler runs in tokio's paused
//! time with a [`TokioClock`], so simulated days take milliseconds and every run is
//! deterministic (single-threaded runtime, time advances only when every task is idle).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Paris;

use super::*;
use crate::journey::schedule::parse_cron;
use crate::journey::{Journey, Schedule, Source};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cron(expr: &str, tz: Option<&str>) -> Schedule {
    Schedule::Cron(Box::new(parse_cron(expr, tz).unwrap()))
}

fn journey(name: &str, schedule: Schedule, version: &str) -> Journey {
    Journey {
        name: name.to_string(),
        description: None,
        schedule,
        timeout: Duration::from_secs(30),
        tags: Vec::new(),
        owner: None,
        runbook: None,
        slo: None,
        public: false,
        group: None,
        locations: Vec::new(),
        variables: Vec::new(),
        anomaly: Default::default(),
        alert: Default::default(),
        steps: Vec::new(),
        source: Source {
            content_sha256: version.to_string(),
            ..Source::default()
        },
    }
}

/// Every fire of `schedule` in `[from, to)`.
fn fires(
    schedule: &Schedule,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut after = from - chrono::Duration::nanoseconds(1);
    while let Some(t) = next_fire(schedule, name, after) {
        if t >= to {
            break;
        }
        assert!(t > after, "{t} not after {after}");
        out.push(t);
        after = t;
    }
    out
}

/// Fires during the local calendar day `date` in Paris.
fn paris_day(schedule: &Schedule, date: (i32, u32, u32)) -> Vec<DateTime<Utc>> {
    let day = NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap();
    let start = Paris
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let end = Paris
        .from_local_datetime(&day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    fires(schedule, "j", start, end)
}

/// Consecutive instants are exactly `step` apart.
#[track_caller]
fn assert_spaced(instants: &[DateTime<Utc>], step: chrono::Duration) {
    for w in instants.windows(2) {
        assert_eq!(w[1] - w[0], step, "{} then {}", w[0], w[1]);
    }
}

// ---------------------------------------------------------------- planning: intervals

#[test]
fn interval_offset_is_a_stable_fnv1a_of_the_name() {
    // Golden values: changing them moves every deployed journey's ticks.
    assert_eq!(fnv1a64_reference("checkout"), plan::fnv1a64(b"checkout"));
    assert_eq!(plan::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(plan::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    let minute = Duration::from_secs(60);
    let offset = interval_offset("checkout", minute);
    assert_eq!(
        offset,
        Duration::from_millis(plan::fnv1a64(b"checkout") % 60_000)
    );
    assert_eq!(offset, interval_offset("checkout", minute));
    assert!(offset < minute);
}

fn fnv1a64_reference(s: &str) -> u64 {
    // An independent spelling of FNV-1a, to pin the implementation.
    s.bytes().fold(14_695_981_039_346_656_037u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
    })
}

#[test]
fn interval_fires_1440_times_a_day_at_offset_plus_k_minutes() {
    let every = Schedule::Every(Duration::from_secs(60));
    let offset =
        chrono::Duration::from_std(interval_offset("checkout", Duration::from_secs(60))).unwrap();
    let day = utc("2026-01-01T00:00:00Z");
    let got = fires(&every, "checkout", day, day + chrono::Duration::days(1));
    assert_eq!(got.len(), 1440);
    for (k, t) in got.iter().enumerate() {
        assert_eq!(*t, day + offset + chrono::Duration::minutes(k as i64));
    }
}

#[test]
fn interval_offsets_spread_1000_journeys_over_the_minute() {
    let mut per_second = [0u32; 60];
    for i in 0..1000 {
        let off = interval_offset(&format!("journey-{i}"), Duration::from_secs(60));
        per_second[off.as_secs() as usize] += 1;
    }
    let mean = 1000.0 / 60.0;
    let max = *per_second.iter().max().unwrap();
    let min = *per_second.iter().min().unwrap();
    assert!(
        f64::from(max) <= 3.0 * mean,
        "busiest second holds {max}: {per_second:?}"
    );
    assert!(min > 0, "an empty second: {per_second:?}");
}

#[test]
fn interval_ticks_are_the_same_from_any_starting_point() {
    let every = Schedule::Every(Duration::from_secs(300));
    let a = next_fire(&every, "x", utc("2026-05-01T10:00:00Z")).unwrap();
    let b = next_fire(&every, "x", a - chrono::Duration::milliseconds(1)).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        next_fire(&every, "x", a).unwrap(),
        a + chrono::Duration::minutes(5)
    );
}

// ---------------------------------------------------------------- planning: cron

#[test]
fn cron_five_fields_in_paris_over_a_week() {
    // Weekdays at 09:00 Paris; 2026-01-05 is a Monday, Paris is UTC+1 in January.
    let s = cron("0 9 * * 1-5", Some("Europe/Paris"));
    let got = fires(
        &s,
        "j",
        utc("2026-01-05T00:00:00Z"),
        utc("2026-01-12T00:00:00Z"),
    );
    let want: Vec<_> = (5..=9)
        .map(|d| Utc.with_ymd_and_hms(2026, 1, d, 8, 0, 0).unwrap())
        .collect();
    assert_eq!(got, want);
    // Every 15 minutes: 96 a day, 15 minutes apart, on the quarter.
    let q = cron("*/15 * * * *", Some("Europe/Paris"));
    let day = paris_day(&q, (2026, 1, 7));
    assert_eq!(day.len(), 96);
    assert!(day.iter().all(|t| t.minute() % 15 == 0 && t.second() == 0));
}

#[test]
fn cron_six_fields_fire_every_ten_seconds() {
    let s = cron("*/10 * * * * *", Some("Europe/Paris"));
    let day = paris_day(&s, (2026, 6, 10));
    assert_eq!(day.len(), 8640);
    assert_spaced(&day, chrono::Duration::seconds(10));
    // UTC by default.
    let s = cron("30 0 12 * * *", None);
    assert_eq!(
        next_fire(&s, "j", utc("2026-06-10T12:00:30Z")),
        Some(utc("2026-06-11T12:00:30Z"))
    );
}

#[test]
fn cron_spring_forward_skips_the_missing_hour() {
    // 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    let daily = cron("30 2 * * *", Some("Europe/Paris"));
    assert!(paris_day(&daily, (2026, 3, 29)).is_empty());
    assert_eq!(
        paris_day(&daily, (2026, 3, 28)),
        vec![utc("2026-03-28T01:30:00Z")]
    );
    assert_eq!(
        next_fire(&daily, "j", utc("2026-03-28T01:30:00Z")),
        Some(utc("2026-03-30T00:30:00Z"))
    );
    let hourly = cron("0 * * * *", Some("Europe/Paris"));
    let day = paris_day(&hourly, (2026, 3, 29));
    assert_eq!(day.len(), 23);
    assert_spaced(&day, chrono::Duration::hours(1));
    let quarter = cron("*/15 * * * *", Some("Europe/Paris"));
    assert_eq!(paris_day(&quarter, (2026, 3, 29)).len(), 92);
}

#[test]
fn cron_fall_back_fires_a_fixed_time_once_and_repeats_only_wildcard_hours() {
    // 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:00-02:59 happens twice.
    let daily = cron("30 2 * * *", Some("Europe/Paris"));
    assert_eq!(
        paris_day(&daily, (2026, 10, 25)),
        vec![utc("2026-10-25T00:30:00Z")] // the first 02:30 (CEST) only
    );
    // Asked from inside the repeated hour, the next one is tomorrow, not the second 02:30.
    assert_eq!(
        next_fire(&daily, "j", utc("2026-10-25T01:10:00Z")),
        Some(utc("2026-10-26T01:30:00Z"))
    );
    let in_hour_two = cron("* 2 * * *", Some("Europe/Paris"));
    assert_eq!(paris_day(&in_hour_two, (2026, 10, 25)).len(), 60);

    let hourly = cron("0 * * * *", Some("Europe/Paris"));
    let day = paris_day(&hourly, (2026, 10, 25));
    assert_eq!(day.len(), 25);
    assert_spaced(&day, chrono::Duration::hours(1));
    let quarter = cron("*/15 * * * *", Some("Europe/Paris"));
    let day = paris_day(&quarter, (2026, 10, 25));
    assert_eq!(day.len(), 100);
    assert_spaced(&day, chrono::Duration::minutes(15));
    // From inside either pass of the repeated hour, the next quarter is 15 real minutes on.
    for from in [
        "2026-10-25T00:50:00Z",
        "2026-10-25T01:05:00Z",
        "2026-10-25T01:50:00Z",
    ] {
        let from = utc(from);
        let next = next_fire(&quarter, "j", from).unwrap();
        assert!(
            next > from && next - from <= chrono::Duration::minutes(15),
            "{from} -> {next}"
        );
    }
}

// ---------------------------------------------------------------- the scheduler

#[derive(Debug, Clone)]
struct Call {
    journey: String,
    planned: DateTime<Utc>,
    started: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
    lag: Duration,
}

/// A fake executor: records calls, takes a configured (simulated) time per journey.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    durations: HashMap<String, Duration>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Recorder {
    fn with(durations: &[(&str, u64)]) -> Arc<Self> {
        Arc::new(Self {
            durations: durations
                .iter()
                .map(|(n, s)| (n.to_string(), Duration::from_secs(*s)))
                .collect(),
            ..Self::default()
        })
    }

    fn calls(&self, name: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.journey == name)
            .cloned()
            .collect()
    }
}

impl RunExecutor for Recorder {
    fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let index = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(Call {
                    journey: run.journey.name.clone(),
                    planned: run.planned,
                    started: run.started,
                    ended: None,
                    lag: run.lag,
                });
                calls.len() - 1
            };
            let took = self
                .durations
                .get(&run.journey.name)
                .copied()
                .unwrap_or_default();
            tokio::time::sleep(took).await;
            self.calls.lock().unwrap()[index].ended =
                Some(run.started + chrono::Duration::from_std(took).unwrap());
            self.running.fetch_sub(1, Ordering::SeqCst);
        })
    }
}

fn config(max: usize, grace_secs: u64) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: max,
        shutdown_grace: Duration::from_secs(grace_secs),
    }
}

async fn sleep_until(clock: &TokioClock, t: &str) {
    clock.sleep_until(utc(t)).await;
}

#[tokio::test(start_paused = true)]
async fn a_simulated_day_of_every_minute_runs_1440_times() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:00Z"));
    let rec = Recorder::with(&[]);
    let every = Schedule::Every(Duration::from_secs(60));
    let offset =
        chrono::Duration::from_std(interval_offset("checkout", Duration::from_secs(60))).unwrap();
    assert!(offset > chrono::Duration::zero());
    let s = Scheduler::new(
        [journey("checkout", every, "v1")],
        rec.clone(),
        Arc::new(clock),
        config(4, 30),
    );
    sleep_until(&clock, "2026-01-02T00:00:00Z").await;
    let summary = s.shutdown().await;
    let calls = rec.calls("checkout");
    assert_eq!(calls.len(), 1440);
    let day = utc("2026-01-01T00:00:00Z");
    for (k, c) in calls.iter().enumerate() {
        assert_eq!(
            c.planned,
            day + offset + chrono::Duration::minutes(k as i64)
        );
        assert_eq!(c.started, c.planned);
        assert_eq!(c.lag, Duration::ZERO);
    }
    assert_eq!((summary.started, summary.finished), (1440, 1440));
    assert_eq!((summary.skipped_overlap, summary.abandoned), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_slow_journey_never_overlaps_and_its_ticks_are_skipped_and_counted() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:00Z"));
    let rec = Recorder::with(&[("slow", 150)]);
    let s = Scheduler::new(
        [journey(
            "slow",
            Schedule::Every(Duration::from_secs(60)),
            "v1",
        )],
        rec.clone(),
        Arc::new(clock),
        config(4, 300),
    );
    // Ticks k = 0..9 fall in the first 10 minutes; a run takes 2.5 ticks.
    sleep_until(&clock, "2026-01-01T00:10:00Z").await;
    let calls = rec.calls("slow");
    let stats = s.stats();
    let offset =
        chrono::Duration::from_std(interval_offset("slow", Duration::from_secs(60))).unwrap();
    let planned: Vec<_> = calls.iter().map(|c| c.planned).collect();
    let want: Vec<_> = [0, 3, 6, 9]
        .iter()
        .map(|k| utc("2026-01-01T00:00:00Z") + offset + chrono::Duration::minutes(*k))
        .collect();
    assert_eq!(planned, want);
    assert_eq!(stats.skipped_overlap, 6);
    for pair in calls.windows(2) {
        assert!(pair[0].ended.unwrap() <= pair[1].started, "{pair:?}");
    }
    assert_eq!(rec.max_running.load(Ordering::SeqCst), 1);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_limit_holds_and_waiting_counts_as_lag() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let names: Vec<String> = (0..10).map(|i| format!("j{i}")).collect();
    let durations: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 10)).collect();
    let rec = Recorder::with(&durations);
    let journeys: Vec<Journey> = names
        .iter()
        .map(|n| journey(n, cron("* * * * *", None), "v1"))
        .collect();
    let s = Scheduler::new(journeys, rec.clone(), Arc::new(clock), config(3, 30));
    // All ten are due at 00:01:00; three at a time, 10 s each.
    sleep_until(&clock, "2026-01-01T00:01:05Z").await;
    let stats = s.stats();
    assert_eq!((stats.in_flight, stats.waiting_for_permit), (3, 7));
    sleep_until(&clock, "2026-01-01T00:01:55Z").await;
    assert_eq!(rec.max_running.load(Ordering::SeqCst), 3);
    let calls = rec.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 10);
    let mut lags: Vec<u64> = calls.iter().map(|c| c.lag.as_secs()).collect();
    lags.sort();
    assert_eq!(lags, [0, 0, 0, 10, 10, 10, 20, 20, 20, 30]);
    assert!(
        calls
            .iter()
            .all(|c| c.planned == utc("2026-01-01T00:01:00Z"))
    );
    let summary = s.shutdown().await;
    assert_eq!(
        (summary.started, summary.finished, summary.skipped_overlap),
        (10, 10, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_runs_within_grace_and_abandons_the_rest() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let rec = Recorder::with(&[("quick", 20), ("long", 120), ("queued", 1)]);
    let journeys = [
        journey("quick", cron("* * * * *", None), "v1"),
        journey("long", cron("* * * * *", None), "v1"),
        journey("queued", cron("1 * * * * *", None), "v1"),
    ];
    // Two permits: at 00:01:00 `quick` and `long` take them; `queued`'s 00:01:01 run waits.
    let s = Scheduler::new(journeys, rec.clone(), Arc::new(clock), config(2, 60));
    sleep_until(&clock, "2026-01-01T00:01:02Z").await;
    let before = s.stats();
    assert_eq!(before.in_flight, 2);
    assert_eq!(before.waiting_for_permit, 1);
    let summary = s.shutdown().await;
    // The grace period ends at 00:02:02: `quick` finished at 00:01:20, `long` would end at
    // 00:03:00.
    assert_eq!(clock.now(), utc("2026-01-01T00:02:02Z"));
    assert_eq!(
        (
            summary.started,
            summary.finished,
            summary.abandoned,
            summary.cancelled_queued
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(summary.in_flight, 0);
    assert_eq!(rec.calls("quick").len(), 1);
    assert!(rec.calls("quick")[0].ended.is_some());
    assert_eq!(rec.calls("long").len(), 1);
    assert!(rec.calls("long")[0].ended.is_none());
    // Nothing started after shutdown began, although 00:02:00 passed during the grace period.
    let all = rec.calls.lock().unwrap().clone();
    assert!(all.iter().all(|c| c.started <= utc("2026-01-01T00:01:02Z")));
    // And nothing starts afterwards either.
    sleep_until(&clock, "2026-01-01T00:10:00Z").await;
    assert_eq!(rec.calls.lock().unwrap().len(), all.len());
    assert_eq!(s.shutdown().await, summary);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_running_returns_at_once() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:00Z"));
    let rec = Recorder::with(&[]);
    let s = Scheduler::new(
        [journey("a", cron("0 0 * * *", None), "v1")],
        rec.clone(),
        Arc::new(clock),
        config(2, 60),
    );
    let summary = s.shutdown().await;
    assert_eq!(clock.now(), utc("2026-01-01T00:00:00Z"));
    assert_eq!(summary, SchedulerStats::default());
}

#[tokio::test(start_paused = true)]
async fn replace_journeys_stops_removed_starts_added_and_restarts_changed() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let rec = Recorder::with(&[("b", 30)]);
    let s = Scheduler::new(
        [
            journey("a", cron("* * * * *", None), "v1"),
            journey("b", cron("* * * * *", None), "v1"),
            journey("d", cron("* * * * *", None), "v1"),
        ],
        rec.clone(),
        Arc::new(clock),
        config(4, 60),
    );
    sleep_until(&clock, "2026-01-01T00:01:10Z").await;
    assert_eq!(s.stats().in_flight, 1); // b, until 00:01:30
    let summary = s.replace_journeys([
        journey("a", cron("*/2 * * * *", None), "v2"),
        journey("c", cron("* * * * *", None), "v1"),
        journey("d", cron("* * * * *", None), "v1"),
    ]);
    assert_eq!(
        summary,
        ReloadSummary {
            added: vec!["c".into()],
            removed: vec!["b".into()],
            changed: vec!["a".into()],
            unchanged: vec!["d".into()],
        }
    );
    sleep_until(&clock, "2026-01-01T00:05:30Z").await;
    let planned = |name: &str| -> Vec<String> {
        rec.calls(name)
            .iter()
            .map(|c| c.planned.format("%H:%M").to_string())
            .collect()
    };
    assert_eq!(planned("a"), ["00:01", "00:02", "00:04"]);
    assert_eq!(planned("b"), ["00:01"]);
    assert!(
        rec.calls("b")[0].ended.is_some(),
        "b's in-flight run finished"
    );
    assert_eq!(planned("c"), ["00:02", "00:03", "00:04", "00:05"]);
    assert_eq!(planned("d"), ["00:01", "00:02", "00:03", "00:04", "00:05"]);
    let stats = s.stats();
    assert_eq!(stats.journeys, 3);
    assert_eq!((stats.started, stats.finished), (13, 13));
    s.shutdown().await;
}

/// At 00:03:10, `a` ran at 00:01 and 00:03 only: its 00:02 tick was skipped as an overlap.
/// Then shuts `s` down.
async fn assert_only_the_0002_tick_was_skipped(s: &Scheduler, clock: &TokioClock, rec: &Recorder) {
    sleep_until(clock, "2026-01-01T00:03:10Z").await;
    let planned: Vec<_> = rec.calls("a").iter().map(|c| c.planned).collect();
    assert_eq!(
        planned,
        [utc("2026-01-01T00:01:00Z"), utc("2026-01-01T00:03:00Z")]
    );
    assert_eq!(s.stats().skipped_overlap, 1);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_journey_does_not_overlap_the_run_of_its_previous_version() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let rec = Recorder::with(&[("a", 90)]);
    let s = Scheduler::new(
        [journey("a", cron("* * * * *", None), "v1")],
        rec.clone(),
        Arc::new(clock),
        config(4, 60),
    );
    sleep_until(&clock, "2026-01-01T00:01:10Z").await;
    s.replace_journeys([journey("a", cron("* * * * *", None), "v2")]);
    // v1's run lasts until 00:02:30: v2's 00:02 tick is skipped, 00:03 runs.
    assert_only_the_0002_tick_was_skipped(&s, &clock, &rec).await;
}

struct Panics;

impl RunExecutor for Panics {
    fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if run.planned.minute() == 1 {
                panic!("executor bug");
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_run_is_counted_and_the_journey_goes_on() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let s = Scheduler::new(
        [journey("a", cron("* * * * *", None), "v1")],
        Arc::new(Panics),
        Arc::new(clock),
        config(4, 60),
    );
    sleep_until(&clock, "2026-01-01T00:03:30Z").await;
    let summary = s.shutdown().await;
    assert_eq!(
        (
            summary.started,
            summary.finished,
            summary.panicked,
            summary.in_flight
        ),
        (3, 2, 1, 0)
    );
}

#[tokio::test]
async fn the_system_clock_sleeps_until_a_wall_clock_instant() {
    let clock = SystemClock;
    let t0 = std::time::Instant::now();
    clock
        .sleep_until(clock.now() - chrono::Duration::seconds(5))
        .await;
    assert!(t0.elapsed() < Duration::from_millis(20));
    let deadline = clock.now() + chrono::Duration::milliseconds(60);
    clock.sleep_until(deadline).await;
    assert!(clock.now() >= deadline);
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[derive(Default)]
struct Sink(Mutex<Vec<(PlannedRun, crate::run::RunResult)>>);

impl RunSink for Arc<Sink> {
    fn record(&self, run: PlannedRun, result: crate::run::RunResult) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.0.lock().unwrap().push((run, result)) })
    }
}

struct NoSecrets;

impl crate::journey::template::SecretSource for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

#[tokio::test(start_paused = true)]
async fn the_runner_executor_runs_the_journey_and_hands_the_result_to_the_sink() {
    use crate::journey::{Retries, Step, StepKind, WaitStep};
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let mut j = journey("waits", cron("* * * * *", None), "v1");
    j.steps.push(Step {
        name: "pause".into(),
        kind: StepKind::Wait(WaitStep {
            duration: Duration::from_millis(10),
        }),
        dependency: None,
        timeout: Duration::from_secs(5),
        retries: Retries::default(),
        conditions: Vec::new(),
        extract: Vec::new(),
        always_run: false,
        sensitive: false,
        anomaly: Default::default(),
        degraded_when: Vec::new(),
    });
    let sink = Arc::new(Sink::default());
    let executor = RunnerExecutor {
        runner: crate::runner::Runner {
            location: "test".into(),
            secrets: Arc::new(NoSecrets),
            overrides: BTreeMap::new(),
            telemetry: crate::telemetry::Telemetry::disabled(),
        },
        sink: sink.clone(),
    };
    let s = Scheduler::new([j], Arc::new(executor), Arc::new(clock), config(4, 60));
    sleep_until(&clock, "2026-01-01T00:02:30Z").await;
    let summary = s.shutdown().await;
    assert_eq!((summary.started, summary.finished), (2, 2));
    let recorded = sink.0.lock().unwrap();
    assert_eq!(recorded.len(), 2);
    let (run, result) = &recorded[0];
    assert_eq!(run.planned, utc("2026-01-01T00:01:00Z"));
    assert_eq!(result.journey, "waits");
    assert_eq!(result.outcome, crate::run::Outcome::Passed);
    assert_eq!(result.steps.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_journey_removed_and_added_back_does_not_overlap_its_last_run() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let rec = Recorder::with(&[("a", 90)]);
    let a = || journey("a", cron("* * * * *", None), "v1");
    let s = Scheduler::new([a()], rec.clone(), Arc::new(clock), config(4, 60));
    sleep_until(&clock, "2026-01-01T00:01:10Z").await;
    assert_eq!(s.replace_journeys(Vec::<Journey>::new()).removed, ["a"]);
    assert_eq!(s.replace_journeys([a()]).added, ["a"]);
    // The removed version's run lasts until 00:02:30: the 00:02 tick is skipped.
    assert_only_the_0002_tick_was_skipped(&s, &clock, &rec).await;
}

#[tokio::test(start_paused = true)]
async fn run_now_dispatches_at_once_without_overlapping() {
    let clock = TokioClock::starting_at(utc("2026-01-01T00:00:30Z"));
    let rec = Recorder::with(&[("j", 10)]);
    let hourly = Schedule::Every(Duration::from_secs(3600));
    let s = Scheduler::new(
        [journey("j", hourly, "v1")],
        rec.clone(),
        Arc::new(clock),
        config(4, 30),
    );
    assert_eq!(s.run_now("nope"), RunNow::Unknown);
    assert_eq!(s.run_now("j"), RunNow::Dispatched);
    assert_eq!(s.run_now("j"), RunNow::AlreadyRunning);
    sleep_until(&clock, "2026-01-01T00:00:35Z").await;
    assert_eq!(s.stats().in_flight, 1);
    assert_eq!(s.run_now("j"), RunNow::AlreadyRunning);
    sleep_until(&clock, "2026-01-01T00:00:41Z").await;
    assert_eq!(s.run_now("j"), RunNow::Dispatched);
    sleep_until(&clock, "2026-01-01T00:00:52Z").await;
    let calls = rec.calls("j");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].planned, utc("2026-01-01T00:00:30Z"));
    assert_eq!(calls[0].lag, Duration::ZERO);
    assert_eq!(calls[1].planned, utc("2026-01-01T00:00:41Z"));
    let summary = s.shutdown().await;
    assert_eq!(
        (summary.started, summary.finished, summary.skipped_overlap),
        (2, 2, 0)
    );
    assert_eq!(s.run_now("j"), RunNow::ShuttingDown);
}
