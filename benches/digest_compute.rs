//! How long does a feedback digest take to compute? One owner's journeys (4 HTTP steps each,
//! one with a `dependency:`), a run every `EVERY_MIN` minutes for 28 days (the period and the
//! one before it), 1 % of runs failing with varying messages, in a store on disk; then
//! `digest::compute` for the last 14 days, `REPEAT` times.
//!
//! Printed per database: runs and step rows stored, seeding time, compute time median / min /
//! max, and the digest's JSON size. PostgreSQL runs when `WAYMARK_BENCH_POSTGRES_URL` names a
//! server on which the benchmark may create a database.
//!
//! Run: `cargo bench --bench digest_compute` (env: JOURNEYS=50 EVERY_MIN=5 REPEAT=5).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection};
use waymark::journey::Journey;
use waymark::run::StepResult;
use waymark::run::testkit;
use waymark::step::{FailureClass, Timings};
use waymark::store::{RunRecord, Store};

const PG_ENV: &str = "WAYMARK_BENCH_POSTGRES_URL";
const DAYS: i64 = 28;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn journey(i: u64) -> Journey {
    let yaml = format!(
        "name: j{i:04}\nowner: team\nslo: 99.9%\nsteps:\n\
         - name: login\n  http: {{ url: \"http://127.0.0.1:9/login\" }}\n\
         - name: search\n  http: {{ url: \"http://127.0.0.1:9/search\" }}\n\
         - name: pay\n  dependency: payments\n  http: {{ url: \"http://127.0.0.1:9/pay\" }}\n\
         - name: logout\n  http: {{ url: \"http://127.0.0.1:9/logout\" }}\n"
    );
    testkit::journey(&yaml)
}

/// A small deterministic generator (SplitMix64), so both databases get the same runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn step(name: &str, ms: f64, failure: Option<String>) -> StepResult {
    let d = |ms: f64| Some(Duration::from_secs_f64(ms / 1000.0));
    let mut step = testkit::step(name).timings(Timings {
        dns: d(0.5),
        connect: d(1.0),
        ttfb: d(ms - 2.0),
        download: d(0.5),
        total: d(ms),
        ..Timings::default()
    });
    if name == "pay" {
        step = step.dependency("payments");
    }
    if let Some(message) = failure {
        step = step.failure(FailureClass::HttpStatus, &message);
    }
    step.build()
}

fn run(journey: &str, at: DateTime<Utc>, rng: &mut Rng) -> RunRecord {
    let failing = rng.unit() < 0.01;
    let steps: Vec<StepResult> = ["login", "search", "pay", "logout"]
        .iter()
        .map(|name| {
            let ms = 20.0 + 80.0 * rng.unit();
            let failure =
                (failing && *name == "pay").then(|| format!("HTTP 503 after {} ms", (ms as u64)));
            step(name, ms, failure)
        })
        .collect();
    let run_id = uuid::Uuid::from_u64_pair(rng.next(), rng.next());
    RunRecord {
        result: testkit::run(journey)
            .id(run_id)
            .location("bench")
            .at(at)
            .finished_at(at)
            .trace_id(&run_id.simple().to_string())
            .steps(steps)
            .build(),
        planned_at: at,
        scheduling_lag: Duration::ZERO,
        journey_sha256: String::new(),
    }
}

async fn measure(name: &str, store: Store, journeys: &[Journey], start: DateTime<Utc>) {
    let every = env_or("EVERY_MIN", 5) as i64;
    let repeat = env_or("REPEAT", 5).max(1);
    let mut rng = Rng(7);
    let seeding = Instant::now();
    let (mut runs, mut batch) = (0u64, Vec::with_capacity(2000));
    for j in journeys {
        let mut at = start;
        while at < start + chrono::Duration::days(DAYS) {
            batch.push(run(&j.name, at, &mut rng));
            at += chrono::Duration::minutes(every);
            if batch.len() == 2000 {
                store
                    .runs()
                    .record_runs(&batch, chrono::Utc::now())
                    .await
                    .expect("runs are stored");
                runs += batch.len() as u64;
                batch.clear();
            }
        }
    }
    store
        .runs()
        .record_runs(&batch, chrono::Utc::now())
        .await
        .expect("runs are stored");
    runs += batch.len() as u64;
    let seeded = seeding.elapsed();
    let refs: Vec<&Journey> = journeys.iter().collect();
    let (from, to) = (
        start + chrono::Duration::days(14),
        start + chrono::Duration::days(DAYS),
    );
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let digest = waymark::digest::compute(&store, "team", &refs, from, to, to)
            .await
            .expect("the digest computes");
        times.push(t.elapsed());
        size = serde_json::to_vec(&digest).expect("JSON").len();
    }
    times.sort();
    println!(
        "{name:<10} {} journeys, {runs} runs, {} step rows (seeded in {:.1} s); compute: median {:.0} ms, min {:.0} ms, max {:.0} ms; digest JSON {} KB",
        journeys.len(),
        runs * 4,
        seeded.as_secs_f64(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        size / 1024
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let journeys: Vec<Journey> = (0..env_or("JOURNEYS", 50)).map(journey).collect();
    let start = DateTime::from_timestamp(1_793_059_200, 0).expect("a valid instant");
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url).await.expect("SQLite opens");
    measure("sqlite", store, &journeys, start).await;
    if let Ok(base) = std::env::var(PG_ENV) {
        let name = format!("waymark_bench_digest_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .expect("PostgreSQL answers");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("a database is created");
        let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
        let store = Store::connect(&format!("{prefix}/{name}"))
            .await
            .expect("it opens");
        measure("postgres", store, &journeys, start).await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .expect("the database is dropped");
    } else {
        println!("postgres   skipped: set {PG_ENV} to measure it");
    }
}
