//! Do readers blind the monitor? The real `waymark serve` (this build's binary, SQLite) runs
//! 200 journeys `every: 1s` against a loopback target while 50 clients read the status page
//! (`/`), `/status.json` and a logged-in `/app` overview as fast as they are answered, for 60 s.
//!
//! Printed: ticks due in the window and ticks run (from the stored runs' planned instants, so a
//! skipped or missed tick counts as not run), the scheduling lag of the runs (p50/p99/max, as
//! stored with each run), and per page requests answered, their latency p50/p95/p99 and bytes
//! per answer (gzip accepted, as browsers do); the load average before and after.
//!
//! The clients run in this process on threads at nice 10 (`CLIENT_NICE`): on a real deployment
//! readers are elsewhere, and on this 2-core machine their own CPU at nice 0 would be measured
//! as the service's; `CLIENT_NICE=0` measures that harsher case. The target runs at normal
//! priority (it is the system under test's dependency).
//!
//! Run: `cargo bench --bench scheduler_isolation`
//! (env: JOURNEYS=200 CLIENTS=50 DURATION_S=60 WARMUP_S=10 CLIENT_NICE=10; WAYMARK_BIN=path measures another
//! build of `waymark`, e.g. an earlier commit's, in the same conditions).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use sqlx::Connection;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn nice_this_thread() {
    let nice = env_or("CLIENT_NICE", 10) as libc::c_int;
    // SAFETY: setpriority(2) on this thread's own id; no memory is touched.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
}

const PASSWORD: &str = "bench-password-0123";
const PAGES: [&str; 3] = ["/", "/status.json", "/app"];

#[derive(Default)]
struct PageStats {
    latencies_ms: Vec<f64>,
    bytes: u64,
    errors: u64,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let journeys = env_or("JOURNEYS", 200) as usize;
    let clients = env_or("CLIENTS", 50) as usize;
    let duration = Duration::from_secs(env_or("DURATION_S", 60));
    let warmup = Duration::from_secs(env_or("WARMUP_S", 10));
    let load_before = loadavg();

    // The target: its own runtime, normal priority.
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = target_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/ok", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });

    let dir = tempfile::tempdir().unwrap();
    let journeys_dir = dir.path().join("journeys");
    std::fs::create_dir(&journeys_dir).unwrap();
    for i in 0..journeys {
        std::fs::write(
            journeys_dir.join(format!("j{i:03}.yaml")),
            format!(
                "name: j{i:03}\npublic: true\ngroup: Group {}\nschedule: {{ every: 1s }}\n\
                 steps:\n  - name: get\n    http: {{ url: \"http://{target}/ok\" }}\n",
                i % 10
            ),
        )
        .unwrap();
    }
    let config = dir.path().join("waymark.toml");
    std::fs::write(
        &config,
        format!(
            "[dashboard]\n[[dashboard.users]]\nname = \"bench\"\npassword_hash = \"{}\"\n",
            waymark::auth::PasswordHash::of(PASSWORD)
        ),
    )
    .unwrap();
    let db = dir.path().join("w.db");
    let binary =
        std::env::var("WAYMARK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_waymark").to_string());
    let mut child = Command::new(&binary)
        .args(["serve", "--config"])
        .arg(&config)
        .env("WAYMARK_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("WAYMARK_LISTEN", "127.0.0.1:0")
        .env("WAYMARK_JOURNEYS", &journeys_dir)
        .env("WAYMARK_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .expect("serve prints its address")
        .to_string();
    println!(
        "scheduler isolation ({binary}): {journeys} journeys every 1s, {clients} clients at nice {} for {} s, after {} s of warm-up; load average before: {load_before}",
        env_or("CLIENT_NICE", 10),
        duration.as_secs(),
        warmup.as_secs()
    );
    std::thread::sleep(warmup);

    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(nice_this_thread)
        .enable_all()
        .build()
        .unwrap();
    let stats: Arc<Mutex<Vec<PageStats>>> = Arc::new(Mutex::new(
        PAGES.iter().map(|_| PageStats::default()).collect(),
    ));
    let (window_start, window_end) = clients_rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let login = http
            .post(format!("{base}/app/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username=bench&password={PASSWORD}"))
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let start = chrono::Utc::now();
        let until = Instant::now() + duration;
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (http, base, cookie, stats) =
                    (http.clone(), base.clone(), cookie.clone(), stats.clone());
                tokio::spawn(async move {
                    let mut n = c;
                    while Instant::now() < until {
                        let page = n % PAGES.len();
                        n += 1;
                        let t = Instant::now();
                        let res = http
                            .get(format!("{base}{}", PAGES[page]))
                            .header("accept-encoding", "gzip")
                            .header("cookie", &cookie)
                            .send()
                            .await;
                        let answered = match res {
                            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                            _ => None,
                        };
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        let mut s = stats.lock().unwrap();
                        match answered {
                            Some(body) => {
                                s[page].latencies_ms.push(ms);
                                s[page].bytes += body.len() as u64;
                            }
                            None => s[page].errors += 1,
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (start, chrono::Utc::now())
    });
    let load_after = loadavg();
    // The last runs of the window are stored within a second or so.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();

    // Ticks due in [start + 1 s, end - 1 s): each journey ticks once a second at its own
    // offset, read from any of its stored runs.
    let (from, to) = (
        (window_start + chrono::Duration::seconds(1))
            .timestamp_nanos_opt()
            .unwrap(),
        (window_end - chrono::Duration::seconds(1))
            .timestamp_nanos_opt()
            .unwrap(),
    );
    let rows: Vec<(String, i64, f64)> = target_rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_as("SELECT journey, planned_at_ns, scheduling_lag_ms FROM runs")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    let mut offsets = std::collections::BTreeMap::new();
    let mut ran = std::collections::BTreeSet::new();
    let mut lags = Vec::new();
    for (journey, planned, lag) in &rows {
        offsets
            .entry(journey.clone())
            .or_insert(planned.rem_euclid(1_000_000_000));
        if (from..to).contains(planned) {
            ran.insert((journey.clone(), *planned));
            lags.push(*lag);
        }
    }
    let due: i64 = offsets
        .values()
        .map(|&offset| {
            // Instants offset + k·1 s in [from, to).
            let first = from + (offset - from).rem_euclid(1_000_000_000);
            if first >= to {
                0
            } else {
                (to - 1 - first) / 1_000_000_000 + 1
            }
        })
        .sum();
    let due = due + (journeys - offsets.len()) as i64 * ((to - from) / 1_000_000_000);
    lags.sort_by(f64::total_cmp);
    println!(
        "ticks: {} due, {} run ({:.3} %); scheduling lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        due,
        ran.len(),
        100.0 * ran.len() as f64 / due.max(1) as f64,
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
    );
    let seconds = duration.as_secs_f64();
    for (page, s) in PAGES.iter().zip(stats.lock().unwrap().iter_mut()) {
        s.latencies_ms.sort_by(f64::total_cmp);
        let n = s.latencies_ms.len();
        println!(
            "{page:<13} {n:>7} answers ({:.0}/s), {} errors; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; {:.1} KB per answer",
            n as f64 / seconds,
            s.errors,
            percentile(&s.latencies_ms, 0.5),
            percentile(&s.latencies_ms, 0.95),
            percentile(&s.latencies_ms, 0.99),
            s.bytes as f64 / n.max(1) as f64 / 1000.0,
        );
    }
    println!("load average after: {load_after}");
}
