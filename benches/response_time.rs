//! How much does `[RESPONSE_TIME]` overstate a server's known delay, compared with curl?
//!
//! Starts a loopback HTTP server whose handler sleeps a fixed delay and records how long each
//! handler really took (timers overshoot by up to a millisecond), then measures N requests with
//! a Waymark HTTP step (`[RESPONSE_TIME]` = the step's total time) and N with
//! `curl -w %{time_total}` against the same server, each on a new connection, and prints the
//! overstatement (measured − the server's own handler time) at p50 and p99 for both.
//!
//! Run: `cargo bench --bench response_time` (env: N=1000 DELAY_MS=20).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use waymark::journey::parse::{ParseOptions, parse_journey};
use waymark::journey::template::EnvSecrets;
use waymark::run::Outcome;
use waymark::runner::Runner;
use waymark::telemetry::Telemetry;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn over(measured: Vec<f64>, handled: Vec<f64>) -> Vec<f64> {
    assert_eq!(
        measured.len(),
        handled.len(),
        "one handler time per request"
    );
    measured.iter().zip(&handled).map(|(m, h)| m - h).collect()
}

fn summary(name: &str, mut over: Vec<f64>) -> (f64, f64) {
    over.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&over, 0.50), percentile(&over, 0.99));
    println!(
        "{name:<22} p50 {p50:>7.3} ms   p99 {p99:>7.3} ms   min {:>7.3} ms   max {:>7.3} ms",
        over[0],
        over[over.len() - 1]
    );
    (p50, p99)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_or("N", 1000) as usize;
    let delay_ms = env_or("DELAY_MS", 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handled: Arc<Mutex<Vec<f64>>> = Arc::default();
    let record = handled.clone();
    let app = Router::new().route(
        "/delay",
        get(move || {
            let record = record.clone();
            async move {
                let started = Instant::now();
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                record.lock().unwrap().push(ms);
                "ok"
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let yaml = "name: bench\nsteps:\n  - name: delay\n    http: { url: \"{{ base }}/delay\" }\n    conditions: [\"[STATUS] == 200\"]\n";
    let overrides: BTreeMap<String, String> = [("base".to_string(), base.clone())].into();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journey =
        parse_journey(yaml, Path::new("bench.yaml"), &opts).expect("bench journey parses");
    let runner = Runner {
        location: "bench".into(),
        secrets: Arc::new(EnvSecrets::default()),
        overrides,
        telemetry: Telemetry::disabled(),
    };

    // Requests are sequential, so the i-th handler time belongs to the i-th request.
    let take_handled = || std::mem::take(&mut *handled.lock().unwrap());
    let mut waymark = Vec::with_capacity(n);
    for _ in 0..n {
        let r = rt.block_on(runner.run(&journey));
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        let total = r.steps[0].timings.total.expect("total recorded");
        waymark.push(total.as_secs_f64() * 1000.0);
    }
    let waymark = over(waymark, take_handled());
    let mut curl = Vec::with_capacity(n);
    let url = format!("{base}/delay");
    for _ in 0..n {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{time_total}", &url])
            .output()
            .expect("curl is installed");
        let secs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("curl prints time_total");
        curl.push(secs * 1000.0);
    }
    let curl = over(curl, take_handled());
    println!("server delay {delay_ms} ms, {n} requests each, new connection per request, loopback");
    println!("overstatement = measured − the server's handler time for that request");
    let (w50, w99) = summary("waymark [RESPONSE_TIME]", waymark);
    let (c50, c99) = summary("curl time_total", curl);
    println!(
        "waymark − curl: p50 {:+.3} ms, p99 {:+.3} ms",
        w50 - c50,
        w99 - c99
    );
}
