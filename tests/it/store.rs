//! Storage: one suite run against SQLite (a file in a temp dir) and PostgreSQL (a fresh
//! database per test on the server scripts/test.sh starts, `WAYMARK_TEST_POSTGRES_URL`).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Connection;

use waymark::baseline::{DetectorKind, Episode};
use waymark::baseline::{SeriesKey, StoredEpisode};
use waymark::journey::Journey;
use waymark::journey::condition::ConditionOutcome;
use waymark::journey::parse::ParseOptions;
use waymark::run::testkit::{journey_from, run, step};
use waymark::run::{Outcome, RunResult};
use waymark::step::{Failure, FailureClass, Timings};
use waymark::store::{EpisodeFilter, Expiring, RunRecord, Store, StoreWriter, WriterConfig};

use crate::support::run_yaml;

/// A database for one test: the store, and how to open it again.
pub(crate) struct Db {
    pub(crate) store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub(crate) async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("waymark.db").display());
        let store = Store::connect(&url).await.unwrap();
        Db {
            store,
            url,
            _dir: Some(dir),
        }
    }

    pub(crate) async fn postgres() -> Db {
        let url = empty_postgres_database().await;
        let store = Store::connect(&url).await.unwrap();
        Db {
            store,
            url,
            _dir: None,
        }
    }

    pub(crate) async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::connect(&self.url).await.unwrap();
    }
}

/// A new, empty (unmigrated) database on the test server; its URL.
pub(crate) async fn empty_postgres_database() -> String {
    let base = std::env::var("WAYMARK_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WAYMARK_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, \
             which starts a private PostgreSQL"
        )
    });
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Db::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Db::postgres().await).await;
                }
            )*
        }
    };
}
pub(crate) use suite;

suite!(
    real_runs_read_back_identically,
    hand_built_run_reads_back_identically,
    recent_runs_newest_first,
    recording_a_run_twice_counts_it_once,
    journey_versions_by_content_hash,
    rollups_count_and_quantiles_per_hour,
    prune_deletes_in_batches,
    writer_batches_and_flushed_runs_are_durable,
    reopening_applies_migrations_once,
    writer_reports_runs_it_could_not_store,
    episodes_open_close_and_filter,
    episodes_table_is_added_to_an_existing_database,
    sessions_expire_and_end_at_logout,
    hourly_p95_and_locations_for_the_dashboard,
);

pub(crate) fn at(h: u32, m: u32, s: u32, nanos: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, h, m, s).unwrap()
        + chrono::Duration::nanoseconds(nanos.into())
}

pub(crate) fn record(result: RunResult) -> RunRecord {
    RunRecord {
        planned_at: result.started_at - chrono::Duration::milliseconds(3),
        scheduling_lag: Duration::from_nanos(3_000_123),
        journey_sha256: "ab".repeat(32),
        result,
    }
}

/// A run of `journey` started at `started_at`, lasting `ms`, with one `login` step.
pub(crate) fn simple_run(
    journey: &str,
    started_at: DateTime<Utc>,
    ms: u64,
    passed: bool,
) -> RunResult {
    run(journey)
        .location("eu-west")
        .at(started_at)
        .trace_id("0af7651916cd43dd8448eb211c80319c")
        .duration_ms(ms as f64)
        .step(
            step("login")
                .failed_if(!passed)
                .total(Duration::from_millis(ms)),
        )
        .step(step("logout").skipped())
        .build()
}

pub(crate) fn same(a: &RunRecord, b: &RunRecord) {
    assert_eq!(
        serde_json::to_value(a).unwrap(),
        serde_json::to_value(b).unwrap()
    );
    assert_eq!(a.scheduling_lag, b.scheduling_lag);
    for (x, y) in a.result.steps.iter().zip(&b.result.steps) {
        assert_eq!(x.timings, y.timings, "step {}", x.name);
    }
}

async fn real_runs_read_back_identically(db: Db) {
    let shop = waymark::demo::DemoTarget::start(0, &Default::default())
        .await
        .unwrap();
    let yaml = std::fs::read_to_string("journeys/shop-checkout.yaml").unwrap();
    let passed = run_yaml(
        &yaml,
        &shop.base_url(),
        &[("SHOP_PASSWORD", waymark::demo::DEMO_PASSWORD)],
    )
    .await;
    let failed = run_yaml(
        &yaml,
        &shop.base_url(),
        &[("SHOP_PASSWORD", "wrong-password-123")],
    )
    .await;
    assert_eq!(passed.outcome, Outcome::Passed);
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(failed.steps.iter().any(|s| s.failure.is_some()));
    for r in [passed, failed] {
        let rec = record(r);
        db.store
            .runs()
            .record_run(&rec, chrono::Utc::now())
            .await
            .unwrap();
        let back = db
            .store
            .runs()
            .run(rec.result.run_id)
            .await
            .unwrap()
            .expect("stored");
        same(&rec, &back);
    }
    assert!(
        db.store
            .runs()
            .run(uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
}

async fn hand_built_run_reads_back_identically(db: Db) {
    let mut r = simple_run("shop", at(10, 15, 0, 123_456_789), 250, false);
    let s = &mut r.steps[0];
    s.dependency = Some("payments".into());
    s.attempts = 3;
    s.offset_ms = 12.345678;
    s.failure = Some(Failure {
        class: FailureClass::HttpStatus,
        message: "status 503, token ***".into(),
    });
    s.conditions = vec![ConditionOutcome {
        expression: "[STATUS] == 200".into(),
        passed: false,
        actual: "503".into(),
    }];
    s.timings = Timings {
        dns: Some(Duration::from_nanos(1_234_567)),
        connect: Some(Duration::from_nanos(987_654)),
        tls: None,
        handshake: None,
        ttfb: Some(Duration::from_nanos(200_000_001)),
        download: Some(Duration::from_nanos(1)),
        total: Some(Duration::from_nanos(250_123_457)),
    };
    s.extracted = vec!["token".into()];
    s.span_id = "00f067aa0ba902b7".into();
    s.attempt_span_ids = vec!["a".repeat(16), "b".repeat(16), "00f067aa0ba902b7".into()];
    r.steps[1].skip_reason = Some("an earlier step failed".into());
    let rec = record(r);
    db.store
        .runs()
        .record_run(&rec, chrono::Utc::now())
        .await
        .unwrap();
    let back = db
        .store
        .runs()
        .run(rec.result.run_id)
        .await
        .unwrap()
        .unwrap();
    same(&rec, &back);
    assert_eq!(back.result.started_at, at(10, 15, 0, 123_456_789));
    assert_eq!(
        back.result.steps[0].failure.as_ref().unwrap().class,
        FailureClass::HttpStatus
    );
}

async fn recent_runs_newest_first(db: Db) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = simple_run("shop", at(9, i, 0, 0), 100, true);
        ids.push(r.run_id);
        db.store
            .runs()
            .record_run(&record(r), chrono::Utc::now())
            .await
            .unwrap();
    }
    db.store
        .runs()
        .record_run(
            &record(simple_run("other", at(9, 30, 0, 0), 100, true)),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let recent = db.store.runs().recent_runs("shop", 3).await.unwrap();
    let got: Vec<_> = recent.iter().map(|r| r.run_id).collect();
    assert_eq!(got, vec![ids[4], ids[3], ids[2]]);
    assert_eq!(recent[0].started_at, at(9, 4, 0, 0));
    assert_eq!(recent[0].scheduling_lag, Duration::from_nanos(3_000_123));
    assert_eq!(recent[0].outcome, Outcome::Passed);
    assert!(
        db.store
            .runs()
            .recent_runs("nobody", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn recording_a_run_twice_counts_it_once(db: Db) {
    let rec = record(simple_run("shop", at(8, 0, 0, 0), 100, true));
    db.store
        .runs()
        .record_run(&rec, chrono::Utc::now())
        .await
        .unwrap();
    db.store
        .runs()
        .record_runs(&[rec.clone(), rec.clone()], chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        db.store.runs().recent_runs("shop", 10).await.unwrap().len(),
        1
    );
    let rollups = db
        .store
        .runs()
        .rollups("shop", at(0, 0, 0, 0), at(23, 0, 0, 0))
        .await
        .unwrap();
    let whole = rollups.iter().find(|r| r.step.is_none()).unwrap();
    assert_eq!(whole.count, 1);
}

fn journey(text: &str) -> Journey {
    let opts = ParseOptions {
        extra_vars: BTreeSet::from(["base".to_string(), "feed".to_string()]),
        ..ParseOptions::default()
    };
    journey_from(text, "shop-health.yaml", &opts)
}

async fn journey_versions_by_content_hash(db: Db) {
    let text = std::fs::read_to_string("journeys/shop-health.yaml").unwrap();
    let v1 = journey(&text);
    let first = at(7, 0, 0, 0);
    assert!(
        db.store
            .runs()
            .record_journey_version(&v1, Some(&text), first)
            .await
            .unwrap()
    );
    // The same content again, later: still one row, first sighting kept.
    let again = journey(&text);
    assert!(
        !db.store
            .runs()
            .record_journey_version(&again, Some(&text), at(8, 0, 0, 0))
            .await
            .unwrap()
    );
    let changed = format!("{text}\n# a comment changes the version\n");
    let v2 = journey(&changed);
    assert_ne!(v1.source.content_sha256, v2.source.content_sha256);
    assert!(
        db.store
            .runs()
            .record_journey_version(&v2, Some(&changed), at(9, 0, 0, 0))
            .await
            .unwrap()
    );
    let versions = db.store.runs().journeys().await.unwrap();
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert_eq!(versions[0].content_sha256, v1.source.content_sha256);
    assert_eq!(versions[0].first_seen, first);
    assert_eq!(versions[0].definition.as_deref(), Some(text.as_str()));
    assert_eq!(versions[1].content_sha256, v2.source.content_sha256);
    assert!(versions.iter().all(|v| v.name == v1.name));
}

async fn rollups_count_and_quantiles_per_hour(db: Db) {
    // Hour 10: 200 runs of 1..=200 ms, every tenth failed, recorded in several transactions
    // (so rows are merged with what is stored). Hour 11: 3 runs.
    let mut batch = Vec::new();
    for ms in 1..=200u64 {
        let started = at(10, (ms % 60) as u32, 0, 0);
        batch.push(record(simple_run("shop", started, ms, ms % 10 != 0)));
        if batch.len() == 30 {
            db.store
                .runs()
                .record_runs(&batch, chrono::Utc::now())
                .await
                .unwrap();
            batch.clear();
        }
    }
    db.store
        .runs()
        .record_runs(&batch, chrono::Utc::now())
        .await
        .unwrap();
    for ms in [5, 7, 9] {
        db.store
            .runs()
            .record_run(
                &record(simple_run("shop", at(11, 1, 0, 0), ms, true)),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    db.store
        .runs()
        .record_run(
            &record(simple_run("other", at(10, 1, 0, 0), 1, true)),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let rollups = db
        .store
        .runs()
        .rollups("shop", at(10, 0, 0, 0), at(12, 0, 0, 0))
        .await
        .unwrap();
    // Per hour: the whole run and `login`; skipped `logout` is not counted.
    assert_eq!(rollups.len(), 4, "{rollups:#?}");
    let find = |hour: u32, step: Option<&str>| {
        rollups
            .iter()
            .find(|r| r.hour == at(hour, 0, 0, 0) && r.step.as_deref() == step)
            .unwrap()
    };
    for step in [None, Some("login")] {
        let r = find(10, step);
        assert_eq!((r.count, r.failures), (200, 20));
        assert_eq!(r.location, "eu-west");
        assert_eq!((r.min_ms, r.max_ms), (Some(1.0), Some(200.0)));
        assert!((r.sum_ms - 20_100.0).abs() < 1e-6);
        assert_eq!(r.sketch.count(), 200);
        for (q, exact) in [(0.5, 100.0), (0.95, 190.0), (0.99, 198.0)] {
            let got = r.sketch.quantile(q).unwrap();
            assert!((got - exact).abs() / exact <= 0.02, "{step:?} p{q}: {got}");
        }
        let r = find(11, step);
        assert_eq!((r.count, r.failures), (3, 0));
        assert!((r.sketch.quantile(0.5).unwrap() - 7.0).abs() / 7.0 <= 0.02);
    }
    // The window is [from, to).
    let only_11 = db
        .store
        .runs()
        .rollups("shop", at(11, 0, 0, 0), at(12, 0, 0, 0))
        .await
        .unwrap();
    assert!(only_11.iter().all(|r| r.hour == at(11, 0, 0, 0)));
    assert_eq!(only_11.len(), 2);
}

async fn prune_deletes_in_batches(db: Db) {
    let mut old = Vec::new();
    for i in 0..25 {
        let r = record(simple_run("shop", at(1, i, 0, 0), 10, true));
        old.push(r.result.run_id);
        db.store
            .runs()
            .record_run(&r, chrono::Utc::now())
            .await
            .unwrap();
    }
    let mut new = Vec::new();
    for i in 0..5 {
        let r = record(simple_run("shop", at(5, i, 0, 0), 10, true));
        new.push(r.result.run_id);
        db.store
            .runs()
            .record_run(&r, chrono::Utc::now())
            .await
            .unwrap();
    }
    // Raw data older than 04:00 goes; rollups of hours before 03:00 (hour 1) go.
    let pruned = db
        .store
        .runs()
        .prune(at(4, 0, 0, 0), at(3, 0, 0, 0), 10)
        .await
        .unwrap();
    assert_eq!(pruned.runs, 25);
    assert_eq!(pruned.rollups, 2);
    for id in &old {
        assert!(db.store.runs().run(*id).await.unwrap().is_none());
    }
    for id in &new {
        let run = db.store.runs().run(*id).await.unwrap().unwrap();
        assert_eq!(run.result.steps.len(), 2);
    }
    assert_eq!(
        db.store
            .runs()
            .recent_runs("shop", 100)
            .await
            .unwrap()
            .len(),
        5
    );
    let left = db
        .store
        .runs()
        .rollups("shop", at(0, 0, 0, 0), at(23, 0, 0, 0))
        .await
        .unwrap();
    assert!(left.iter().all(|r| r.hour == at(5, 0, 0, 0)), "{left:#?}");
    // Nothing more to prune.
    let again = db
        .store
        .runs()
        .prune(at(4, 0, 0, 0), at(3, 0, 0, 0), 10)
        .await
        .unwrap();
    assert_eq!((again.runs, again.rollups), (0, 0));
}

async fn writer_batches_and_flushed_runs_are_durable(mut db: Db) {
    let config = WriterConfig {
        max_batch: 50,
        max_delay: Duration::from_millis(200),
        capacity: 1000,
        attempts: 2,
        outage: Duration::from_secs(60),
    };
    let (writer, task) = StoreWriter::spawn(db.store.clone(), config);
    let mut ids = Vec::new();
    for i in 0..230u32 {
        let r = record(simple_run("shop", at(12, 0, 0, i * 1000), 10, true));
        ids.push(r.result.run_id);
        writer.submit(r).await.unwrap();
    }
    writer.flush().await.unwrap();
    // Flushed means committed: visible before the writer stops, and after a reopen.
    assert_eq!(
        db.store
            .runs()
            .recent_runs("shop", 1000)
            .await
            .unwrap()
            .len(),
        230
    );
    // A run submitted after the flush is committed by the time (max_delay) passes.
    let late = record(simple_run("shop", at(13, 0, 0, 0), 10, true));
    let late_id = late.result.run_id;
    writer.submit(late).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(db.store.runs().run(late_id).await.unwrap().is_some());
    drop(writer);
    task.await.unwrap();
    db.reopen().await;
    assert_eq!(
        db.store
            .runs()
            .recent_runs("shop", 1000)
            .await
            .unwrap()
            .len(),
        231
    );
    for id in ids.iter().step_by(23) {
        assert!(db.store.runs().run(*id).await.unwrap().is_some());
    }
    let rollups = db
        .store
        .runs()
        .rollups("shop", at(12, 0, 0, 0), at(13, 0, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        rollups.iter().find(|r| r.step.is_none()).unwrap().count,
        230
    );
}

async fn reopening_applies_migrations_once(mut db: Db) {
    let rec = record(simple_run("shop", at(6, 0, 0, 0), 42, true));
    db.store
        .runs()
        .record_run(&rec, chrono::Utc::now())
        .await
        .unwrap();
    db.reopen().await;
    db.store.migrate().await.unwrap();
    db.reopen().await;
    let back = db
        .store
        .runs()
        .run(rec.result.run_id)
        .await
        .unwrap()
        .unwrap();
    same(&rec, &back);
}

async fn writer_reports_runs_it_could_not_store(db: Db) {
    let config = WriterConfig {
        attempts: 2,
        ..WriterConfig::default()
    };
    let (writer, _task) = StoreWriter::spawn(db.store.clone(), config);
    writer
        .submit(record(simple_run("shop", at(1, 0, 0, 0), 1, true)))
        .await
        .unwrap();
    writer.flush().await.unwrap();
    // The database goes away: the batch is retried, then given up and reported once.
    db.store.close().await;
    writer
        .submit(record(simple_run("shop", at(1, 1, 0, 0), 1, true)))
        .await
        .unwrap();
    match writer.flush().await {
        Err(waymark::store::StoreError::WriteFailed { runs: 1, .. }) => {}
        other => panic!("expected a write failure, got {other:?}"),
    }
    writer.flush().await.unwrap();
}

/// Epoch milliseconds of `at(h, m, s)` plus `ms`.
fn ms_at(h: u32, m: u32, s: u32, ms: i64) -> i64 {
    at(h, m, s, 0).timestamp_millis() + ms
}

fn series(journey: &str, step: &str, location: &str) -> SeriesKey {
    SeriesKey {
        journey: journey.into(),
        step: step.into(),
        location: location.into(),
    }
}

fn episode_filter(limit: u32) -> EpisodeFilter {
    EpisodeFilter {
        limit,
        ..EpisodeFilter::default()
    }
}

async fn episodes_open_close_and_filter(mut db: Db) {
    assert!(
        db.store
            .episodes()
            .episodes(&episode_filter(100))
            .await
            .unwrap()
            .is_empty()
    );
    // A: a latency episode of shop/login, closed below. Instants carry milliseconds.
    let shop_login = series("shop", "login", "eu-west");
    let mut a = Episode {
        detector: DetectorKind::Latency,
        start_ms: ms_at(10, 0, 0, 123),
        detected_ms: ms_at(10, 3, 0, 456),
        end_ms: None,
        peak_score: 7.25,
        peak_value: 250.123_456_789,
        baseline: 101.125,
        anomalous_runs: 3,
    };
    // B: an open failure-rate episode of another journey, started last.
    let search = series("search", "query", "us-east");
    let b = Episode {
        detector: DetectorKind::FailureRate,
        start_ms: ms_at(11, 0, 0, 1),
        detected_ms: ms_at(11, 5, 0, 999),
        end_ms: None,
        peak_score: 4.567_891_234,
        peak_value: 0.4,
        baseline: 0.012_5,
        anomalous_runs: 4,
    };
    // C: an open failure-rate episode of shop/checkout that started first.
    let shop_pay = series("shop", "pay", "eu-west");
    let c = Episode {
        detector: DetectorKind::FailureRate,
        start_ms: ms_at(8, 0, 0, 7),
        detected_ms: ms_at(8, 1, 0, 0),
        end_ms: None,
        peak_score: 12.0,
        peak_value: 1.0,
        baseline: 0.001,
        anomalous_runs: 20,
    };
    let id_a = db
        .store
        .episodes()
        .open_episode(&shop_login, "medium", &a)
        .await
        .unwrap();
    let id_b = db
        .store
        .episodes()
        .open_episode(&search, "high", &b)
        .await
        .unwrap();
    let id_c = db
        .store
        .episodes()
        .open_episode(&shop_pay, "low", &c)
        .await
        .unwrap();
    assert_eq!(BTreeSet::from([id_a, id_b, id_c]).len(), 3);

    // Open, A reads back as written.
    let all = db
        .store
        .episodes()
        .episodes(&episode_filter(100))
        .await
        .unwrap();
    let stored_a = all.iter().find(|e| e.id == id_a).unwrap();
    assert_eq!(stored_a.end, None);
    assert_eq!(stored_a.episode(), a);

    // A ends: end, final peak and run count are stored; start, detection and baseline kept.
    a.end_ms = Some(ms_at(10, 20, 0, 789));
    a.peak_score = 9.5;
    a.peak_value = 312.25;
    a.anomalous_runs = 11;
    db.store.episodes().close_episode(id_a, &a).await.unwrap();

    // Every field, after a reopen (read from the database, not a cache).
    db.reopen().await;
    let all = db
        .store
        .episodes()
        .episodes(&episode_filter(100))
        .await
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![id_b, id_a, id_c], "newest start first: {all:#?}");
    let stored_a = &all[1];
    assert_eq!(
        *stored_a,
        StoredEpisode {
            id: id_a,
            series: shop_login.clone(),
            detector: DetectorKind::Latency,
            sensitivity: "medium".into(),
            start: at(10, 0, 0, 123_000_000),
            detected: at(10, 3, 0, 456_000_000),
            end: Some(at(10, 20, 0, 789_000_000)),
            peak_score: 9.5,
            peak_value: 312.25,
            baseline: 101.125,
            anomalous_runs: 11,
        }
    );
    assert_eq!(stored_a.episode(), a);
    assert_eq!(
        all[0],
        StoredEpisode {
            id: id_b,
            series: search.clone(),
            detector: DetectorKind::FailureRate,
            sensitivity: "high".into(),
            start: at(11, 0, 0, 1_000_000),
            detected: at(11, 5, 0, 999_000_000),
            end: None,
            peak_score: 4.567_891_234,
            peak_value: 0.4,
            baseline: 0.012_5,
            anomalous_runs: 4,
        }
    );
    assert_eq!(all[0].episode(), b);
    assert_eq!(all[2].episode(), c);
    assert_eq!(
        (all[2].series.clone(), all[2].sensitivity.as_str()),
        (shop_pay, "low")
    );

    let list = |filter: EpisodeFilter| {
        let store = db.store.clone();
        async move {
            let got = store.episodes().episodes(&filter).await.unwrap();
            got.iter().map(|e| e.id).collect::<Vec<i64>>()
        }
    };
    let journey = |name: &str| EpisodeFilter {
        journey: Some(name.into()),
        ..episode_filter(100)
    };
    assert_eq!(list(journey("shop")).await, vec![id_a, id_c]);
    assert_eq!(list(journey("search")).await, vec![id_b]);
    assert!(list(journey("nobody")).await.is_empty());
    let open = EpisodeFilter {
        open_only: true,
        ..episode_filter(100)
    };
    assert_eq!(list(open.clone()).await, vec![id_b, id_c]);
    assert_eq!(
        list(EpisodeFilter {
            journey: Some("shop".into()),
            ..open
        })
        .await,
        vec![id_c]
    );
    // `since`: A ended at 10:20:00.789; the open ones count whenever they started.
    let since = |t: DateTime<Utc>| EpisodeFilter {
        since: Some(t),
        ..episode_filter(100)
    };
    assert_eq!(list(since(at(10, 30, 0, 0))).await, vec![id_b, id_c]);
    assert_eq!(
        list(since(at(10, 20, 0, 790_000_000))).await,
        vec![id_b, id_c]
    );
    assert_eq!(
        list(since(at(10, 20, 0, 789_000_000))).await,
        vec![id_b, id_a, id_c]
    );
    assert_eq!(list(since(at(12, 0, 0, 0))).await, vec![id_b, id_c]);
    assert_eq!(list(since(at(0, 0, 0, 0))).await, vec![id_b, id_a, id_c]);
    // `limit` keeps the newest.
    assert_eq!(list(episode_filter(1)).await, vec![id_b]);
    assert_eq!(list(episode_filter(2)).await, vec![id_b, id_a]);
    assert_eq!(
        list(EpisodeFilter {
            journey: Some("shop".into()),
            ..episode_filter(1)
        })
        .await,
        vec![id_a]
    );
}

/// A database that only has the first migration (as created by an earlier version).
async fn episodes_table_is_added_to_an_existing_database(db: Db) {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    fn initial_only(sql: &'static str) -> Migrator {
        Migrator::with_migrations(vec![Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )])
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, url) = match &db.store {
        Store::Sqlite(_) => {
            let url = format!("sqlite://{}", dir.path().join("old.db").display());
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            initial_only(include_str!("../../migrations/sqlite/0001_initial.sql"))
                .run(&pool)
                .await
                .unwrap();
            (Store::Sqlite(pool), url)
        }
        Store::Postgres(_) => {
            let url = empty_postgres_database().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            initial_only(include_str!("../../migrations/postgres/0001_initial.sql"))
                .run(&pool)
                .await
                .unwrap();
            (Store::Postgres(pool), url)
        }
    };
    db.store.close().await;
    // The old schema stores runs (written here as that version wrote them: today's writer
    // also fills tables the old schema lacks) and has no episodes table.
    let mut run = simple_run("shop", at(6, 0, 0, 0), 42, true);
    run.steps.clear();
    let rec = record(run);
    let r = &rec.result;
    let insert = "INSERT INTO runs (run_id, journey, location, journey_sha256, planned_at_ns, \
                  started_at_ns, finished_at_ns, duration_ms, outcome, trace_id, scheduling_lag_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'passed', $9, $10)";
    let ns = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap();
    macro_rules! old_run {
        ($pool:expr) => {
            sqlx::query(insert)
                .bind(r.run_id)
                .bind(&r.journey)
                .bind(&r.location)
                .bind(&rec.journey_sha256)
                .bind(ns(rec.planned_at))
                .bind(ns(r.started_at))
                .bind(ns(r.finished_at))
                .bind(r.duration_ms)
                .bind(&r.trace_id)
                .bind(rec.scheduling_lag.as_secs_f64() * 1e3)
                .execute($pool)
                .await
                .map(|_| ())
                .unwrap()
        };
    }
    match &old {
        Store::Sqlite(p) => old_run!(p),
        Store::Postgres(p) => old_run!(p),
    }
    assert!(old.episodes().episodes(&episode_filter(10)).await.is_err());
    old.close().await;

    let store = Store::connect(&url).await.unwrap();
    let versions: Vec<i64> = match &store {
        Store::Sqlite(p) => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(p)
                .await
                .unwrap()
        }
        Store::Postgres(p) => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(p)
                .await
                .unwrap()
        }
    };
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    same(
        &rec,
        &store.runs().run(rec.result.run_id).await.unwrap().unwrap(),
    );
    assert!(
        store
            .episodes()
            .episodes(&episode_filter(10))
            .await
            .unwrap()
            .is_empty()
    );
    let e = Episode {
        detector: DetectorKind::Latency,
        start_ms: ms_at(6, 0, 0, 1),
        detected_ms: ms_at(6, 2, 0, 2),
        end_ms: None,
        peak_score: 5.0,
        peak_value: 90.0,
        baseline: 42.0,
        anomalous_runs: 3,
    };
    let id = store
        .episodes()
        .open_episode(&series("shop", "login", "eu-west"), "medium", &e)
        .await
        .unwrap();
    let back = store
        .episodes()
        .episodes(&episode_filter(10))
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].id, back[0].episode()), (id, e));
    store.close().await;
}

async fn sessions_expire_and_end_at_logout(db: Db) {
    use waymark::store::sessions::Session;
    let store = db.store;
    let session = |user: &str, h: u32| Session {
        username: user.into(),
        csrf_token: format!("csrf-{user}"),
        created_at: at(h, 0, 0, 0),
        expires_at: at(h + 1, 0, 0, 0),
    };
    store
        .sessions()
        .create_session("hash-a", &session("ada", 10))
        .await
        .unwrap();
    store
        .sessions()
        .create_session("hash-b", &session("bob", 12))
        .await
        .unwrap();
    assert_eq!(
        store
            .sessions()
            .session("hash-a", at(10, 30, 0, 0))
            .await
            .unwrap(),
        Some(session("ada", 10))
    );
    assert_eq!(
        store
            .sessions()
            .session("hash-a", at(11, 0, 0, 0))
            .await
            .unwrap(),
        None,
        "expired at its end"
    );
    assert_eq!(
        store
            .sessions()
            .session("nope", at(10, 30, 0, 0))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .sessions()
            .create_session("hash-a", &session("eve", 12))
            .await
            .is_err(),
        "a token is never reused"
    );
    assert_eq!(
        store
            .prune(Expiring::Sessions, at(11, 30, 0, 0))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .sessions()
            .session("hash-b", at(12, 30, 0, 0))
            .await
            .unwrap(),
        Some(session("bob", 12))
    );
    store.sessions().delete_session("hash-b").await.unwrap();
    assert_eq!(
        store
            .sessions()
            .session("hash-b", at(12, 30, 0, 0))
            .await
            .unwrap(),
        None
    );
}

async fn hourly_p95_and_locations_for_the_dashboard(db: Db) {
    let store = db.store;
    let run = |h: u32, m: u32, ms: f64, location: &str| {
        let r = run("shop").location(location).at(at(h, m, 0, 0));
        // One failure, from `us`.
        let r = r.finished_at(at(h, m, 0, 0)).failed_if(ms == 7.0);
        record(r.duration_ms(ms).build())
    };
    // 10:00–10:59: 100 runs of 1..100 ms over two locations; 11:00: one of 500 ms.
    let mut runs: Vec<RunRecord> = (1..=100)
        .map(|i| {
            run(
                10,
                (i % 60) as u32,
                i as f64,
                if i % 2 == 0 { "eu" } else { "us" },
            )
        })
        .collect();
    runs.push(run(11, 5, 500.0, "eu"));
    store
        .runs()
        .record_runs(&runs, chrono::Utc::now())
        .await
        .unwrap();
    let p95 = store.status().hourly_p95(at(10, 0, 0, 0)).await.unwrap();
    assert_eq!(p95.len(), 2, "{p95:?}");
    assert_eq!((p95[0].0.as_str(), p95[0].1), ("shop", at(10, 0, 0, 0)));
    assert!(
        (p95[0].2 - 95.0).abs() <= 95.0 * 0.02,
        "locations merged: {p95:?}"
    );
    assert!((p95[1].2 - 500.0).abs() <= 10.0);
    assert_eq!(
        store
            .status()
            .hourly_p95(at(11, 0, 0, 0))
            .await
            .unwrap()
            .len(),
        1
    );
    let locations = store
        .status()
        .journey_locations(at(10, 0, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        locations,
        [
            ("shop".to_string(), "eu".to_string()),
            ("shop".to_string(), "us".to_string())
        ]
    );

    // By location: runs, failures and latency since 10:00, and the newest run of each.
    let by = store
        .status()
        .location_results("shop", at(10, 0, 0, 0))
        .await
        .unwrap();
    let summary: Vec<(&str, u64, u64)> = by
        .iter()
        .map(|l| (l.location.as_str(), l.runs, l.failures))
        .collect();
    assert_eq!(summary, [("eu", 51, 0), ("us", 50, 1)]);
    let eu_p95 = by[0].p95_ms.unwrap();
    assert!((eu_p95 - 96.0).abs() <= 96.0 * 0.03, "{by:?}");
    let last = |i: usize| by[i].last_run.as_ref().unwrap().started_at;
    assert_eq!((last(0), last(1)), (at(11, 5, 0, 0), at(10, 59, 0, 0)));
    // Hours before `since` are not counted, but the newest run is still shown.
    let later = store
        .status()
        .location_results("shop", at(11, 0, 0, 0))
        .await
        .unwrap();
    assert_eq!(later.len(), 2, "{later:?}");
    assert_eq!((later[0].runs, later[1].runs), (1, 0));
    assert_eq!(later[1].p95_ms, None);
    assert!(later[1].last_run.is_some());
    assert!(
        store
            .status()
            .location_results("nope", at(10, 0, 0, 0))
            .await
            .unwrap()
            .is_empty()
    );
}
