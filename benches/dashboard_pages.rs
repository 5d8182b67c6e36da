//! How fast are the public status page and the dashboard's overview with a large fleet?
//! `JOURNEYS` journeys (a tenth of them public), 30 days of history, a few open incidents;
//! then `GET /`, `/status.json` and `/app` (logged in) through the real router, `REQUESTS` times
//! each, warm (the status snapshot cached, as between two refreshes) and cold (every request
//! rebuilds it).
//!
//! The pages read hourly rollups, never raw runs, and a rollup row holds an hour whatever the
//! number of runs in it. So one run per journey and hour gives exactly the rows that 1-minute
//! runs would: 1,000 journeys × 720 hours. Seeding 43 million raw runs would change nothing
//! the pages read.
//!
//! Printed per page: server-side time p50 / p95 / max (handler and rendering, through the
//! router, no socket), and the body size plain and gzip (what a browser transfers).
//!
//! Run: `cargo bench --bench dashboard_pages` (env: JOURNEYS=1000 DAYS=30 REQUESTS=200;
//! DUMP=dir writes each page's last body there).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use waymark::api::{AppState, router};
use waymark::config::Config;
use waymark::journey::Journey;
use waymark::run::testkit;
use waymark::scheduler::{
    BoxFuture, PlannedRun, RunExecutor, Scheduler, SchedulerConfig, SystemClock,
};
use waymark::service::metrics::Metrics;
use waymark::store::sessions::Session;
use waymark::store::{RunRecord, Store};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Idle;

impl RunExecutor for Idle {
    fn execute(&self, _: PlannedRun) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn journey(i: u64) -> Journey {
    let public = if i.is_multiple_of(10) {
        "public: true\ngroup: Shop\n"
    } else {
        ""
    };
    let yaml = format!(
        "name: journey-{i:04}\nowner: team-{}\ntags: [t{}]\n{public}steps:\n  - name: a\n    wait: 1ms\n",
        i % 7,
        i % 5
    );
    testkit::journey(&yaml)
}

fn run(journey: &str, at: DateTime<Utc>, failed: bool) -> RunRecord {
    RunRecord {
        result: testkit::run(journey)
            .location("bench")
            .at(at)
            .finished_at(at)
            .duration_ms(20.0)
            .failed_if(failed)
            .build(),
        planned_at: at,
        scheduling_lag: Duration::ZERO,
        journey_sha256: String::new(),
    }
}

fn gzip_len(body: &[u8]) -> usize {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).expect("in memory");
    e.finish().expect("in memory").len()
}

async fn measure(
    app: &axum::Router,
    path: &str,
    cookie: Option<&str>,
    requests: u64,
    cold: Option<&AppState>,
) {
    let mut times = Vec::new();
    let mut body = Vec::new();
    for _ in 0..requests {
        if let Some(state) = cold {
            state.status.invalidate();
        }
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let t = Instant::now();
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("a request"))
            .await
            .expect("an answer");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("a body")
            .to_vec();
        times.push(t.elapsed());
    }
    if let Ok(dir) = std::env::var("DUMP") {
        let name = path.trim_matches('/').replace('/', "_");
        std::fs::write(
            format!(
                "{dir}/{}.html",
                if name.is_empty() { "index" } else { &name }
            ),
            &body,
        )
        .expect("the dump is written");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{path:<13} {:<5} p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms  body {:>7} B  gzip {:>6} B",
        if cold.is_some() { "cold" } else { "warm" },
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        pct(1.0).as_secs_f64() * 1e3,
        body.len(),
        gzip_len(&body)
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (n, days, requests) = (
        env_or("JOURNEYS", 1000),
        env_or("DAYS", 30) as i64,
        env_or("REQUESTS", 200),
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url).await.expect("SQLite opens");
    let journeys: Vec<Journey> = (0..n).map(journey).collect();
    let now = Utc::now();
    let start = now - chrono::Duration::days(days);
    let seeding = Instant::now();
    let mut batch = Vec::with_capacity(5000);
    for j in &journeys {
        let mut at = start;
        let mut k = 0u64;
        while at < now {
            batch.push(run(&j.name, at, k.is_multiple_of(97)));
            at += chrono::Duration::hours(1);
            k += 1;
            if batch.len() == 5000 {
                store
                    .runs()
                    .record_runs(&batch, chrono::Utc::now())
                    .await
                    .expect("stored");
                batch.clear();
            }
        }
    }
    store
        .runs()
        .record_runs(&batch, chrono::Utc::now())
        .await
        .expect("stored");
    let token = "bench-session-token";
    store
        .sessions()
        .create_session(
            &hex::encode(Sha256::digest(token.as_bytes())),
            &Session {
                username: "bench".into(),
                csrf_token: "x".into(),
                created_at: now,
                expires_at: now + chrono::Duration::hours(1),
            },
        )
        .await
        .expect("a session");
    println!(
        "{n} journeys ({} public), {} rollup hours each, seeded in {:.0} s",
        n / 10,
        days * 24,
        seeding.elapsed().as_secs_f64()
    );
    let scheduler = Arc::new(Scheduler::new(
        Vec::<Arc<Journey>>::new(),
        Arc::new(Idle),
        Arc::new(SystemClock),
        SchedulerConfig::default(),
    ));
    let state = AppState {
        config: Arc::new(Config {
            database_url: url,
            ..Config::default()
        }),
        writer: waymark::store::StoreWriter::spawn(store.clone(), Default::default()).0,
        telemetry: waymark::telemetry::Telemetry::disabled(),
        alerts: waymark::service::commands::AlertHandle::channel().0,
        cluster: waymark::service::cluster::Cluster::new(store.clone(), "bench", "bench".into()),
        store,
        catalog: Arc::default(),
        scheduler,
        metrics: Arc::new(Metrics::new()),
        status: Arc::default(),
        login: Arc::default(),
    };
    state.set_journeys(journeys);
    let app = router(state.clone());
    let cookie = format!("waymark_session={token}");
    for (path, cookie) in [
        ("/", None),
        ("/status.json", None),
        ("/app", Some(cookie.as_str())),
    ] {
        measure(&app, path, cookie, requests, None).await;
        measure(&app, path, cookie, requests.min(20), Some(&state)).await;
    }
}
