//! What does tracing cost per step? CPU time of the Waymark process per step with each run's
//! trace exported over OTLP (HTTP/protobuf and gRPC) against tracing "off" (spans created for
//! their ids and `traceparent`, nothing recorded or exported — what `Runner::run` does).
//!
//! The target HTTP server and the OTLP collectors run in a child process (this binary with
//! `--serve-peers`), so the process CPU time measured here (`getrusage(RUSAGE_SELF)`: user +
//! system, all threads, the exporter's included) is Waymark's own: runner, HTTP client, span
//! building, protobuf encoding and the export requests. Rounds alternate between the modes and
//! each reports CPU time per step; the figures are the medians over rounds.
//!
//! Run: `cargo bench --bench trace_overhead` (env: RUNS=200 per round, ROUNDS=9).

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use waymark::journey::parse::{ParseOptions, parse_journey};
use waymark::journey::template::EnvSecrets;
use waymark::run::Outcome;
use waymark::runner::Runner;
use waymark::telemetry::{ExportConfig, Protocol, Telemetry, TelemetryConfig};

const STEPS: usize = 5;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and has no other effect.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Sink;

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        // Decode like a collector would; the spans are then dropped.
        let _ = request.into_inner();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The child: a target answering `/ok` and OTLP/HTTP and OTLP/gRPC collectors, on loopback,
/// until its stdin closes.
fn serve_peers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "{} {} {}",
            target.local_addr().unwrap(),
            http.local_addr().unwrap(),
            grpc.local_addr().unwrap()
        );
        let app = Router::new().route("/ok", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(target, app).await.unwrap() });
        let collector = Router::new().route(
            "/v1/traces",
            post(|body: axum::body::Bytes| async move {
                let _ = ExportTraceServiceRequest::decode(body.as_ref());
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }),
        );
        tokio::spawn(async move { axum::serve(http, collector).await.unwrap() });
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Sink))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc))
                .await
                .unwrap()
        });
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
    });
}

fn main() {
    if std::env::args().any(|a| a == "--serve-peers") {
        return serve_peers();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runs = env_or("RUNS", 200);
    let rounds = env_or("ROUNDS", 9);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve-peers")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("peers start");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: Vec<&str> = line.split_whitespace().collect();
    let (target, http, grpc) = (addrs[0], addrs[1], addrs[2]);

    let yaml = format!(
        "name: bench\nsteps:\n{}",
        (0..STEPS)
            .map(|i| format!(
                "  - name: step {i}\n    http: {{ url: \"{{{{ base }}}}/ok?i={i}\" }}\n    conditions: [\"[STATUS] == 200\", \"[BODY] == ok\"]\n"
            ))
            .collect::<String>()
    );
    let overrides: BTreeMap<String, String> =
        [("base".to_string(), format!("http://{target}"))].into();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journey = parse_journey(&yaml, Path::new("bench.yaml"), &opts).expect("journey parses");
    let runner = |telemetry: &Telemetry| Runner {
        location: "bench".into(),
        secrets: Arc::new(EnvSecrets::default()),
        overrides: overrides.clone(),
        telemetry: telemetry.clone(),
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let export = |protocol: Protocol, addr: &str| TelemetryConfig {
        export: Some(ExportConfig::new(
            protocol,
            protocol.endpoint_from_base(&format!("http://{addr}")),
        )),
        ..TelemetryConfig::default()
    };
    let telemetries: Vec<(&str, Telemetry)> = rt.block_on(async {
        vec![
            ("off", Telemetry::disabled()),
            (
                "otlp http/protobuf",
                Telemetry::new(&export(Protocol::HttpProtobuf, http)).unwrap(),
            ),
            (
                "otlp grpc",
                Telemetry::new(&export(Protocol::Grpc, grpc)).unwrap(),
            ),
        ]
    });

    let modes: Vec<(&str, Telemetry, Runner)> = telemetries
        .into_iter()
        .map(|(name, t)| {
            let r = runner(&t);
            (name, t, r)
        })
        .collect();

    // Warm up: connections, allocator, lazy statics.
    for (_, t, runner) in &modes {
        rt.block_on(async {
            for _ in 0..20 {
                runner.run(&journey).await;
            }
            t.flush().await;
        });
    }

    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        // Alternate the order so that drift does not favour one mode.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..modes.len()).collect()
        } else {
            (0..modes.len()).rev().collect()
        };
        for i in order {
            let (_, t, runner) = &modes[i];
            let (c0, w0) = (cpu_time(), Instant::now());
            rt.block_on(async {
                for _ in 0..runs {
                    let r = runner.run(&journey).await;
                    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
                }
                // The export of this round's spans is part of its cost.
                t.flush().await;
            });
            let steps = (runs * STEPS) as f64;
            cpu[i].push((cpu_time() - c0).as_secs_f64() * 1e6 / steps);
            wall[i].push(w0.elapsed().as_secs_f64() * 1e6 / steps);
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();

    println!(
        "{runs} runs × {STEPS} HTTP steps per round, {rounds} rounds, loopback; medians over rounds"
    );
    println!(
        "{:<20} {:>14} {:>14} {:>18} {:>10}",
        "tracing", "CPU µs/step", "wall µs/step", "CPU vs off", "spans lost"
    );
    let base = median(cpu[0].clone());
    for (i, (name, t, _)) in modes.iter().enumerate() {
        let c = median(cpu[i].clone());
        let w = median(wall[i].clone());
        let vs = if i == 0 {
            String::new()
        } else {
            format!("{:+.1} µs ({:+.1}%)", c - base, (c - base) / base * 100.0)
        };
        println!(
            "{name:<20} {c:>14.1} {w:>14.1} {vs:>18} {:>10}",
            t.stats().spans_lost
        );
    }
}
