//! The feedback digest's figures over 28 simulated days in a real store: every figure is
//! checked against a value computed here, independently, from the runs the test generated.
//!
//! The shop team owns `checkout` (login is flaky, search regresses by 60 % in the second
//! fortnight, the payments dependency fails for two hours, an export step never runs),
//! `catalog` (healthy, a `maps` dependency) and `archive` (never ran); another team's journey
//! must not appear.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use chrono::{DateTime, Utc};

use waymark::alert::{
    Cause, Incident, IncidentState, Links, Notification, NotificationKind, Severity,
};
use waymark::alert::{IncidentChange, ResolvedBy};
use waymark::digest::model::Trend;
use waymark::journey::Journey;
use waymark::run::testkit::{journey, run, step};
use waymark::run::{Outcome, StepResult, StepStatus};
use waymark::step::{FailureClass, Timings};
use waymark::store::digest::DigestDelivery;
use waymark::store::{RunRecord, Store};

use waymark::config::Config;
use waymark::config::alerting::AlertConfig;
use waymark::digest::render::{Images, LinkBase, render};
use waymark::digest::{DigestConfig, DigestCycle};

use crate::alerting::peers::{Receiver, SmtpSink};
use crate::store::Db;
use crate::support::serve::{Serve, db_url, eventually, setup};

/// Day 0: 2026-10-27, 00:00 UTC.
const T0: i64 = 1_793_059_200;
const RUN_EVERY_MIN: i64 = 15;
const DAYS: i64 = 28;

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + minutes * 60, 0).unwrap()
}

fn day(d: i64, h: i64, m: i64) -> i64 {
    d * 1440 + h * 60 + m
}

fn journeys() -> Vec<Journey> {
    journey_files().iter().map(|yaml| journey(yaml)).collect()
}

/// The journey files: shop-team's three and another team's.
fn journey_files() -> Vec<String> {
    let step = |name: &str, extra: &str| {
        format!("  - name: {name}\n{extra}    http: {{ url: \"http://127.0.0.1:9/{name}\" }}\n")
    };
    vec![
        format!(
            "name: checkout\nowner: shop-team\nslo: 99.5%\nsteps:\n{}{}{}{}",
            step("login", "    retries: 1\n"),
            step("search", ""),
            step("pay", "    dependency: payments\n"),
            step("export", "    always_run: true\n"),
        ),
        format!(
            "name: catalog\nowner: shop-team\nsteps:\n{}{}",
            step("browse", ""),
            step("geo", "    dependency: maps\n"),
        ),
        format!(
            "name: archive\nowner: shop-team\nsteps:\n{}",
            step("list", "")
        ),
        format!(
            "name: billing\nowner: other-team\nsteps:\n{}",
            step("invoice", "")
        ),
    ]
}

/// What the generator decided for one step of one run.
struct Gen {
    status: StepStatus,
    ms: f64,
    attempts: u32,
    failure: Option<(FailureClass, String)>,
}

fn step_result(name: &str, dependency: Option<&str>, g: &Gen) -> StepResult {
    let ran = g.status != StepStatus::Skipped;
    let d = |ms: f64| ran.then(|| Duration::from_secs_f64(ms / 1000.0));
    let mut s = step(name).attempts(g.attempts).timings(Timings {
        dns: d(1.0),
        connect: d(2.0),
        ttfb: d(g.ms - 3.0),
        total: d(g.ms),
        ..Timings::default()
    });
    if let Some(dependency) = dependency {
        s = s.dependency(dependency);
    }
    if let Some((class, message)) = &g.failure {
        s = s.failure(*class, message);
    }
    if !ran {
        s = s.skip_reason("not run");
    }
    s.status(g.status).build()
}

fn record(journey: &str, minute: i64, steps: Vec<StepResult>) -> RunRecord {
    let run_id = uuid::Uuid::new_v4();
    let result = run(journey)
        .id(run_id)
        .location("eu-west")
        .at(t(minute))
        .finished_at(t(minute))
        .trace_id(&run_id.simple().to_string())
        .steps(steps);
    RunRecord {
        result: result.build(),
        planned_at: t(minute),
        scheduling_lag: Duration::ZERO,
        journey_sha256: String::new(),
    }
}

/// Deterministic jitter in [0.9, 1.1).
fn jitter(i: i64, salt: i64) -> f64 {
    0.9 + ((i * 7919 + salt * 104_729) % 1000) as f64 / 5000.0
}

fn checkout_run(i: i64) -> RunRecord {
    let minute = i * RUN_EVERY_MIN;
    let current = minute >= day(14, 0, 0);
    let pass = |ms: f64| Gen {
        status: StepStatus::Passed,
        ms,
        attempts: 1,
        failure: None,
    };
    let mut login = pass(20.0 * jitter(i, 1));
    if i % 20 == 0 {
        login.attempts = 2;
    }
    let search = pass(if current { 160.0 } else { 100.0 } * jitter(i, 2));
    // Payments fail 10:00–12:00 on day 20 (503s), and 10:00–11:00 on day 5 (timeouts).
    let pay = if (day(20, 10, 0)..day(20, 12, 0)).contains(&minute) {
        Gen {
            status: StepStatus::Failed,
            ms: 40.0,
            attempts: 1,
            failure: Some((
                FailureClass::HttpStatus,
                format!("HTTP 503 after {} ms", 30 + i % 17),
            )),
        }
    } else if (day(5, 10, 0)..day(5, 11, 0)).contains(&minute) {
        Gen {
            status: StepStatus::Failed,
            ms: 5000.0,
            attempts: 1,
            failure: Some((
                FailureClass::Timeout,
                "step did not finish before its deadline".into(),
            )),
        }
    } else {
        pass(50.0 * jitter(i, 3))
    };
    let export = Gen {
        status: StepStatus::Skipped,
        ms: 0.0,
        attempts: 0,
        failure: None,
    };
    record(
        "checkout",
        minute,
        vec![
            step_result("login", None, &login),
            step_result("search", None, &search),
            step_result("pay", Some("payments"), &pay),
            step_result("export", None, &export),
        ],
    )
}

fn catalog_run(i: i64) -> RunRecord {
    let pass = |ms: f64| Gen {
        status: StepStatus::Passed,
        ms,
        attempts: 1,
        failure: None,
    };
    record(
        "catalog",
        i * RUN_EVERY_MIN,
        vec![
            step_result("browse", None, &pass(30.0 * jitter(i, 4))),
            step_result("geo", Some("maps"), &pass(12.0 * jitter(i, 5))),
        ],
    )
}

fn billing_run(i: i64) -> RunRecord {
    let fail = Gen {
        status: StepStatus::Failed,
        ms: 10.0,
        attempts: 1,
        failure: Some((FailureClass::Connect, "refused".into())),
    };
    record(
        "billing",
        i * RUN_EVERY_MIN,
        vec![step_result("invoice", None, &fail)],
    )
}

fn incident(
    journey: &str,
    severity: Severity,
    started: i64,
    opened: i64,
    acked: Option<i64>,
    resolved: i64,
    dependency: Option<&str>,
) -> Incident {
    Incident {
        id: 0,
        journey: journey.into(),
        severity,
        state: IncidentState::Resolved,
        dedup_key: format!("waymark-{journey}-{started}"),
        started_at: t(started),
        opened_at: t(opened),
        acknowledged_at: acked.map(t),
        acknowledged_by: acked.map(|_| "ada".to_string()),
        resolved_at: Some(t(resolved)),
        resolved_by: Some(ResolvedBy::Auto),
        reopened: 0,
        flapping: false,
        cause: Cause {
            step: Some("pay".into()),
            dependency: dependency.map(str::to_string),
            ..Cause::default()
        },
        channels: vec!["pager".into()],
        owner: Some("shop-team".into()),
        runbook: None,
        tags: vec![],
    }
}

async fn save(store: &Store, incident: Incident, kinds: &[NotificationKind]) {
    let notifications = kinds
        .iter()
        .map(|k| Notification {
            id: uuid::Uuid::new_v4(),
            channel: "pager".into(),
            kind: *k,
            created_at: incident.opened_at,
            incident: incident.clone(),
            links: Links::default(),
        })
        .collect();
    let change = IncidentChange {
        incident,
        events: vec![],
        notifications,
        muted: vec![],
    };
    store.incidents().save_incident(&change).await.unwrap();
}

/// The exact q-quantile (nearest rank) of `values`.
fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 0.02 * expected.abs(),
        "{what}: {actual} vs {expected}"
    );
}

fn step_ms(records: &[RunRecord], step: &str, from: i64, to: i64) -> Vec<f64> {
    records
        .iter()
        .filter(|r| (t(from)..t(to)).contains(&r.result.started_at))
        .flat_map(|r| &r.result.steps)
        .filter(|s| s.name == step && s.status != StepStatus::Skipped)
        .filter_map(|s| s.timings.total.map(|d| d.as_secs_f64() * 1e3))
        .collect()
}

crate::store::suite!(
    a_digest_of_28_simulated_days_matches_figures_computed_independently,
    digests_are_stored_once_per_owner_and_period_with_one_outcome_per_channel,
);

async fn digests_are_stored_once_per_owner_and_period_with_one_outcome_per_channel(db: Db) {
    let store = db.store;
    let body = |n: u32| serde_json::json!({ "summary": { "runs": n } });
    let (a, new) = store
        .digests()
        .save_digest("shop", t(0), t(60), t(61), &body(1))
        .await
        .unwrap();
    assert!(new);
    // The same owner and period again (a second tick, another node): the first one stays.
    let (again, new) = store
        .digests()
        .save_digest("shop", t(0), t(60), t(62), &body(2))
        .await
        .unwrap();
    assert_eq!((again, new), (a, false));
    let (b, _) = store
        .digests()
        .save_digest("shop", t(60), t(120), t(121), &body(3))
        .await
        .unwrap();
    let (c, _) = store
        .digests()
        .save_digest("ops", t(60), t(120), t(121), &body(4))
        .await
        .unwrap();
    assert!(a != b && b != c);
    let stored = store.digests().digest(a).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.meta.owner.as_str(),
            stored.meta.from,
            stored.meta.to,
            stored.meta.created_at
        ),
        ("shop", t(0), t(60), t(61))
    );
    assert_eq!(stored.body, body(1));
    assert_eq!(store.digests().digest(9999).await.unwrap(), None);

    let ids = |ds: Vec<waymark::store::digest::StoredDigest>| {
        ds.iter().map(|d| d.meta.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.digests().digests(None, 0).await.unwrap()),
        [c, b, a],
        "newest period first"
    );
    assert_eq!(
        ids(store.digests().digests(Some("shop"), 1).await.unwrap()),
        [b]
    );
    assert_eq!(
        ids(store.digests().unsent_digests().await.unwrap()),
        [a, c, b],
        "oldest period first"
    );

    let outcome = |channel: &str, status: &str, minute: i64| DigestDelivery {
        channel: channel.into(),
        status: status.into(),
        at: t(minute),
        error: (status == "failed").then(|| "HTTP 404: no_service".to_string()),
    };
    store
        .digests()
        .record_digest_delivery(a, &outcome("mail", "delivered", 63))
        .await
        .unwrap();
    store
        .digests()
        .record_digest_delivery(a, &outcome("chat", "failed", 64))
        .await
        .unwrap();
    // A late second outcome for a channel does not replace the first.
    store
        .digests()
        .record_digest_delivery(a, &outcome("mail", "failed", 65))
        .await
        .unwrap();
    assert_eq!(
        store.digests().digest_deliveries(a).await.unwrap(),
        [
            outcome("chat", "failed", 64),
            outcome("mail", "delivered", 63)
        ]
    );
    assert!(
        store
            .digests()
            .digest_deliveries(b)
            .await
            .unwrap()
            .is_empty()
    );

    store.digests().mark_digest_sent(a, t(66)).await.unwrap();
    store.digests().mark_digest_sent(a, t(70)).await.unwrap();
    assert_eq!(
        store
            .digests()
            .digest(a)
            .await
            .unwrap()
            .unwrap()
            .meta
            .sent_at,
        Some(t(66)),
        "the first time is kept"
    );
    assert_eq!(ids(store.digests().unsent_digests().await.unwrap()), [c, b]);
}

/// The generated runs, as stored by [`seed`].
struct Seeded {
    checkout: Vec<RunRecord>,
    catalog: Vec<RunRecord>,
}

/// 28 days of runs of every journey, and the incidents: payments (day 20, acknowledged), a
/// catalog degradation (day 25), one of the previous period (resolved before it), and the
/// other team's.
async fn seed(store: &Store) -> Seeded {
    let n = DAYS * 1440 / RUN_EVERY_MIN;
    let checkout: Vec<RunRecord> = (0..n).map(checkout_run).collect();
    let catalog: Vec<RunRecord> = (0..n).map(catalog_run).collect();
    let billing: Vec<RunRecord> = (0..n).map(billing_run).collect();
    for batch in [&checkout, &catalog, &billing] {
        for chunk in batch.chunks(500) {
            store
                .runs()
                .record_runs(chunk, chrono::Utc::now())
                .await
                .unwrap();
        }
    }
    save(
        store,
        incident(
            "checkout",
            Severity::Failure,
            day(20, 10, 0),
            day(20, 10, 30),
            Some(day(20, 10, 40)),
            day(20, 12, 15),
            Some("payments"),
        ),
        &[NotificationKind::Triggered, NotificationKind::Resolved],
    )
    .await;
    save(
        store,
        incident(
            "catalog",
            Severity::Degraded,
            day(25, 8, 0),
            day(25, 8, 15),
            None,
            day(25, 9, 0),
            None,
        ),
        &[NotificationKind::Triggered],
    )
    .await;
    save(
        store,
        incident(
            "checkout",
            Severity::Failure,
            day(5, 10, 0),
            day(5, 10, 20),
            None,
            day(5, 11, 10),
            Some("payments"),
        ),
        &[],
    )
    .await;
    save(
        store,
        incident(
            "billing",
            Severity::Failure,
            day(15, 0, 0),
            day(15, 0, 30),
            None,
            day(15, 1, 0),
            None,
        ),
        &[],
    )
    .await;
    Seeded { checkout, catalog }
}

async fn a_digest_of_28_simulated_days_matches_figures_computed_independently(db: Db) {
    let store = db.store;
    let Seeded { checkout, catalog } = seed(&store).await;
    let all = journeys();
    let refs: Vec<&Journey> = all.iter().collect();
    let (from, to) = (day(14, 0, 0), day(28, 0, 0));
    let d = waymark::digest::compute(&store, "shop-team", &refs, t(from), t(to), t(to + 60))
        .await
        .unwrap();

    assert_eq!((d.from, d.to, d.previous_from), (t(from), t(to), t(0)));
    let names: Vec<&str> = d.journeys.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["checkout", "catalog", "archive"],
        "only the owner's journeys"
    );

    // Availability, previous period, error budget.
    let in_period = |r: &&RunRecord, a: i64, b: i64| (t(a)..t(b)).contains(&r.result.started_at);
    let runs_now: Vec<&RunRecord> = checkout.iter().filter(|r| in_period(r, from, to)).collect();
    let failed_now = runs_now
        .iter()
        .filter(|r| r.result.outcome == Outcome::Failed)
        .count() as u64;
    let runs_before: Vec<&RunRecord> = checkout.iter().filter(|r| in_period(r, 0, from)).collect();
    let failed_before = runs_before
        .iter()
        .filter(|r| r.result.outcome == Outcome::Failed)
        .count() as u64;
    assert_eq!(
        (failed_now, failed_before),
        (8, 4),
        "the generator's outages"
    );
    let c = &d.journeys[0];
    assert_eq!((c.runs, c.failed), (runs_now.len() as u64, failed_now));
    let availability = 100.0 * (c.runs - failed_now) as f64 / c.runs as f64;
    assert!((c.availability.unwrap() - availability).abs() < 1e-9);
    let previous =
        100.0 * (runs_before.len() as u64 - failed_before) as f64 / runs_before.len() as f64;
    assert!((c.previous_availability.unwrap() - previous).abs() < 1e-9);
    let budget = (failed_now as f64 / c.runs as f64) / 0.005;
    assert!(
        (c.error_budget_used.unwrap() - budget).abs() < 1e-9,
        "{:?} vs {budget}",
        c.error_budget_used
    );

    // Latency per step, this period and the previous one; the search regression.
    for step in ["login", "search", "pay"] {
        let s = c.steps.iter().find(|s| s.name == step).unwrap();
        let now = s.latency.as_ref().unwrap();
        let before = s.previous.as_ref().unwrap();
        for (q, got_now, got_before) in [
            (0.5, now.p50, before.p50),
            (0.95, now.p95, before.p95),
            (0.99, now.p99, before.p99),
        ] {
            close(
                got_now,
                exact(&mut step_ms(&checkout, step, from, to), q),
                &format!("{step} p{q} now"),
            );
            close(
                got_before,
                exact(&mut step_ms(&checkout, step, 0, from), q),
                &format!("{step} p{q} before"),
            );
        }
    }
    let search = c.steps.iter().find(|s| s.name == "search").unwrap();
    assert_eq!(search.trend, Trend::Regression);
    // Its example run: the quickest at or above its p95 (less the sketch's 2 %).
    let sample = search.sample.as_ref().unwrap();
    let floor = search.latency.as_ref().unwrap().p95 * 0.98;
    let expected = step_ms(&checkout, "search", from, to)
        .into_iter()
        .filter(|ms| *ms >= floor)
        .fold(f64::INFINITY, f64::min);
    assert!(
        (sample.ms - expected).abs() < 1e-6,
        "{sample:?} vs {expected}"
    );
    let run = checkout
        .iter()
        .find(|r| r.result.run_id == sample.run_id)
        .unwrap();
    assert_eq!(run.result.trace_id, sample.trace_id);
    assert!((t(from)..t(to)).contains(&run.result.started_at));
    let shift = search.shift.unwrap();
    assert!((shift.change - 0.6).abs() < 0.05, "{shift:?}");
    assert!(
        c.steps
            .iter()
            .filter(|s| s.name != "search")
            .all(|s| s.trend == Trend::None)
    );
    // Where search's time goes: DNS 1 ms, connect 2 ms, TTFB the rest.
    let mut search_now = step_ms(&checkout, "search", from, to);
    let mean_total = search_now.iter().sum::<f64>() / search_now.len() as f64;
    close(
        search.phases.total.unwrap(),
        mean_total,
        "search total mean",
    );
    close(
        search.phases.ttfb.unwrap(),
        mean_total - 3.0,
        "search ttfb mean",
    );
    close(search.phases.dns.unwrap(), 1.0, "search dns mean");
    assert_eq!(search.phases.tls, None);
    search_now.clear();

    // Failure modes: one new signature this period (503s), the timeouts were last period's.
    assert_eq!(c.failure_modes.len(), 1, "{:?}", c.failure_modes);
    let m = &c.failure_modes[0];
    let failing: Vec<&&RunRecord> = runs_now
        .iter()
        .filter(|r| r.result.outcome == Outcome::Failed)
        .collect();
    assert_eq!(
        (m.step.as_str(), m.class.as_str(), m.signature.as_str()),
        ("pay", "http_status", "HTTP <n> after <n> ms")
    );
    assert_eq!((m.count, m.new), (8, true));
    assert_eq!(
        (m.first, m.last),
        (failing[0].result.started_at, failing[7].result.started_at)
    );
    assert_eq!(m.sample_run_id, failing[7].result.run_id);

    // Flaky: login passed after a retry in every 20th run.
    let retried = runs_now
        .iter()
        .filter(|r| r.result.steps[0].attempts > 1)
        .count() as u64;
    assert_eq!(c.flaky.len(), 1);
    assert_eq!(
        (
            c.flaky[0].step.as_str(),
            c.flaky[0].passed_after_retry,
            c.flaky[0].ran
        ),
        ("login", retried, c.runs)
    );
    assert!((c.flaky[0].rate - 100.0 * retried as f64 / c.runs as f64).abs() < 1e-9);

    // The chart: 6-hour buckets over the fortnight, the previous fortnight's IQR as the band.
    assert_eq!(c.chart.p50.len(), 14 * 4);
    assert_eq!(c.chart.p50[0].0, t(from));
    // Every bucket's median and p95 against the runs that started in it.
    for ((start, p50), (_, p95)) in c.chart.p50.iter().zip(&c.chart.p95) {
        let end = *start + chrono::Duration::hours(6);
        let mut totals: Vec<f64> = runs_now
            .iter()
            .filter(|r| (*start..end).contains(&r.result.started_at))
            .map(|r| r.result.duration_ms)
            .collect();
        close(
            *p50,
            exact(&mut totals, 0.5),
            &format!("chart p50 at {start}"),
        );
        close(
            *p95,
            exact(&mut totals, 0.95),
            &format!("chart p95 at {start}"),
        );
    }
    let mut before_totals: Vec<f64> = runs_before.iter().map(|r| r.result.duration_ms).collect();
    let band = c.chart.band.unwrap();
    close(band.0, exact(&mut before_totals, 0.25), "band low");
    close(band.1, exact(&mut before_totals, 0.75), "band high");

    // Incidents of the period with their times; MTTD and MTTR.
    let ids: Vec<(&str, f64, Option<f64>, Option<f64>)> = d
        .incidents
        .iter()
        .map(|i| {
            (
                i.journey.as_str(),
                i.time_to_detect_s,
                i.time_to_acknowledge_s,
                i.time_to_resolve_s,
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("checkout", 1800.0, Some(600.0), Some(8100.0)),
            ("catalog", 900.0, None, Some(3600.0))
        ]
    );
    assert_eq!(
        d.incidents[0].notifications,
        ["pager: triggered (pending)", "pager: resolved (pending)"]
    );
    assert_eq!(d.summary.mttd_s, Some(1350.0));
    assert_eq!(d.summary.mttr_s, Some(5850.0));

    // Dependencies: payments failed 8 times and had an incident; maps is healthy.
    let deps: Vec<(&str, u64, u64, usize)> = d
        .dependencies
        .iter()
        .map(|s| (s.label.as_str(), s.ran, s.failed, s.incidents))
        .collect();
    assert_eq!(deps, [("maps", c.runs, 0, 0), ("payments", c.runs, 8, 1)]);
    close(
        d.dependencies[1].p95_ms.unwrap(),
        exact(&mut step_ms(&checkout, "pay", from, to), 0.95),
        "payments p95",
    );
    close(
        d.dependencies[0].p95_ms.unwrap(),
        exact(&mut step_ms(&catalog, "geo", from, to), 0.95),
        "maps p95",
    );

    // Coverage: archive never ran; export was always skipped.
    let gaps: Vec<(&str, Option<&str>, &str)> = d
        .coverage
        .iter()
        .map(|g| (g.journey.as_str(), g.step.as_deref(), g.what.as_str()))
        .collect();
    assert_eq!(
        gaps,
        [
            ("checkout", Some("export"), "always skipped"),
            ("archive", None, "never ran")
        ]
    );

    // The summary adds it up.
    let all_runs = 2 * c.runs;
    assert_eq!(
        (d.summary.journeys, d.summary.runs, d.summary.incidents),
        (3, all_runs, 2)
    );
    assert!(
        (d.summary.availability.unwrap() - 100.0 * (all_runs - 8) as f64 / all_runs as f64).abs()
            < 1e-9
    );
    assert_eq!(
        (
            d.summary.regressions,
            d.summary.improvements,
            d.summary.new_failure_modes,
            d.summary.flaky_steps
        ),
        (1, 0, 1, 1)
    );
}

/// A slice of the Slack webhook URL: the channel's credential, which must appear nowhere else.
const SLACK_SECRET: &str = "T0DIGEST/B0DIGEST/hooksecret0digest";

/// `[alerting]` + `[digest]` sending shop-team's digest by email (to `smtp_port`) and to Slack
/// (`slack_base`), fortnights counted from day 0.
fn config(smtp_port: u16, slack_base: &str) -> (AlertConfig, DigestConfig) {
    let text = format!(
        "[alerting]\ndashboard_url = \"https://waymark.example.com\"\n\
         trace_url = \"https://traces.example.com/trace/{{trace_id}}\"\n\
         [alerting.channels.mail]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp_port}\n\
         tls = \"none\"\nfrom = \"Waymark <waymark@example.com>\"\nto = [\"shop@example.com\"]\n\
         [alerting.channels.chat]\ntype = \"slack\"\nwebhook_url = \"{slack_base}/slack/{SLACK_SECRET}\"\n\
         [digest]\nstart = \"2026-10-27\"\nsend_at = \"00:00:00\"\n\
         [digest.owners.shop-team]\nchannels = [\"mail\", \"chat\"]\n"
    );
    let mut c = Config::parse(&text).unwrap();
    c.alerting.validate(|_| None).unwrap();
    c.digest.validate(&c.alerting.channels).unwrap();
    (c.alerting, c.digest)
}

fn arcs() -> Vec<Arc<Journey>> {
    journeys().into_iter().map(Arc::new).collect()
}

/// Every `cid:` the HTML references has an inline PNG part with that Content-ID.
fn assert_images_resolve(mail: &Value) {
    let parts = mail["parts"].as_array().unwrap();
    let html = parts
        .iter()
        .find(|p| p["content_type"] == "text/html")
        .unwrap()["content"]
        .as_str()
        .unwrap();
    let cids: Vec<&str> = html
        .split("src=\"cid:")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(cids.len(), 2, "one chart per journey that ran");
    for cid in cids {
        let part = parts
            .iter()
            .find(|p| p["content_id"].as_str() == Some(&format!("<{cid}>")))
            .unwrap_or_else(|| panic!("no part for cid:{cid}"));
        assert_eq!(part["content_type"], "image/png");
        assert_eq!(part["disposition"], "inline");
        let png = base64::engine::general_purpose::STANDARD
            .decode(part["content"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "cid:{cid} is a PNG");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_is_made_once_sent_by_email_and_slack_and_resumed_after_a_failure() {
    let db = Db::sqlite().await;
    seed(&db.store).await;
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(&dir.path().join("mail"));
    let slack = Receiver::start().await;
    let (alerting, digest_config) = config(smtp.port, &slack.base);
    let slack_path = format!("/slack/{SLACK_SECRET}");
    // Slack is down for the first attempt: the email goes, the Slack summary waits.
    slack.script(&slack_path, &[(503, None)]);
    let cycle = DigestCycle::new(
        digest_config.clone(),
        alerting.digest_delivery(),
        db.store.clone(),
    );
    let now = t(day(28, 0, 1));
    let first = cycle.tick(&arcs(), now).await.unwrap();
    // Both owners get a digest stored; only shop-team's has channels.
    assert_eq!(first.created.len(), 2, "{first:?}");
    let owners = db.store.digests().digests(None, 0).await.unwrap();
    let id = owners
        .iter()
        .find(|d| d.meta.owner == "shop-team")
        .unwrap()
        .meta
        .id;
    let other = owners
        .iter()
        .find(|d| d.meta.owner == "other-team")
        .unwrap();
    assert_eq!(
        other.meta.sent_at,
        Some(t(day(28, 0, 1))),
        "nothing to send: done at once"
    );
    assert_eq!(first.delivered, [(id, "mail".to_string())]);
    assert_eq!(first.pending, 1);
    let stored = db.store.digests().digest(id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.meta.owner.as_str(),
            stored.meta.from,
            stored.meta.to,
            stored.meta.sent_at
        ),
        ("shop-team", t(day(14, 0, 0)), t(day(28, 0, 0)), None)
    );

    // A restart (a new cycle over the same store): nothing is made again, the email is not
    // resent, Slack gets its summary, and the digest is done.
    let cycle = DigestCycle::new(digest_config, alerting.digest_delivery(), db.store.clone());
    let second = cycle
        .tick(&arcs(), now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((second.created.len(), second.pending), (0, 0), "{second:?}");
    assert_eq!(second.delivered, [(id, "chat".to_string())]);
    let third = cycle
        .tick(&arcs(), now + chrono::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(third, Default::default());
    let stored = db.store.digests().digest(id).await.unwrap().unwrap();
    assert_eq!(
        stored.meta.sent_at,
        Some(now + chrono::Duration::minutes(1))
    );
    let deliveries: Vec<(String, String)> = db
        .store
        .digests()
        .digest_deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.channel, d.status))
        .collect();
    assert_eq!(
        deliveries,
        [
            ("chat".into(), "delivered".into()),
            ("mail".into(), "delivered".into())
        ]
    );

    // The email, as the SMTP server parsed it.
    let mails = eventually_messages(&smtp, 1).await;
    assert_eq!(mails.len(), 1, "sent once");
    let mail = &mails[0];
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["shop@example.com"]));
    assert_eq!(
        mail["headers"]["Message-ID"],
        format!("<digest-{id}@waymark>")
    );
    assert!(
        mail["headers"]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("Waymark digest for shop-team, 2026-11-10 to 2026-11-24"),
        "{}",
        mail["headers"]["Subject"]
    );
    assert_eq!(
        mail["structure"],
        "multipart/alternative(text/plain, multipart/related(text/html, image/png, image/png))"
    );
    assert_images_resolve(mail);
    let text = mail["parts"][0]["content"].as_str().unwrap();
    for needle in [
        "== checkout ==",
        "search: p50",
        "regression",
        "failure [NEW]: pay http_status: HTTP <n> after <n> ms ×8",
        "flaky: login",
        "== Incidents ==",
        "payments: availability",
        "archive (whole journey): never ran",
        "https://waymark.example.com/app/journeys/checkout",
    ] {
        assert!(text.contains(needle), "text part lacks `{needle}`:\n{text}");
    }

    // The Slack summary, checked against Block Kit's documented shapes and limits.
    let posts = slack.received(&slack_path);
    assert_eq!(
        posts.iter().map(|p| p.answered).collect::<Vec<_>>(),
        [503, 200]
    );
    let message = posts[1].json();
    assert_eq!(posts[1].headers["content-type"], "application/json");
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("Waymark digest for shop-team")
    );
    let blocks = message["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "section", "actions"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    for b in &blocks[1..3] {
        assert_eq!(b["text"]["type"], "mrkdwn");
        assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
    }
    let attention = blocks[2]["text"]["text"].as_str().unwrap();
    let change = stored.body["journeys"][0]["steps"][1]["shift"]["change"]
        .as_f64()
        .unwrap();
    assert!((change - 0.6).abs() < 0.05, "{change}");
    let slower = format!("`checkout / search` slower by {:.0}%", change * 100.0);
    assert!(attention.contains(&slower), "{attention}");
    assert!(
        attention.contains("new failure in `checkout / pay`: HTTP &lt;n&gt; after &lt;n&gt; ms ×8"),
        "{attention}"
    );
    assert!(
        attention.contains("`checkout` below its SLO"),
        "{attention}"
    );
    let button = &blocks[3]["elements"][0];
    assert_eq!(
        (button["type"].as_str(), button["url"].as_str()),
        (
            Some("button"),
            Some(format!("https://waymark.example.com/digests/{id}").as_str())
        )
    );

    // The webhook URL (Slack's credential) is nowhere but in the request line.
    let everywhere = [
        stored.body.to_string(),
        mail["raw"].to_string(),
        posts[1].json().to_string(),
    ];
    for text in everywhere {
        assert!(
            !text.contains("hooksecret0digest"),
            "a credential leaked: {text:.200}"
        );
    }
}

async fn eventually_messages(smtp: &SmtpSink, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let m = smtp.messages();
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    smtp.messages()
}

/// The digest's HTML, rendered by a real browser: headless Chromium (Debian `chromium`,
/// installed by scripts/test.sh) loads the preview file and screenshots it. The screenshot is
/// kept in `target/test-artifacts/digest.png`, beside the HTML and the plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_digest_html() {
    let db = Db::sqlite().await;
    seed(&db.store).await;
    let all = journeys();
    let refs: Vec<&Journey> = all.iter().collect();
    let d = waymark::digest::compute(
        &db.store,
        "shop-team",
        &refs,
        t(day(14, 0, 0)),
        t(day(28, 0, 0)),
        t(day(28, 0, 1)),
    )
    .await
    .unwrap();
    let rendered = render(
        &d,
        &LinkBase {
            dashboard_url: Some("https://waymark.example.com".into()),
            trace_url: None,
        },
        Images::DataUri,
    );
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let html = artifacts.join("digest.html");
    std::fs::write(&html, &rendered.html).unwrap();
    std::fs::write(artifacts.join("digest.txt"), &rendered.text).unwrap();
    let png = artifacts.join("digest.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=800,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs (Debian `chromium`, installed by scripts/test.sh)");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shot = std::fs::read(&png).unwrap();
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (w, h) = (
        u32::from_be_bytes(shot[16..20].try_into().unwrap()),
        u32::from_be_bytes(shot[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (800, 4000));
    // The page is not blank: a blank 800×4000 PNG compresses to a few kilobytes.
    assert!(
        shot.len() > 60_000,
        "suspiciously small screenshot: {} bytes",
        shot.len()
    );
}

/// `waymark digest` reads the configured database and journeys, writes the preview and prints
/// the figures; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_previews_a_digest_without_storing_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = Store::connect(&url).await.unwrap();
    seed(&store).await;
    let expected = {
        let all = journeys();
        let refs: Vec<&Journey> = all.iter().collect();
        waymark::digest::compute(
            &store,
            "shop-team",
            &refs,
            t(day(14, 0, 0)),
            t(day(28, 0, 0)),
            t(0),
        )
        .await
        .unwrap()
    };
    store.close().await;
    let journeys_dir = dir.path().join("journeys");
    std::fs::create_dir(&journeys_dir).unwrap();
    for (i, yaml) in journey_files().iter().enumerate() {
        std::fs::write(journeys_dir.join(format!("{i}.yaml")), yaml).unwrap();
    }
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
                .args(&args)
                .current_dir(dir)
                .env("WAYMARK_DATABASE_URL", url)
                .output()
                .unwrap()
        })
    };
    let preview = dir.path().join("preview.html");
    let args = |owner: &str, extra: &[&str]| -> Vec<String> {
        [
            "digest",
            "--owner",
            owner,
            "--from",
            "2026-11-10",
            "--to",
            "2026-11-24",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let out = run(args(
        "shop-team",
        &["--format", "json", "--preview", preview.to_str().unwrap()],
    ))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = serde_json::to_value(&expected).unwrap();
    for field in [
        "journeys",
        "summary",
        "incidents",
        "dependencies",
        "coverage",
        "from",
        "to",
    ] {
        assert_close(&printed[field], &expected[field], field);
    }
    let html = std::fs::read_to_string(&preview).unwrap();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);

    let out = run(args("shop-team", &[])).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Waymark digest for shop-team, 2026-11-10 to 2026-11-24"),
        "{text}"
    );
    assert!(text.contains("== checkout =="), "{text}");

    let out = run(args("nobody", &[])).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has `owner: nobody`"));
    let store = Store::connect(&url).await.unwrap();
    assert!(
        store.digests().digests(None, 0).await.unwrap().is_empty(),
        "a preview stores nothing"
    );
}

/// The real `waymark serve` makes the digest of the period that just ended at start, tells the
/// `log` channel, and serves it through the API (and the dashboard's pages, after a login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_makes_and_sends_the_digest_of_the_last_period() {
    let dir = setup(&[("checkout.yaml", journey_files()[0].clone())]);
    std::fs::write(
        dir.path().join("waymark.toml"),
        "[digest]\nevery = \"1h\"\nstart = \"2026-01-01\"\nsend_at = \"00:00:00\"\nchannels = [\"log\"]\n",
    )
    .unwrap();
    // Runs in the previous hour and this one, so the last complete hour has runs even if the
    // hour turns while the test starts.
    let now = Utc::now();
    let hour = DateTime::from_timestamp(now.timestamp() / 3600 * 3600, 0).unwrap();
    let store = Store::connect(&db_url(dir.path())).await.unwrap();
    let mut at = hour - chrono::Duration::hours(1);
    let mut runs = Vec::new();
    for i in 0.. {
        if at >= now {
            break;
        }
        let mut r = checkout_run(i);
        r.result.started_at = at;
        r.result.finished_at = at;
        r.planned_at = at;
        runs.push(r);
        at += chrono::Duration::minutes(5);
    }
    store
        .runs()
        .record_runs(&runs, chrono::Utc::now())
        .await
        .unwrap();
    store.close().await;

    let serve = Serve::start(dir.path(), 0);
    let listed = eventually("a sent digest", &serve, Duration::from_secs(20), || async {
        let v = serve.json("/api/v1/digests").await;
        let d = v["digests"].get(0)?.clone();
        (!d["sent_at"].is_null()).then_some(d)
    })
    .await;
    assert_eq!(listed["owner"], "shop-team");
    let from: DateTime<Utc> = serde_json::from_value(listed["from"].clone()).unwrap();
    let to: DateTime<Utc> = serde_json::from_value(listed["to"].clone()).unwrap();
    assert_eq!(to - from, chrono::Duration::hours(1));
    let in_period = runs
        .iter()
        .filter(|r| (from..to).contains(&r.result.started_at))
        .count();
    assert_eq!(listed["summary"]["runs"], in_period as u64);
    let id = listed["id"].as_i64().unwrap();
    let one = serve.json(&format!("/api/v1/digests/{id}")).await;
    assert_eq!(one["deliveries"][0]["channel"], "log");
    assert_eq!(one["deliveries"][0]["status"], "delivered");
    assert_eq!(one["digest"]["journeys"][0]["name"], "checkout");
    // The page is the dashboard's: without a login, the login form (the handler tests and
    // the browser test look at the page itself).
    let (status, page) = serve.get(&format!("/digests/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Log in to the dashboard"), "{page:.300}");
    assert!(serve.log().contains("feedback digest"), "{}", serve.log());
}

/// Equal JSON, numbers within a relative 1e-12 (a float printed and parsed back may differ in
/// its last bit).
fn assert_close(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                "{path}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}: keys"
            );
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// A permanent refusal (Slack's 404 `no_service`) ends that channel's delivery at once; a
/// channel failing with retryable errors is given up on after `give_up_after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_expired_deliveries_end_as_failed() {
    let db = Db::sqlite().await;
    let runs: Vec<RunRecord> = (day(14, 0, 0) / RUN_EVERY_MIN..day(14, 2, 0) / RUN_EVERY_MIN)
        .map(checkout_run)
        .collect();
    db.store
        .runs()
        .record_runs(&runs, chrono::Utc::now())
        .await
        .unwrap();
    let slack = Receiver::start().await;
    let slack_path = format!("/slack/{SLACK_SECRET}");
    slack.set_down(&slack_path, Some(404));
    // The email channel points at a port nothing listens on: connection refused, retryable.
    let (mut alerting, digest_config) = config(closed_port(), &slack.base);
    alerting.give_up_after = Duration::from_secs(3600);
    let cycle = DigestCycle::new(digest_config, alerting.digest_delivery(), db.store.clone());
    let now = t(day(28, 0, 1));
    let first = cycle.tick(&arcs(), now).await.unwrap();
    let id = first.created[0];
    assert_eq!(first.delivered, []);
    assert_eq!(first.failed.len(), 1);
    assert_eq!(
        (first.failed[0].0, first.failed[0].1.as_str()),
        (id, "chat")
    );
    assert!(first.failed[0].2.contains("404"), "{:?}", first.failed);
    assert_eq!(first.pending, 1, "the email is retried");
    let later = cycle
        .tick(&arcs(), now + chrono::Duration::minutes(30))
        .await
        .unwrap();
    assert_eq!((later.pending, later.failed.len()), (1, 0));
    assert_eq!(
        slack.received(&slack_path).len(),
        1,
        "a refused channel is not retried"
    );
    let expired = cycle
        .tick(&arcs(), now + chrono::Duration::minutes(61))
        .await
        .unwrap();
    assert_eq!(expired.pending, 0);
    assert_eq!(
        expired
            .failed
            .iter()
            .map(|f| f.1.as_str())
            .collect::<Vec<_>>(),
        ["mail"]
    );
    let stored = db.store.digests().digest(id).await.unwrap().unwrap();
    assert_eq!(
        stored.meta.sent_at,
        Some(now + chrono::Duration::minutes(61))
    );
    let statuses: Vec<String> = db
        .store
        .digests()
        .digest_deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| format!("{} {}", d.channel, d.status))
        .collect();
    assert_eq!(statuses, ["chat failed", "mail failed"]);
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
