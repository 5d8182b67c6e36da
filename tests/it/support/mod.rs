//! Shared test helpers: a hostile-but-honest HTTP server and a one-call journey runner here;
//! the `waymark serve` harness in [`serve`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use waymark::journey::parse::ParseOptions;
use waymark::journey::template::SecretSource;
use waymark::run::RunResult;
use waymark::run::testkit::journey_from;
use waymark::runner::Runner;
use waymark::telemetry::Telemetry;

pub mod serve;

#[derive(Default)]
struct Counters {
    flaky: Mutex<BTreeMap<String, u32>>,
    deleted: Mutex<Vec<u64>>,
    next: AtomicU32,
}

/// A test target on a random loopback port, with endpoints for each behaviour under test.
pub struct TestServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct Size {
    bytes: Option<usize>,
    ms: Option<u64>,
    fail: Option<u32>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let counters = Arc::new(Counters::default());
        let app = Router::new()
            .route("/status/{code}", get(|UrlPath(code): UrlPath<u16>| async move {
                (StatusCode::from_u16(code).unwrap(), format!("status {code}"))
            }))
            .route("/never", get(std::future::pending::<&'static str>))
            .route("/slow", get(|Query(q): Query<Size>| async move {
                tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(0))).await;
                "slow"
            }))
            .route("/big", get(big))
            .route("/redirect/{n}", get(|UrlPath(n): UrlPath<u32>| async move {
                if n == 0 {
                    Json(json!({ "redirected": true })).into_response()
                } else {
                    (StatusCode::FOUND, [(header::LOCATION, format!("/redirect/{}", n - 1))]).into_response()
                }
            }))
            .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }))
            .route("/flaky/{key}", get(flaky))
            .route("/echo", any(echo))
            .route("/json", get(|| async {
                Json(json!({
                    "user": { "id": 7, "name": "Ada Lovelace", "roles": ["admin", "dev"], "active": true },
                    "items": [ { "id": 1, "sku": "A-1" }, { "id": 2, "sku": "B-2" } ],
                    "empty": [],
                    "count": 2,
                    "price": 12.5,
                    "nothing": null
                }))
            }))
            .route("/resources", post(create_resource))
            .route("/resources/{id}", delete(delete_resource))
            .route("/deleted", get(deleted))
            .with_state(counters.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            base,
            task,
            counters,
        }
    }

    pub fn deleted(&self) -> Vec<u64> {
        self.counters.deleted.lock().unwrap().clone()
    }
}

async fn big(Query(q): Query<Size>) -> Response {
    let total = q.bytes.unwrap_or(1024);
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = (0..total.div_ceil(chunk.len())).map(move |i| {
        let n = (total - i * chunk.len()).min(chunk.len());
        Ok::<_, std::io::Error>(chunk[..n].to_vec())
    });
    Body::from_stream(futures_util::stream::iter(chunks)).into_response()
}

async fn flaky(
    State(c): State<Arc<Counters>>,
    UrlPath(key): UrlPath<String>,
    Query(q): Query<Size>,
) -> Response {
    let mut map = c.flaky.lock().unwrap();
    let seen = map.entry(key).or_default();
    *seen += 1;
    if *seen <= q.fail.unwrap_or(0) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("attempt {seen} fails"),
        )
            .into_response()
    } else {
        Json(json!({ "attempt": *seen })).into_response()
    }
}

async fn echo(
    method: Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: String,
) -> Json<serde_json::Value> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Json(
        json!({ "method": method.as_str(), "uri": uri.to_string(), "headers": headers, "body": body }),
    )
}

async fn create_resource(State(c): State<Arc<Counters>>) -> Response {
    let id = c.next.fetch_add(1, Ordering::SeqCst) + 100;
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/resources/{id}"))],
        Json(json!({ "id": id })),
    )
        .into_response()
}

async fn delete_resource(State(c): State<Arc<Counters>>, UrlPath(id): UrlPath<u64>) -> StatusCode {
    c.deleted.lock().unwrap().push(id);
    StatusCode::NO_CONTENT
}

async fn deleted(State(c): State<Arc<Counters>>) -> Json<Vec<u64>> {
    Json(c.deleted.lock().unwrap().clone())
}

/// Secrets from a fixed map, as a secrets file would provide them.
pub struct MapSecrets(pub BTreeMap<String, String>);

impl SecretSource for MapSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn env(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Parses `yaml` (which may use `{{ base }}`) and runs it once against `base`.
pub async fn run_yaml(yaml: &str, base: &str, secrets: &[(&str, &str)]) -> RunResult {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `feed` is the WebSocket twin of `base`, as `waymark demo` sets it.
    let feed = base.replacen("http://", "ws://", 1);
    let overrides: BTreeMap<String, String> = [
        ("base".to_string(), base.to_string()),
        ("feed".to_string(), feed),
    ]
    .into();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journey = journey_from(yaml, "test.yaml", &opts);
    let secrets = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let runner = Runner {
        location: "test".into(),
        secrets: Arc::new(MapSecrets(secrets)),
        overrides,
        telemetry: Telemetry::disabled(),
    };
    runner.run(&journey).await
}

/// The URL of the httpbin started by scripts/test.sh.
pub fn httpbin() -> String {
    env_url("HTTPBIN_URL")
}

/// A peer URL exported by scripts/test.sh, which starts the peer.
pub fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts that peer")
    })
}
