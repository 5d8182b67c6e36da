//! What does it cost for several `waymark serve` nodes to share one database? Only the
//! coordination they do through it is measured (no journey runs), in four parts:
//!
//! 1. **Claims**: `NODES` nodes, each with its own pool (`Store::connect`, as separate processes
//!    would have; for SQLite one store shared), all claim the same `JOURNEYS × TICKS` ticks with
//!    `Store::claim_run`, in tick order, `CONCURRENCY` claims in flight per node. Printed: claim
//!    attempts/s, latency per attempt p50/p99 (pool wait included), the winners (each tick must
//!    be won by exactly one node, or the benchmark fails), Waymark's CPU per attempt
//!    (`getrusage`, all nodes, SQLite's engine included) and the PostgreSQL server's CPU per tick.
//! 2. **Feed**: `RUNS` runs of 3 steps stored with `Store::record_runs` in batches of 100, then
//!    read back twice: as the leader did before (`feed_after` pages of 200, `Store::run` per
//!    entry, `set_cursor` per run) and as it does now (src/service/feed.rs and analysis.rs:
//!    `feed_runs_after` loads a page's runs in two statements, the cursor is saved once per
//!    page), in one loop (in the service the reader and the analysis that moves the cursor are
//!    two tasks joined by a queue). Printed: runs read/s and time per run, loading and cursor.
//! 3. **Settle**: `SETTLE_CLAIMS` unsettled claims (inserted by one SQL statement), half of
//!    them with a run (without steps) stored for their tick, settled by one
//!    `Store::settle_claims` call, which must report the other half missed.
//! 4. **Beats**: `BEATS` heartbeats, each followed by a lease renewal (what `Cluster::beat` does
//!    every 5 s), p50/p99.
//!
//! SQLite is a temp file; PostgreSQL a fresh database created (and dropped) on the server that
//! `WAYMARK_BENCH_POSTGRES_URL` names (skipped without it). The server's CPU is read from
//! `/proc`: the postmaster and all its children, so other clients of that server count too.
//!
//! Run: `WAYMARK_BENCH_POSTGRES_URL=postgres://user@127.0.0.1:port/db cargo bench --bench
//! cluster_coordination` (env: NODES=3 JOURNEYS=2000 TICKS=20 CONCURRENCY=8 RUNS=20000
//! SETTLE_CLAIMS=100000 BEATS=1000).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "support/server_cpu.rs"]
mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection};
use waymark::run::StepResult;
use waymark::run::testkit::{run, step};
use waymark::service::cluster::LEASE_TTL;
use waymark::step::Timings;
use waymark::store::cluster::{NodeInfo, SettleCutoffs, Tick};
use waymark::store::{RunRecord, Store};

const PG_ENV: &str = "WAYMARK_BENCH_POSTGRES_URL";
const LOCATION: &str = "bench";
/// Journeys the feed's and the settling's runs are spread over.
const SPREAD: usize = 1000;
const TICK_NS: i64 = 10_000_000_000;

type Res<T = ()> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Knobs {
    nodes: usize,
    journeys: usize,
    ticks: usize,
    concurrency: usize,
    runs: usize,
    settle_claims: usize,
    beats: usize,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            nodes: env_or("NODES", 3).max(1),
            journeys: env_or("JOURNEYS", 2000).max(1),
            ticks: env_or("TICKS", 20).max(1),
            concurrency: env_or("CONCURRENCY", 8).max(1),
            runs: env_or("RUNS", 20_000),
            settle_claims: env_or("SETTLE_CLAIMS", 100_000),
            beats: env_or("BEATS", 1000).max(1),
        }
    }
}

/// CPU time of this process so far (user + system, all threads).
fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and has no other effect.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// p50 and p99 of `d` (sorted here).
fn p50_p99(d: &mut [Duration]) -> (f64, f64) {
    d.sort();
    let at = |p: f64| d.get(((d.len().max(1) - 1) as f64 * p).round() as usize);
    let ms = |x: Option<&Duration>| x.map_or(0.0, |x| x.as_secs_f64() * 1e3);
    (ms(at(0.50)), ms(at(0.99)))
}

/// The database under test, and how to clean it up.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin: sqlx::PgConnection,
        name: String,
        url: String,
    },
}

impl Db {
    async fn open(which: &str) -> Res<Db> {
        if which == "sqlite" {
            return tempfile::tempdir().map(Db::Sqlite).map_err(err);
        }
        let base = std::env::var(PG_ENV).map_err(err)?;
        let mut admin = sqlx::PgConnection::connect(&base).await.map_err(err)?;
        let name = format!("waymark_bench_cluster_{}", std::process::id());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(err)?;
        let mut url = url::Url::parse(&base).map_err(err)?;
        url.set_path(&name);
        let url = url.to_string();
        Ok(Db::Postgres { admin, name, url })
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite://{}", dir.path().join("waymark.db").display()),
            Db::Postgres { url, .. } => url.clone(),
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
        if let Db::Postgres {
            mut admin, name, ..
        } = self
        {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Wall time, Waymark CPU and server CPU from `start` to `stop`.
struct Meter {
    at: Instant,
    cpu: Duration,
    server: Option<Duration>,
}

impl Meter {
    async fn start(db: &mut Db) -> Meter {
        let server = db.server_cpu().await;
        let (at, cpu) = (Instant::now(), cpu());
        Meter { at, cpu, server }
    }

    /// The wall time, and a line with Waymark's CPU per `n` `unit`s and the server's per `m`
    /// `server_unit`s.
    async fn stop(
        self,
        db: &mut Db,
        (n, unit): (usize, &str),
        (m, server_unit): (usize, &str),
    ) -> (Duration, String) {
        let (wall, cpu) = (self.at.elapsed(), (cpu() - self.cpu).as_secs_f64());
        let per = |s: f64, n: usize| s * 1e6 / n.max(1) as f64;
        let mut line = format!(
            "  CPU: Waymark {cpu:.2} s = {:.1} µs per {unit}",
            per(cpu, n)
        );
        if let (Some(a), Some(b)) = (self.server, db.server_cpu().await) {
            let s = (b - a).as_secs_f64();
            line += &format!(
                "; PostgreSQL server {s:.2} s = {:.1} µs per {server_unit}",
                per(s, m)
            );
        }
        (wall, line)
    }
}

/// The 3 passing HTTP steps of every stored run (as `waymark run --format json` prints them).
fn steps() -> Vec<StepResult> {
    let ms = |ms: f64| Some(Duration::from_secs_f64(ms / 1000.0));
    let timings = Timings {
        connect: ms(0.2),
        ttfb: ms(1.5),
        download: ms(0.1),
        total: ms(1.8),
        ..Timings::default()
    };
    ["home", "catalogue", "health"]
        .iter()
        .map(|name| step(name).timings(timings).build())
        .collect()
}

/// Stores `n` runs with `steps`, the i-th of journey `{prefix}{i % SPREAD}` planned at
/// `base + (i / SPREAD) × 10 s`, in batches of 100; returns the time it took.
async fn store_runs(
    store: &Store,
    (prefix, n): (&str, usize),
    base: DateTime<Utc>,
    steps: &[StepResult],
) -> Res<Duration> {
    let t = Instant::now();
    for from in (0..n).step_by(100) {
        let batch: Vec<RunRecord> = (from..n.min(from + 100))
            .map(|i| {
                let at = base + chrono::Duration::nanoseconds((i / SPREAD) as i64 * TICK_NS);
                let run_id = uuid::Uuid::new_v4();
                RunRecord {
                    result: run(&format!("{prefix}{}", i % SPREAD))
                        .id(run_id)
                        .location(LOCATION)
                        .at(at)
                        .finished_at(at)
                        .duration_ms(5.4)
                        .trace_id(&run_id.simple().to_string())
                        .steps(steps.to_vec())
                        .build(),
                    planned_at: at,
                    scheduling_lag: Duration::ZERO,
                    journey_sha256: String::new(),
                }
            })
            .collect();
        store
            .runs()
            .record_runs(&batch, chrono::Utc::now())
            .await
            .map_err(err)?;
    }
    Ok(t.elapsed())
}

/// `$e` with `$p` bound to the store's pool, whichever the database.
macro_rules! with_pool {
    ($store:expr, $p:ident => $e:expr) => {
        match $store {
            Store::Sqlite($p) => $e,
            Store::Postgres($p) => $e,
        }
    };
}

async fn count(store: &Store, q: &'static str) -> Res<i64> {
    with_pool!(store, p => sqlx::query_scalar(q).fetch_one(p).await).map_err(err)
}

/// Part 1: every node claims every tick.
async fn claims(stores: &[Store], db: &mut Db, k: &Knobs) -> Res {
    let total = k.journeys * k.ticks;
    let names: Arc<Vec<String>> = Arc::new((0..k.journeys).map(|j| format!("j{j:05}")).collect());
    let wins: Arc<Vec<AtomicU32>> = Arc::new((0..total).map(|_| AtomicU32::new(0)).collect());
    let base = Utc::now();
    let start = Arc::new(tokio::sync::Barrier::new(k.nodes * k.concurrency));
    println!(
        "claims: {} nodes × {} journeys × {} ticks, {} in flight per node, {} pool(s)",
        k.nodes,
        k.journeys,
        k.ticks,
        k.concurrency,
        stores.len()
    );

    let meter = Meter::start(db).await;
    let mut workers = Vec::new();
    for (node, store) in stores.iter().cycle().take(k.nodes).enumerate() {
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..k.concurrency {
            let (store, next, names) = (store.clone(), next.clone(), names.clone());
            let (wins, start, id) = (wins.clone(), start.clone(), format!("node-{node}"));
            workers.push(tokio::spawn(async move {
                start.wait().await;
                let (mut latencies, mut won) = (Vec::new(), 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, String>((node, latencies, won));
                    }
                    let tick = Tick {
                        journey: &names[i % names.len()],
                        location: LOCATION,
                        planned_at: base
                            + chrono::Duration::nanoseconds((i / names.len()) as i64 * TICK_NS),
                    };
                    let t = Instant::now();
                    let claimed = store.cluster().claim_run(tick, &id, Utc::now()).await;
                    latencies.push(t.elapsed());
                    if claimed.map_err(err)? {
                        wins[i].fetch_add(1, Ordering::Relaxed);
                        won += 1;
                    }
                }
            }));
        }
    }
    let (mut latencies, mut by_node) = (Vec::new(), vec![0u64; k.nodes]);
    for w in workers {
        let (node, l, won) = w.await.map_err(err)??;
        latencies.extend(l);
        by_node[node] += won;
    }
    let attempts = latencies.len();
    let (wall, cpu) = meter.stop(db, (attempts, "attempt"), (total, "tick")).await;
    let (p50, p99) = p50_p99(&mut latencies);
    println!(
        "  {attempts} attempts in {:.2} s = {:.0} attempts/s; latency per attempt p50 {p50:.3} ms, p99 {p99:.3} ms",
        wall.as_secs_f64(),
        attempts as f64 / wall.as_secs_f64()
    );
    let won_by = |n| wins.iter().filter(move |w| w.load(Ordering::Relaxed) == n);
    let (none, one) = (won_by(0).count(), won_by(1).count());
    let rows = count(&stores[0], "SELECT count(*) FROM run_claims").await?;
    println!(
        "  winners: {one} of {total} ticks won by exactly one node (by node: {by_node:?}); {rows} claim rows"
    );
    println!("{cpu}");
    if one != total || rows != total as i64 {
        return Err(format!(
            "{none} ticks won by no node, {} by more than one, {rows} claim rows for {total} ticks",
            total - one - none
        ));
    }
    Ok(())
}

/// Part 2: store runs, then read the whole feed as the leader does.
async fn feed(store: &Store, db: &mut Db, k: &Knobs) -> Res {
    let stored = store_runs(store, ("f", k.runs), Utc::now(), &steps()).await?;
    println!(
        "feed: {} runs of 3 steps stored in batches of 100 in {:.2} s ({:.0} runs/s)",
        k.runs,
        stored.as_secs_f64(),
        k.runs as f64 / stored.as_secs_f64()
    );
    for paged in [false, true] {
        let meter = Meter::start(db).await;
        let (read, split) = read_feed(store, paged).await?;
        let (wall, cpu) = meter.stop(db, (read, "run"), (read, "run")).await;
        let how = if paged {
            "a page at a time (feed_runs_after, one set_cursor per page)"
        } else {
            "one run at a time (feed_after, run() and set_cursor per run)"
        };
        println!(
            "  read {how}: {read} runs in {:.2} s = {:.0} runs/s, {:.3} ms per run",
            wall.as_secs_f64(),
            read as f64 / wall.as_secs_f64(),
            wall.as_secs_f64() * 1e3 / read.max(1) as f64
        );
        println!("  {split}");
        println!("{cpu}");
        if read != k.runs {
            return Err(format!("{read} of {} runs read back", k.runs));
        }
    }
    Ok(())
}

/// Reads the whole feed as the leader does now (`paged`: the page's runs loaded together,
/// the cursor saved once per page, as the analysis does under load) or as it did before
/// (each run loaded and the cursor saved after it); the runs read and the time split.
async fn read_feed(store: &Store, paged: bool) -> Res<(usize, String)> {
    let (mut page_t, mut cursor_t) = (Duration::ZERO, Duration::ZERO);
    let (mut position, mut pages, mut read) = (0, 0, 0usize);
    loop {
        let t = Instant::now();
        let page: Vec<(i64, Option<RunRecord>)> = if paged {
            let fed = store
                .feed()
                .feed_runs_after(position, 200)
                .await
                .map_err(err)?;
            fed.into_iter().map(|(e, r)| (e.seq, r)).collect()
        } else {
            let mut page = Vec::new();
            for e in store.feed().feed_after(position, 200).await.map_err(err)? {
                page.push((e.seq, store.runs().run(e.run_id).await.map_err(err)?));
            }
            page
        };
        page_t += t.elapsed();
        let Some(last) = page.last().map(|(seq, _)| *seq) else {
            break;
        };
        pages += 1;
        for (seq, run) in page {
            read += usize::from(run.is_some_and(|r| r.result.steps.len() == 3));
            if !paged {
                let t = Instant::now();
                store
                    .feed()
                    .set_cursor("analysis", seq)
                    .await
                    .map_err(err)?;
                cursor_t += t.elapsed();
            }
        }
        if paged {
            let t = Instant::now();
            store
                .feed()
                .set_cursor("analysis", last)
                .await
                .map_err(err)?;
            cursor_t += t.elapsed();
        }
        position = last;
    }
    let per_run = |d: Duration| d.as_secs_f64() * 1e3 / read.max(1) as f64;
    let split = format!(
        "per run: loading {:.3} ms ({pages} pages of ≤200), set_cursor {:.3} ms",
        per_run(page_t),
        per_run(cursor_t)
    );
    Ok((read, split))
}

/// Part 3: one settling pass over many unsettled claims.
async fn settle(store: &Store, db: &mut Db, k: &Knobs) -> Res {
    let (n, with_run) = (k.settle_claims, k.settle_claims / 2);
    // Claimed two days ago: part 1's claims (made now) are left alone.
    let base = DateTime::from_timestamp(Utc::now().timestamp() - 2 * 86_400, 0).ok_or("clock")?;
    // Runs without steps: settling looks for the run's row only, and they store faster.
    let stored = store_runs(store, ("s", with_run), base, &[]).await?;
    // The ticks `store_runs` gave the first half, then as many more without a run.
    let sql = || {
        AssertSqlSafe(format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1) \
             INSERT INTO run_claims (journey, location, planned_at_ns, node_id, claimed_at_ns) \
             SELECT 's' || CAST(i % {SPREAD} AS TEXT), '{LOCATION}', \
             $2 + (i / {SPREAD}) * {TICK_NS}, 'node-0', $2 FROM n"
        ))
    };
    let base_ns = base.timestamp_nanos_opt().ok_or("clock")?;
    let t = Instant::now();
    let inserted = with_pool!(store, p => sqlx::query(sql())
        .bind(n as i64)
        .bind(base_ns)
        .execute(p)
        .await
        .map(|d| d.rows_affected()))
    .map_err(err)?;
    if inserted != n as u64 {
        return Err(format!("{inserted} of {n} claims inserted"));
    }
    println!(
        "settle: {n} unsettled claims ({with_run} with a stored run, no steps: stored in {:.2} s; claims inserted in {:.2} s)",
        stored.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );

    let meter = Meter::start(db).await;
    // Every claim is due by age (as for a live node's claims); the silent-node branch is
    // evaluated too but selects nothing more.
    let due = base + chrono::Duration::seconds(1);
    let missed = store
        .cluster()
        .settle_claims(SettleCutoffs {
            claimed_before: due,
            silent_claimed_before: due,
            silent_since: base,
        })
        .await
        .map_err(err)?;
    let (wall, cpu) = meter.stop(db, (n, "claim"), (n, "claim")).await;
    let ran = count(
        store,
        "SELECT count(*) FROM run_claims WHERE outcome = 'ran'",
    )
    .await?;
    println!(
        "  one settle_claims: {:.3} s ({:.2} µs per claim); {ran} ran, {} missed",
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / n.max(1) as f64,
        missed.len()
    );
    println!("{cpu}");
    if missed.len() != n - with_run || ran != with_run as i64 {
        return Err(format!(
            "expected {with_run} ran and {} missed",
            n - with_run
        ));
    }
    Ok(())
}

/// Part 4: heartbeat + lease renewal, one node.
async fn beats(store: &Store, k: &Knobs) -> Res {
    let now = Utc::now();
    let mut node = NodeInfo {
        node_id: uuid::Uuid::new_v4().to_string(),
        location: LOCATION.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        hostname: "bench".into(),
        journeys_sha256: "0".repeat(64),
        started_at: now,
        heartbeat_at: now,
    };
    let ttl = chrono::Duration::from_std(LEASE_TTL).map_err(err)?;
    let mut latencies = Vec::with_capacity(k.beats);
    for _ in 0..k.beats {
        let now = Utc::now();
        node.heartbeat_at = now;
        let t = Instant::now();
        store.cluster().heartbeat(&node).await.map_err(err)?;
        let held = store
            .cluster()
            .acquire_lease("leader", &node.node_id, now, now + ttl)
            .await
            .map_err(err)?;
        latencies.push(t.elapsed());
        if !held {
            return Err("the leader lease was not renewed".into());
        }
    }
    let (p50, p99) = p50_p99(&mut latencies);
    println!(
        "beats: {} heartbeats + lease renewals, p50 {p50:.3} ms, p99 {p99:.3} ms",
        k.beats
    );
    Ok(())
}

async fn measure(which: &str, k: &Knobs) -> Res {
    println!("== {which} ==");
    let mut db = Db::open(which).await?;
    let result = async {
        // One pool per node for PostgreSQL (connected one after the other: each migrates).
        let pools = if which == "postgres" { k.nodes } else { 1 };
        let mut stores = Vec::new();
        for _ in 0..pools {
            stores.push(Store::connect(&db.url()).await.map_err(err)?);
        }
        claims(&stores, &mut db, k).await?;
        feed(&stores[0], &mut db, k).await?;
        settle(&stores[0], &mut db, k).await?;
        beats(&stores[0], k).await?;
        for s in &stores {
            s.close().await;
        }
        Ok(())
    }
    .await;
    db.drop_database().await;
    result
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let knobs = Knobs::from_env();
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut code = ExitCode::SUCCESS;
    for which in ["sqlite", "postgres"] {
        if which == "postgres" && std::env::var_os(PG_ENV).is_none() {
            println!("== postgres ==\nskipped: set {PG_ENV} to a PostgreSQL server URL");
            continue;
        }
        if let Err(e) = rt.block_on(measure(which, &knobs)) {
            eprintln!("{which}: FAILED: {e}");
            code = ExitCode::FAILURE;
        }
    }
    code
}
