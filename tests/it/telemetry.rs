//! Every run is an OpenTelemetry trace: journeys run against loopback targets and export to
//! in-test OTLP receivers — gRPC (tonic) and HTTP/protobuf (axum) — that decode the real
//! protobuf, and to an independent Python receiver started by scripts/test.sh. The tests check
//! the span tree, the attributes, the events, the status, and that the targets received a
//! `traceparent` naming the attempt span as their parent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::{Value, json};

use waymark::journey::parse::ParseOptions;
use waymark::run::testkit::journey_from;
use waymark::run::{Outcome, RunResult, StepStatus};
use waymark::runner::Runner;
use waymark::telemetry::{ExportConfig, Propagators, Protocol, Telemetry, TelemetryConfig};

use crate::support::{MapSecrets, TestServer, env_url};

// ---------------------------------------------------------------------------------------------
// Receivers

/// One span as a receiver decoded it, the same shape whichever receiver it came from.
#[derive(Debug, Clone)]
struct FlatSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    /// `SPAN_KIND_CLIENT`, ...
    kind: String,
    attributes: BTreeMap<String, Value>,
    events: Vec<(String, BTreeMap<String, Value>)>,
    /// `STATUS_CODE_ERROR`, ...
    status_code: String,
    status_message: String,
    resource: BTreeMap<String, Value>,
}

impl FlatSpan {
    fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }

    fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }
}

fn any_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().map(any_json).collect(),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, any_json),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => json!(hex::encode(b)),
        _ => Value::Null,
    }
}

fn kvs(list: &[KeyValue]) -> BTreeMap<String, Value> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, any_json),
            )
        })
        .collect()
}

fn flatten(requests: &[ExportTraceServiceRequest]) -> Vec<FlatSpan> {
    let mut out = Vec::new();
    for req in requests {
        for rs in &req.resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| kvs(&r.attributes))
                .unwrap_or_default();
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let status = s.status.clone().unwrap_or_default();
                    out.push(FlatSpan {
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent_span_id: hex::encode(&s.parent_span_id),
                        name: s.name.clone(),
                        kind: s.kind().as_str_name().to_string(),
                        attributes: kvs(&s.attributes),
                        events: s
                            .events
                            .iter()
                            .map(|e| (e.name.clone(), kvs(&e.attributes)))
                            .collect(),
                        status_code: status.code().as_str_name().to_string(),
                        status_message: status.message,
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    out
}

/// What a receiver got: decoded requests, raw bodies and request headers.
#[derive(Clone, Default)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    headers: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

impl Received {
    fn push(
        &self,
        raw: Vec<u8>,
        req: ExportTraceServiceRequest,
        headers: BTreeMap<String, String>,
    ) {
        self.raw.lock().unwrap().push(raw);
        self.requests.lock().unwrap().push(req);
        self.headers.lock().unwrap().push(headers);
    }

    fn spans(&self, trace_id: &str) -> Vec<FlatSpan> {
        flatten(&self.requests.lock().unwrap())
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

struct Receiver {
    /// The collector's base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT` would be).
    base: String,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct GrpcSink(Received);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let req = request.into_inner();
        self.0.push(req.encode_to_vec(), req, headers);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// An OTLP/gRPC collector (tonic, the generated `TraceService`).
    async fn grpc() -> Receiver {
        let received = Received::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(GrpcSink(received.clone()));
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Receiver {
            base,
            received,
            task,
        }
    }

    /// An OTLP/HTTP collector: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
    async fn http() -> Receiver {
        async fn traces(
            State(received): State<Received>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ct != "application/x-protobuf" {
                return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
            }
            let Ok(req) = ExportTraceServiceRequest::decode(body.as_ref()) else {
                return (StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest")
                    .into_response();
            };
            let headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            received.push(body.to_vec(), req, headers);
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        let received = Received::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            base,
            received,
            task,
        }
    }
}

/// Spans of one trace from the Python receiver (`tests/peers/otlp_receiver.py`).
async fn python_spans(base: &str, trace_id: &str) -> Vec<FlatSpan> {
    let url = format!("{base}/spans?trace_id={trace_id}");
    let body = tokio::task::spawn_blocking(move || {
        let o = std::process::Command::new("curl")
            .args(["-fsS", &url])
            .output()
            .expect("curl runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    })
    .await
    .unwrap();
    let obj = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    body.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            FlatSpan {
                trace_id: s("trace_id"),
                span_id: s("span_id"),
                parent_span_id: s("parent_span_id"),
                name: s("name"),
                kind: s("kind"),
                attributes: obj(&v["attributes"]),
                events: v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap().to_string(),
                            obj(&e["attributes"]),
                        )
                    })
                    .collect(),
                status_code: v["status"]["code"].as_str().unwrap().to_string(),
                status_message: v["status"]["message"].as_str().unwrap().to_string(),
                resource: obj(&v["resource"]),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A target that remembers the headers of every request and WebSocket upgrade

type Headers = BTreeMap<String, String>;

/// `(route, request headers)` of every request, in arrival order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Headers)>>>);

impl Seen {
    fn record(&self, what: &str, headers: &HeaderMap) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        self.0.lock().unwrap().push((what.to_string(), headers));
    }

    fn get(&self, what: &str) -> Vec<BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

struct Backend {
    base: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    async fn start() -> Backend {
        async fn record(
            State(seen): State<Seen>,
            headers: HeaderMap,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> axum::Json<Value> {
            seen.record("record", &headers);
            axum::Json(json!({ "ok": true, "query": q }))
        }
        async fn ws(
            State(seen): State<Seen>,
            headers: HeaderMap,
            up: WebSocketUpgrade,
        ) -> Response {
            seen.record("ws", &headers);
            up.on_upgrade(|mut socket| async move {
                let _ = socket
                    .send(Message::Text(r#"{"type":"hello"}"#.into()))
                    .await;
                while let Some(Ok(m)) = socket.recv().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
        }
        let seen = Seen::default();
        let app = Router::new()
            .route("/record", any(record))
            .route("/ws", get(ws))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Backend { base, seen, task }
    }
}

// ---------------------------------------------------------------------------------------------
// Running journeys with a telemetry

fn export_to(protocol: Protocol, base: &str) -> TelemetryConfig {
    TelemetryConfig {
        export: Some(ExportConfig::new(
            protocol,
            protocol.endpoint_from_base(base),
        )),
        ..TelemetryConfig::default()
    }
}

async fn run_traced(
    yaml: &str,
    vars: &[(&str, &str)],
    secrets: &[(&str, &str)],
    telemetry: &Telemetry,
) -> RunResult {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let overrides: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = ParseOptions {
        extra_vars: overrides.keys().cloned().collect(),
        ..ParseOptions::default()
    };
    let journey = journey_from(yaml, "traced.yaml", &opts);
    let runner = Runner {
        location: "it".into(),
        secrets: Arc::new(MapSecrets(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )),
        overrides,
        telemetry: telemetry.clone(),
    };
    runner.run(&journey).await
}

/// Six steps: a recorded request (with a credential in its query), a step that passes on its
/// second attempt, a WebSocket conversation, a failing condition, an `always_run` cleanup and
/// a step skipped because of the failure.
const TREE_JOURNEY: &str = r#"
name: traced-shop
steps:
  - name: record
    http:
      url: "{{ rec }}/record?page=2&token=abc123"
      headers: { X-Probe: "yes" }
    conditions: ["[STATUS] == 200"]
  - name: flaky
    http: { url: "{{ base }}/flaky/tree?fail=1" }
    retries: { count: 1, delay: 10ms }
    conditions: ["[STATUS] == 200"]
  - name: feed
    websocket:
      url: "{{ recws }}/ws"
      actions:
        - expect: { conditions: ["[MESSAGE].type == hello"], timeout: 2s }
        - close: {}
  - name: user
    http: { url: "{{ base }}/json" }
    conditions: ["[STATUS] == 200", "[BODY].user.id == 8"]
  - name: cleanup
    always_run: true
    wait: 1ms
  - name: after
    wait: 1ms
"#;

struct Targets {
    srv: TestServer,
    backend: Backend,
}

impl Targets {
    async fn start() -> Targets {
        Targets {
            srv: TestServer::start().await,
            backend: Backend::start().await,
        }
    }

    async fn run(&self, telemetry: &Telemetry) -> RunResult {
        let recws = self.backend.base.replacen("http://", "ws://", 1);
        let r = run_traced(
            TREE_JOURNEY,
            &[
                ("base", &self.srv.base),
                ("rec", &self.backend.base),
                ("recws", &recws),
            ],
            &[],
            telemetry,
        )
        .await;
        let statuses: Vec<_> = r.steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Passed,
                StepStatus::Passed,
                StepStatus::Passed,
                StepStatus::Failed,
                StepStatus::Passed,
                StepStatus::Skipped
            ],
            "{:#?}",
            r.steps
        );
        r
    }
}

fn one<'a>(spans: &'a [FlatSpan], name: &str) -> &'a FlatSpan {
    let found: Vec<&FlatSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span `{name}` in {spans:#?}");
    found[0]
}

/// The span tree of [`TREE_JOURNEY`], whichever receiver decoded it, and the trace context
/// the targets received.
fn assert_tree(spans: &[FlatSpan], r: &RunResult, seen: &Seen) {
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.trace_id.len(), 32);
    // Root + record + 2 × flaky + feed + user + cleanup + after.
    assert_eq!(spans.len(), 8, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == r.trace_id));

    let root = one(spans, "journey traced-shop");
    assert_eq!(root.parent_span_id, "");
    assert_eq!(root.kind, "SPAN_KIND_INTERNAL");
    assert_eq!(root.attr("waymark.journey.name"), "traced-shop");
    assert_eq!(root.attr("waymark.run.id"), &json!(r.run_id.to_string()));
    assert_eq!(root.attr("waymark.location"), "it");
    assert_eq!(root.attr("waymark.run.outcome"), "failed");
    assert_eq!(root.status_code, "STATUS_CODE_ERROR");
    assert!(
        root.status_message.contains("user"),
        "{}",
        root.status_message
    );
    assert_eq!(root.resource.get("service.name"), Some(&json!("waymark")));
    for s in spans.iter().filter(|s| s.span_id != root.span_id) {
        assert_eq!(
            s.parent_span_id, root.span_id,
            "{} is a child of the root",
            s.name
        );
    }

    // A plain HTTP request: semantic conventions, phases, no credential in url.full.
    let record = one(spans, "http record");
    assert_eq!(record.kind, "SPAN_KIND_CLIENT");
    assert_eq!(record.span_id, r.steps[0].span_id);
    assert_eq!(record.attr("http.request.method"), "GET");
    let port = r.steps[0]
        .request
        .as_ref()
        .unwrap()
        .url
        .split(':')
        .nth(2)
        .unwrap();
    let port: i64 = port.split('/').next().unwrap().parse().unwrap();
    assert_eq!(
        record.attr("url.full"),
        &json!(format!(
            "http://127.0.0.1:{port}/record?page=2&token=REDACTED"
        ))
    );
    assert_eq!(record.attr("server.address"), "127.0.0.1");
    assert_eq!(record.attr("server.port"), &json!(port));
    assert_eq!(record.attr("http.response.status_code"), &json!(200));
    assert_eq!(record.attr("network.protocol.version"), "1.1");
    assert_eq!(record.attr("network.peer.address"), "127.0.0.1");
    assert_eq!(record.attr("waymark.step.status"), "passed");
    assert_eq!(record.attributes.get("error.type"), None);
    assert_eq!(record.status_code, "STATUS_CODE_UNSET");
    let events = record.event_names();
    for phase in ["connect", "ttfb", "download"] {
        assert!(events.contains(&phase), "{phase} in {events:?}");
    }
    let connect = &record
        .events
        .iter()
        .find(|(n, _)| n == "connect")
        .unwrap()
        .1;
    assert!(connect["waymark.phase.duration_ms"].as_f64().unwrap() > 0.0);

    // The target saw the attempt span as its parent, and the run in tracestate.
    let got = seen.get("record");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].get("traceparent"),
        Some(&format!("00-{}-{}-01", r.trace_id, record.span_id))
    );
    assert_eq!(
        got[0].get("tracestate"),
        Some(&format!("waymark={}", r.run_id))
    );

    // A retried step: one span per attempt, the first one failed on its status.
    let flaky: Vec<&FlatSpan> = spans.iter().filter(|s| s.name == "http flaky").collect();
    assert_eq!(flaky.len(), 2, "{spans:#?}");
    let (first, second) = if flaky[0].attr("waymark.step.attempt") == &json!(1) {
        (flaky[0], flaky[1])
    } else {
        (flaky[1], flaky[0])
    };
    assert_eq!(
        r.steps[1].attempt_span_ids,
        [first.span_id.clone(), second.span_id.clone()]
    );
    assert_eq!(r.steps[1].span_id, second.span_id);
    assert_eq!(first.status_code, "STATUS_CODE_ERROR");
    assert_eq!(first.status_message, "[STATUS] == 200 (actual: 503)");
    assert_eq!(first.attr("http.response.status_code"), &json!(503));
    assert_eq!(first.attr("error.type"), "503");
    assert_eq!(first.attr("waymark.step.final_attempt"), &json!(false));
    assert_eq!(second.status_code, "STATUS_CODE_UNSET");
    assert_eq!(second.attr("http.request.resend_count"), &json!(1));
    assert_eq!(second.attr("waymark.step.attempt"), &json!(2));
    assert_eq!(second.attr("waymark.step.final_attempt"), &json!(true));

    // The WebSocket upgrade carried the attempt span's context too.
    let feed = one(spans, "websocket feed");
    assert_eq!(feed.kind, "SPAN_KIND_CLIENT");
    assert_eq!(feed.attr("network.protocol.name"), "websocket");
    assert!(feed.attr("url.full").as_str().unwrap().ends_with("/ws"));
    assert!(
        feed.event_names().contains(&"websocket.expect"),
        "{:?}",
        feed.events
    );
    let got = seen.get("ws");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].get("traceparent"),
        Some(&format!("00-{}-{}-01", r.trace_id, feed.span_id))
    );

    // A failed condition: error status with the expression and the actual value.
    let user = one(spans, "http user");
    assert_eq!(user.status_code, "STATUS_CODE_ERROR");
    assert_eq!(user.status_message, "[BODY].user.id == 8 (actual: 7)");
    assert_eq!(user.attr("error.type"), "condition");
    let failed: Vec<_> = user
        .events
        .iter()
        .filter(|(n, a)| n == "condition" && a["waymark.condition.passed"] == json!(false))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", user.events);
    assert_eq!(
        failed[0].1["waymark.condition.expression"],
        "[BODY].user.id == 8"
    );
    assert_eq!(failed[0].1["waymark.condition.actual"], "7");

    let cleanup = one(spans, "wait cleanup");
    assert_eq!(cleanup.kind, "SPAN_KIND_INTERNAL");
    assert_eq!(cleanup.attr("waymark.step.status"), "passed");
    let after = one(spans, "wait after");
    assert_eq!(after.attr("waymark.step.status"), "skipped");
    assert_eq!(
        after.attr("waymark.step.skip_reason"),
        "an earlier step failed"
    );
    assert_eq!(after.span_id, r.steps[5].span_id);
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Runs the journey exporting to `receiver` over `protocol`: all 8 spans exported, none
/// lost, and the receiver decodes the expected tree.
async fn receiver_gets_the_span_tree(receiver: Receiver, protocol: Protocol) {
    let targets = Targets::start().await;
    let telemetry = Telemetry::new(&export_to(protocol, &receiver.base)).unwrap();
    let r = targets.run(&telemetry).await;
    let stats = telemetry.flush().await;
    assert_eq!(
        (stats.spans_exported, stats.spans_lost),
        (8, 0),
        "{stats:?}"
    );
    assert_tree(
        &receiver.received.spans(&r.trace_id),
        &r,
        &targets.backend.seen,
    );
}

#[tokio::test]
async fn grpc_receiver_gets_the_span_tree_of_a_run() {
    receiver_gets_the_span_tree(Receiver::grpc().await, Protocol::Grpc).await;
}

#[tokio::test]
async fn http_protobuf_receiver_gets_the_span_tree_of_a_run() {
    receiver_gets_the_span_tree(Receiver::http().await, Protocol::HttpProtobuf).await;
}

/// The same tree, decoded by Python's `opentelemetry-proto` (scripts/test.sh starts it).
#[tokio::test]
async fn python_receiver_decodes_the_same_span_tree() {
    let py = env_url("OTLP_PY_URL");
    let targets = Targets::start().await;
    let telemetry = Telemetry::new(&export_to(Protocol::HttpProtobuf, &py)).unwrap();
    let r = targets.run(&telemetry).await;
    let stats = telemetry.flush().await;
    assert_eq!(
        (stats.spans_exported, stats.spans_lost),
        (8, 0),
        "{stats:?}"
    );
    assert_tree(
        &python_spans(&py, &r.trace_id).await,
        &r,
        &targets.backend.seen,
    );
}

#[tokio::test]
async fn an_unreachable_collector_costs_no_run_time_and_the_loss_is_counted() {
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let srv = TestServer::start().await;
    let yaml = "name: down\nsteps:\n  - { name: a, http: { url: \"{{ base }}/status/200\" } }\n  - { name: b, http: { url: \"{{ base }}/status/200\" } }\n";
    // The same journey without export, for the time it normally takes.
    let started = Instant::now();
    run_traced(yaml, &[("base", &srv.base)], &[], &Telemetry::disabled()).await;
    let normal = started.elapsed();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let mut config = export_to(protocol, &closed);
        config.export.as_mut().unwrap().scheduled_delay = Duration::from_millis(1);
        let telemetry = Telemetry::new(&config).unwrap();
        let started = Instant::now();
        for _ in 0..3 {
            let r = run_traced(yaml, &[("base", &srv.base)], &[], &telemetry).await;
            assert_eq!(r.outcome, Outcome::Passed, "{protocol:?}");
        }
        let took = started.elapsed();
        assert!(
            took < normal * 3 + Duration::from_secs(1),
            "{protocol:?}: 3 runs took {took:?}, one normally {normal:?}"
        );
        let started = Instant::now();
        let stats = telemetry.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(6), "{protocol:?}");
        assert_eq!(stats.spans_ended, 9, "{protocol:?}: {stats:?}");
        assert_eq!(stats.spans_exported, 0, "{protocol:?}: {stats:?}");
        assert_eq!(stats.spans_lost, 9, "{protocol:?}: {stats:?}");
        assert!(stats.failed_exports >= 1, "{protocol:?}: {stats:?}");
    }
}

/// Secrets rendered into a URL, a header and a body, echoed back by the target into a failing
/// condition's actual value, and a value extracted by a `sensitive` step: none of them reaches
/// the collector, in any byte of any request.
#[tokio::test]
async fn secrets_never_reach_the_collector() {
    let receiver = Receiver::http().await;
    let srv = TestServer::start().await;
    let telemetry = Telemetry::new(&export_to(Protocol::HttpProtobuf, &receiver.base)).unwrap();
    const SECRET: &str = "pa55-w0rd-61c3a9";
    let yaml = r#"
name: secretive
steps:
  - name: login
    sensitive: true
    http:
      method: POST
      url: "{{ base }}/echo?pw={{ secret.PW }}"
      headers: { X-Sess: "sess-7f3e19d2c4" }
      json: { password: "{{ secret.PW }}" }
    extract: { session: "[BODY].headers.x-sess" }
  - name: use
    http:
      url: "{{ base }}/echo?s={{ session }}"
      headers: { X-Session: "{{ session }}", X-Key: "{{ secret.PW }}" }
    conditions: ["[BODY].headers.x-key == nope"]
"#;
    let r = run_traced(yaml, &[("base", &srv.base)], &[("PW", SECRET)], &telemetry).await;
    assert_eq!(r.steps[0].status, StepStatus::Passed, "{:#?}", r.steps);
    assert_eq!(r.steps[1].status, StepStatus::Failed);
    telemetry.flush().await;
    let spans = receiver.received.spans(&r.trace_id);
    assert_eq!(spans.len(), 3);
    let use_ = one(&spans, "http use");
    assert_eq!(
        use_.status_message,
        "[BODY].headers.x-key == nope (actual: ***)"
    );
    assert!(
        use_.attr("url.full")
            .as_str()
            .unwrap()
            .ends_with("/echo?s=***")
    );
    let raw = receiver.received.raw.lock().unwrap().concat();
    for needle in [SECRET, "sess-7f3e19d2c4"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` was exported"
        );
    }
}

#[tokio::test]
async fn b3_headers_by_configuration() {
    let backend = Backend::start().await;
    let receiver = Receiver::http().await;
    let mut config = export_to(Protocol::HttpProtobuf, &receiver.base);
    config.propagators = Propagators::parse("tracecontext,b3,b3multi").unwrap();
    let telemetry = Telemetry::new(&config).unwrap();
    let yaml = "name: b3\nsteps:\n  - { name: one, http: { url: \"{{ rec }}/record\" } }\n";
    let r = run_traced(yaml, &[("rec", &backend.base)], &[], &telemetry).await;
    telemetry.flush().await;
    let spans = receiver.received.spans(&r.trace_id);
    let step = one(&spans, "http one");
    let got = &backend.seen.get("record")[0];
    assert_eq!(
        got.get("b3"),
        Some(&format!("{}-{}-1", r.trace_id, step.span_id))
    );
    assert_eq!(got.get("x-b3-traceid"), Some(&r.trace_id));
    assert_eq!(got.get("x-b3-spanid"), Some(&step.span_id));
    assert_eq!(got.get("x-b3-sampled").map(String::as_str), Some("1"));
    assert!(got.contains_key("traceparent"));

    // Without export, and with propagation off, nothing is sent.
    let off = Telemetry::new(&TelemetryConfig {
        propagators: Propagators::parse("none").unwrap(),
        ..TelemetryConfig::default()
    })
    .unwrap();
    run_traced(yaml, &[("rec", &backend.base)], &[], &off).await;
    let got = &backend.seen.get("record")[1];
    assert!(
        !got.contains_key("traceparent") && !got.contains_key("b3"),
        "{got:?}"
    );
}

/// Waymark's own log lines during a run carry the run's trace id.
#[tokio::test]
async fn log_lines_of_a_run_carry_its_trace_id() {
    use tracing::instrument::WithSubscriber;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let yaml = "name: logged\nsteps:\n  - { name: pause, wait: 1ms }\n";
    let r = run_traced(yaml, &[], &[], &Telemetry::disabled())
        .with_subscriber(subscriber)
        .await;
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("run finished"))
        .collect();
    assert_eq!(finished.len(), 1, "{logs}");
    assert!(
        finished[0].contains(&format!("trace_id={}", r.trace_id)),
        "{logs}"
    );
    let attempt: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("attempt finished"))
        .collect();
    assert!(
        attempt[0].contains(&format!("trace_id={}", r.trace_id))
            && attempt[0].contains(&format!("span_id={}", r.steps[0].span_id)),
        "{logs}"
    );
}

async fn waymark(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_waymark"));
        cmd.args(&args).current_dir(dir);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
            cmd.env_remove(k);
        }
        cmd.envs(env).output().unwrap()
    })
    .await
    .unwrap()
}

/// `waymark run` exports with the standard variables, flushes before it exits (the receiver
/// has the whole trace when the process is gone) and prints the trace id and its link.
#[tokio::test]
async fn cli_run_exports_one_complete_trace_and_prints_its_link() {
    let receiver = Receiver::http().await;
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("j.yaml"),
        "name: cli-traced\nsteps:\n  - { name: a, http: { url: \"{{ base }}/status/200\" } }\n  - { name: b, http: { url: \"{{ base }}/json\" } }\n",
    )
    .unwrap();
    let var = format!("base={}", srv.base);
    let o = waymark(
        &["run", "j.yaml", "--var", &var],
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.base),
            ("OTEL_SERVICE_NAME", "probe-eu"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=shop"),
            (
                "WAYMARK_TRACE_URL",
                "http://jaeger.test:16686/trace/{trace_id}",
            ),
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("trace "))
        .unwrap_or_else(|| panic!("no trace line in {out}"));
    let trace_id = line.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(trace_id.len(), 32);
    assert!(
        line.ends_with(&format!("http://jaeger.test:16686/trace/{trace_id}")),
        "{line}"
    );
    let spans = receiver.received.spans(&trace_id);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 3, "{names:?}");
    let root = one(&spans, "journey cli-traced");
    assert_eq!(root.resource.get("service.name"), Some(&json!("probe-eu")));
    assert_eq!(
        root.resource.get("deployment.environment"),
        Some(&json!("test"))
    );
    let headers = receiver.received.headers.lock().unwrap().clone();
    assert!(
        headers
            .iter()
            .all(|h| h.get("x-tenant").map(String::as_str) == Some("shop"))
    );
}

/// The same over gRPC, chosen by flags; the JSON result has the ids.
#[tokio::test]
async fn cli_run_exports_over_grpc_when_asked_by_flags() {
    let receiver = Receiver::grpc().await;
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("j.yaml"),
        "name: cli-grpc\nsteps:\n  - { name: a, http: { url: \"{{ base }}/status/200\" } }\n",
    )
    .unwrap();
    let var = format!("base={}", srv.base);
    let o = waymark(
        &[
            "run",
            "j.yaml",
            "--var",
            &var,
            "--format",
            "json",
            "--otlp-endpoint",
            &receiver.base,
            "--otlp-protocol",
            "grpc",
        ],
        dir.path(),
        &[],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let trace_id = v["trace_id"].as_str().unwrap();
    let spans = receiver.received.spans(trace_id);
    assert_eq!(spans.len(), 2);
    assert_eq!(
        one(&spans, "http a").span_id,
        v["steps"][0]["span_id"].as_str().unwrap()
    );
    assert_eq!(
        one(&spans, "journey cli-grpc").resource.get("service.name"),
        Some(&json!("waymark"))
    );
}

/// `waymark demo --once` exports one trace per journey before it exits, and the demo shop's
/// own spans (its server spans, database queries, and the payments service it calls) join it.
#[tokio::test]
async fn demo_exports_a_trace_per_journey_that_the_shop_joins() {
    let receiver = Receiver::http().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journeys")).unwrap();
    let checkout = std::fs::read_to_string("journeys/shop-checkout.yaml").unwrap();
    std::fs::write(dir.path().join("journeys/checkout.yaml"), checkout).unwrap();
    let o = waymark(
        &["demo", "--once", "--journeys", "journeys"],
        dir.path(),
        &[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("{}/v1/traces", receiver.base),
        )],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("trace "))
        .unwrap_or_else(|| panic!("no trace line in {out}"));
    let trace_id = line.split_whitespace().nth(1).unwrap();
    let spans = receiver.received.spans(trace_id);
    one(&spans, "journey shop-checkout");
    let step = one(&spans, "http place order");
    let service = |s: &FlatSpan| s.resource.get("service.name").cloned();
    // The shop's server span for that request is the step span's child.
    let server = spans
        .iter()
        .find(|s| s.name == "POST /api/orders" && s.parent_span_id == step.span_id)
        .unwrap_or_else(|| panic!("no shop span under the step: {spans:#?}"));
    assert_eq!(service(server), Some(json!("demo-shop")));
    assert!(
        spans.iter().any(|s| s.parent_span_id == server.span_id
            && s.attributes.get("db.system.name") == Some(&json!("sqlite"))),
        "database spans under the shop's: {spans:#?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name.starts_with("POST /charge")
                && service(s) == Some(json!("demo-payments"))),
        "the payments service's span in the same trace: {spans:#?}"
    );
}
