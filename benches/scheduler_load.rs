//! Can one process schedule a realistic fleet? 2,000 journeys of 3 HTTP steps each,
//! `every: 10s` (≈ 200 runs/s offered), for 60 s, through the real [`Scheduler`],
//! [`RunnerExecutor`] and [`StoreWriter`], against a loopback target; for SQLite and for
//! PostgreSQL.
//!
//! Printed per database: runs completed, runs/s, scheduling lag p50/p99/max (the `lag` each run
//! was handed: permit wait included), CPU seconds per run (`getrusage(RUSAGE_SELF)`, user +
//! system, all threads: planning, runner, HTTP client, writer, and for SQLite the database
//! engine itself), peak RSS (`ru_maxrss`), skipped overlaps, and database bytes per run stored
//! (SQLite: file + WAL growth after a `wal_checkpoint(TRUNCATE)`; PostgreSQL:
//! `pg_database_size` growth of a fresh database).
//!
//! Processes: the parent starts the target (this binary with `--serve-target`) and then one
//! child per database (`--measure sqlite|postgres`), so each database gets its own CPU and
//! peak-RSS figures and the target's CPU is not Waymark's.
//!
//! Run: `cargo bench --bench scheduler_load`
//! (env: JOURNEYS=2000 DURATION_S=60 EVERY_S=10, CONCURRENCY=<default: 4 × CPUs, below the scheduler's 16 ×>,
//! WAYMARK_BENCH_POSTGRES_URL=postgres://user@127.0.0.1:port/db — a server on which the
//! benchmark may create and drop a database; PostgreSQL is skipped without it).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "support/server_cpu.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use sqlx::{AssertSqlSafe, Connection};
use waymark::journey::Journey;
use waymark::journey::parse::{ParseOptions, parse_journey};
use waymark::journey::template::EnvSecrets;
use waymark::run::{Outcome, RunResult};
use waymark::runner::Runner;
use waymark::scheduler::{
    BoxFuture, PlannedRun, RunSink, RunnerExecutor, Scheduler, SchedulerConfig, SystemClock,
};
use waymark::store::{RunRecord, Store, StoreWriter, WriterConfig};
use waymark::telemetry::Telemetry;

const TARGET_ENV: &str = "WAYMARK_BENCH_TARGET";
const PG_ENV: &str = "WAYMARK_BENCH_POSTGRES_URL";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Usage {
    cpu: Duration,
    max_rss_kib: i64,
}

fn usage() -> Usage {
    // SAFETY: getrusage writes into the struct we pass and has no other effect.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        cpu: tv(u.ru_utime) + tv(u.ru_stime),
        // Linux: kibibytes.
        max_rss_kib: u.ru_maxrss,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The child: a loopback target for the three steps, until its stdin closes.
fn serve_target() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/home", get(|| async { "ok" }))
            .route(
                "/catalogue",
                get(|| async {
                    axum::Json(serde_json::json!({
                        "items": [{"id": 1, "name": "tea"}, {"id": 2, "name": "cake"}],
                        "total": 2,
                    }))
                }),
            )
            .route(
                "/health",
                get(|| async { axum::Json(serde_json::json!({"status": "UP"})) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
    });
}

fn journeys(n: usize, every_s: u64, opts: &ParseOptions) -> Vec<Journey> {
    (0..n)
        .map(|i| {
            let yaml = format!(
                "name: load-{i:05}\n\
                 schedule: {{ every: {every_s}s }}\n\
                 steps:\n\
                 \x20 - name: home\n\
                 \x20   http: {{ url: \"{{{{ base }}}}/home\" }}\n\
                 \x20   conditions: [\"[STATUS] == 200\"]\n\
                 \x20 - name: catalogue\n\
                 \x20   http: {{ url: \"{{{{ base }}}}/catalogue?j={i}\" }}\n\
                 \x20   conditions: [\"[BODY].total == 2\"]\n\
                 \x20 - name: health\n\
                 \x20   http: {{ url: \"{{{{ base }}}}/health\" }}\n\
                 \x20   conditions: [\"[BODY].status == UP\"]\n"
            );
            parse_journey(&yaml, Path::new(&format!("load-{i:05}.yaml")), opts)
                .expect("bench journey parses")
        })
        .collect()
}

#[derive(Default)]
struct Collected {
    lags: Mutex<Vec<Duration>>,
    not_passed: AtomicU64,
    submit_errors: AtomicU64,
}

struct Sink {
    writer: StoreWriter,
    collected: Arc<Collected>,
}

impl RunSink for Sink {
    fn record(&self, run: PlannedRun, result: RunResult) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.collected.lags.lock().unwrap().push(run.lag);
            if result.outcome != Outcome::Passed
                && self.collected.not_passed.fetch_add(1, Ordering::Relaxed) == 0
            {
                eprintln!("first run that did not pass: {result:?}");
            }
            let record = RunRecord {
                result,
                planned_at: run.planned,
                scheduling_lag: run.lag,
                journey_sha256: run.journey.source.content_sha256.clone(),
            };
            if self.writer.submit(record).await.is_err() {
                self.collected.submit_errors.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}

/// How the database is measured, and cleaned up.
enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        file: std::path::PathBuf,
    },
    Postgres {
        admin: sqlx::PgConnection,
        name: String,
    },
}

impl Db {
    async fn open(which: &str) -> (Db, String) {
        match which {
            "sqlite" => {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("waymark.db");
                let url = format!("sqlite://{}", file.display());
                (Db::Sqlite { _dir: dir, file }, url)
            }
            "postgres" => {
                let base = std::env::var(PG_ENV).expect("PostgreSQL URL");
                let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
                let name = format!("waymark_bench_{}", std::process::id());
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&base).unwrap();
                url.set_path(&name);
                (Db::Postgres { admin, name }, url.to_string())
            }
            other => panic!("unknown database {other}"),
        }
    }

    /// Bytes the database occupies now (SQLite: after folding the WAL into the file).
    async fn bytes(&mut self, store: &Store) -> u64 {
        match (self, store) {
            (Db::Sqlite { file, .. }, Store::Sqlite(pool)) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await
                    .unwrap();
                let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
                len(file) + len(&file.with_extension("db-wal"))
            }
            (Db::Postgres { admin, name }, Store::Postgres(_)) => {
                let size: i64 =
                    sqlx::query_scalar(AssertSqlSafe(format!("SELECT pg_database_size('{name}')")))
                        .fetch_one(admin)
                        .await
                        .unwrap();
                size as u64
            }
            _ => unreachable!(),
        }
    }

    /// Of those, the hourly rollups (table and index): one row per journey × step × hour,
    /// written by a journey's first run of the hour, so a short benchmark overweights them.
    /// `None` if SQLite was built without the `dbstat` table.
    async fn rollup_bytes(&mut self, store: &Store) -> Option<u64> {
        match (self, store) {
            (Db::Sqlite { .. }, Store::Sqlite(pool)) => sqlx::query_scalar::<_, i64>(
                "SELECT sum(pgsize) FROM dbstat WHERE tbl_name = 'rollups'",
            )
            .fetch_one(pool)
            .await
            .ok()
            .map(|b| b as u64),
            (Db::Postgres { .. }, Store::Postgres(pool)) => {
                sqlx::query_scalar::<_, i64>("SELECT pg_total_relation_size('rollups')")
                    .fetch_one(pool)
                    .await
                    .ok()
                    .map(|b| b as u64)
            }
            _ => unreachable!(),
        }
    }

    async fn count(store: &Store, q: &'static str) -> i64 {
        match store {
            Store::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
            Store::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
        }
    }

    /// CPU time of the PostgreSQL server so far; `None` for SQLite, whose engine runs in this
    /// process.
    async fn server_cpu(&mut self) -> Option<Duration> {
        let Db::Postgres { admin, .. } = self else {
            return None;
        };
        support::postgres_server_cpu(admin).await
    }

    async fn drop_database(self) {
        if let Db::Postgres { mut admin, name } = self {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

/// The child for one database: schedule, measure, print.
fn measure(which: &str) {
    let target = std::env::var(TARGET_ENV).expect("target address");
    let n = env_or("JOURNEYS", 2000) as usize;
    let duration = Duration::from_secs(env_or("DURATION_S", 60));
    let every_s = env_or("EVERY_S", 10);
    // 4 × CPUs unless told: the figures in docs/benchmarks.md were taken so, below the
    // scheduler's own default, to measure the permit wait under load.
    let config = SchedulerConfig {
        max_concurrent_runs: match std::env::var("CONCURRENCY") {
            Ok(c) => c.parse().expect("CONCURRENCY is a number"),
            Err(_) => 4 * std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        ..SchedulerConfig::default()
    };
    let concurrency = config.max_concurrent_runs;

    let overrides: BTreeMap<String, String> =
        [("base".to_string(), format!("http://{target}"))].into();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journeys = journeys(n, every_s, &opts);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (mut db, url) = Db::open(which).await;
        let store = Store::connect(&url).await.expect("store connects");
        let bytes_before = db.bytes(&store).await;
        let rollups_before = db.rollup_bytes(&store).await;
        let (writer, writer_task) = StoreWriter::spawn(store.clone(), WriterConfig::default());
        let collected = Arc::new(Collected::default());
        let executor = RunnerExecutor {
            runner: Runner {
                location: "bench".into(),
                secrets: Arc::new(EnvSecrets::default()),
                overrides,
                telemetry: Telemetry::disabled(),
            },
            sink: Sink {
                writer: writer.clone(),
                collected: collected.clone(),
            },
        };
        let rss_loaded = usage().max_rss_kib;

        let server0 = db.server_cpu().await;
        let (u0, t0) = (usage(), Instant::now());
        let scheduler = Scheduler::new(
            journeys,
            Arc::new(executor),
            Arc::new(SystemClock),
            config,
        );
        tokio::time::sleep(duration).await;
        let stats = scheduler.shutdown().await;
        let flushed = writer.flush().await;
        let (u1, wall) = (usage(), t0.elapsed());
        let server1 = db.server_cpu().await;
        drop(scheduler);
        drop(writer);
        writer_task.await.unwrap();

        let stored = Db::count(&store, "SELECT count(*) FROM runs").await;
        let bytes_after = db.bytes(&store).await;
        let rollups_after = db.rollup_bytes(&store).await;
        let rollup_rows = Db::count(&store, "SELECT count(*) FROM rollups").await;
        store.close().await;
        db.drop_database().await;

        let mut lags = std::mem::take(&mut *collected.lags.lock().unwrap());
        lags.sort();
        let runs = lags.len() as u64;
        let cpu = (u1.cpu - u0.cpu).as_secs_f64();
        let growth = bytes_after.saturating_sub(bytes_before);
        println!("== {which} ==");
        println!(
            "{n} journeys × 3 HTTP steps, every {every_s}s, {}s, concurrency {concurrency}, loopback",
            duration.as_secs()
        );
        println!(
            "runs completed      {runs} ({:.1} runs/s; offered ≈ {:.1}/s); stored {stored}; not passed {}; submit errors {}; flush {}",
            runs as f64 / duration.as_secs_f64(),
            n as f64 / every_s as f64,
            collected.not_passed.load(Ordering::Relaxed),
            collected.submit_errors.load(Ordering::Relaxed),
            match &flushed {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            }
        );
        println!(
            "scheduling lag      p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            ms(percentile(&lags, 0.50)),
            ms(percentile(&lags, 0.99)),
            ms(lags.last().copied().unwrap_or_default())
        );
        println!(
            "CPU                 {cpu:.2} s over {:.1} s ({:.0}% of one core) = {:.3} ms per run",
            wall.as_secs_f64(),
            cpu / wall.as_secs_f64() * 100.0,
            cpu * 1000.0 / runs.max(1) as f64
        );
        if let (Some(a), Some(b)) = (server0, server1) {
            let c = (b - a).as_secs_f64();
            println!(
                "  PostgreSQL server {c:.2} s ({:.3} ms per run), not included above",
                c * 1000.0 / runs.max(1) as f64
            );
        }
        println!(
            "peak RSS            {:.1} MiB (journeys loaded, before scheduling: {:.1} MiB)",
            u1.max_rss_kib as f64 / 1024.0,
            rss_loaded as f64 / 1024.0
        );
        println!(
            "database            {:.0} bytes per stored run ({growth} bytes for {stored} runs)",
            growth as f64 / stored.max(1) as f64
        );
        println!("  rollup rows       {rollup_rows} (journeys × (steps + 1) × hours touched)");
        if let (Some(a), Some(b)) = (rollups_after, rollups_before) {
            let r = a.saturating_sub(b);
            println!(
                "  of which rollups  {r} bytes; without them {:.0} bytes per stored run",
                growth.saturating_sub(r) as f64 / stored.max(1) as f64
            );
        }
        println!(
            "scheduler           started {} finished {} skipped_overlap {} panicked {} abandoned {} cancelled_queued {}; shutdown + flush took {:.2} s",
            stats.started,
            stats.finished,
            stats.skipped_overlap,
            stats.panicked,
            stats.abandoned,
            stats.cancelled_queued,
            (wall - duration).as_secs_f64(),
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-target") {
        return serve_target();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        return measure(&args[i + 1]);
    }

    let exe = std::env::current_exe().unwrap();
    let mut target = Command::new(&exe)
        .arg("--serve-target")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("target starts");
    let mut addr = String::new();
    std::io::BufReader::new(target.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();

    let mut dbs = vec!["sqlite"];
    if std::env::var_os(PG_ENV).is_some() {
        dbs.push("postgres");
    }
    for db in dbs {
        let status = Command::new(&exe)
            .args(["--measure", db])
            .env(TARGET_ENV, addr.trim())
            .status()
            .expect("measurement runs");
        assert!(status.success(), "{db} measurement failed: {status}");
    }
    if std::env::var_os(PG_ENV).is_none() {
        println!("== postgres ==\nskipped: set {PG_ENV} to a PostgreSQL server URL");
    }
    drop(target.stdin.take());
    let _ = target.wait();
}
