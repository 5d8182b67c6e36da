use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::attributes::sanitize_url;
use super::*;
use crate::journey::template::MapSecrets;
use crate::run::{RunResult, StepStatus};
use crate::runner::Runner;
use crate::telemetry::test_support::Collect;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn no_endpoint_means_no_export_but_tracecontext() {
    let c = TelemetryConfig::from_env(env(&[])).unwrap();
    assert_eq!(c.export, None);
    assert_eq!(c.propagators, Propagators::default());
    assert!(c.propagators.tracecontext);
}

#[test]
fn generic_endpoint_gets_the_signal_path_for_http_only() {
    let c = TelemetryConfig::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]))
        .unwrap();
    let e = c.export.unwrap();
    assert_eq!(e.protocol, Protocol::HttpProtobuf);
    assert_eq!(e.endpoint, "http://c:4318/v1/traces");
    assert_eq!(e.timeout, Duration::from_secs(10));

    let c = TelemetryConfig::from_env(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]))
    .unwrap();
    let e = c.export.unwrap();
    assert_eq!(
        (e.protocol, e.endpoint.as_str()),
        (Protocol::Grpc, "http://c:4317")
    );
    assert_eq!(e.timeout, Duration::from_millis(2500));
}

#[test]
fn signal_specific_variables_win_and_are_used_as_is() {
    let c = TelemetryConfig::from_env(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:9999/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "300"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
    ]))
    .unwrap();
    let e = c.export.unwrap();
    assert_eq!(e.protocol, Protocol::HttpProtobuf);
    assert_eq!(e.endpoint, "http://traces:9999/custom");
    assert_eq!(e.timeout, Duration::from_millis(300));
    assert_eq!(e.max_queue_size, 64);
}

#[test]
fn exporter_variables_switch_export_on_and_off() {
    let on = TelemetryConfig::from_env(env(&[("OTEL_TRACES_EXPORTER", "otlp")])).unwrap();
    assert_eq!(
        on.export.unwrap().endpoint,
        "http://localhost:4318/v1/traces"
    );
    for off in [
        [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ],
        [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ],
    ] {
        assert_eq!(TelemetryConfig::from_env(env(&off)).unwrap().export, None);
    }
}

#[test]
fn bad_values_are_configuration_errors() {
    for bad in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_PROPAGATORS", "tracecontext,jaeger"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ] {
        let e = TelemetryConfig::from_env(env(&[bad])).unwrap_err();
        assert!(matches!(e, TelemetryError::Config(_)), "{bad:?}: {e}");
    }
    let e = TelemetryConfig::from_env(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{e}");
}

#[test]
fn propagators_list() {
    let p = Propagators::parse("tracecontext, baggage,b3").unwrap();
    assert!(p.tracecontext && p.b3 && !p.b3multi);
    let p = Propagators::parse("none").unwrap();
    assert!(!p.tracecontext && !p.b3 && !p.b3multi);
}

#[test]
fn propagation_headers_are_w3c_and_b3() {
    let config = TelemetryConfig {
        propagators: Propagators::parse("tracecontext,b3,b3multi").unwrap(),
        ..TelemetryConfig::default()
    };
    let t = Telemetry::new(&config).unwrap();
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let run = uuid::Uuid::parse_str("7d4b1f2e-0000-4000-8000-000000000001").unwrap();
    let h = t.propagation_headers(trace, span, TraceFlags::SAMPLED, run);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        h,
        [
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ),
            ("tracestate", "waymark=7d4b1f2e-0000-4000-8000-000000000001"),
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            ("X-B3-TraceId", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("X-B3-SpanId", "00f067aa0ba902b7"),
            ("X-B3-Sampled", "1"),
        ]
    );
}

#[test]
fn url_full_hides_credentials_and_sensitive_query_values() {
    assert_eq!(
        sanitize_url(
            "https://ada:pw@shop.test:8443/a/b?x=1&token=abc&Signature=zz#f",
            false
        ),
        "https://REDACTED:REDACTED@shop.test:8443/a/b?x=1&token=REDACTED&Signature=REDACTED#f"
    );
    assert_eq!(
        sanitize_url("http://h/p?x=1&flag&y=a%20b", true),
        "http://h/p?x=REDACTED&flag&y=REDACTED"
    );
    assert_eq!(sanitize_url("http://h/p@x", false), "http://h/p@x");
    assert_eq!(sanitize_url("not a url", false), "not a url");
}

#[test]
fn trace_url_template() {
    assert_eq!(
        trace_url("http://jaeger:16686/trace/{trace_id}", "abc"),
        "http://jaeger:16686/trace/abc"
    );
}

/// A collector that is down.
#[derive(Debug)]
struct Down;

impl SpanExporter for Down {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure("connection refused".into()))
    }
}

/// A collector that takes its time.
#[derive(Debug)]
struct Slow;

impl SpanExporter for Slow {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }
}

async fn run(yaml: &str, telemetry: &Telemetry) -> RunResult {
    let journey = crate::run::testkit::journey(yaml);
    let runner = Runner {
        location: "unit".into(),
        secrets: Arc::new(MapSecrets::new(&[("KEY", "hunter2-secret")])),
        overrides: BTreeMap::new(),
        telemetry: telemetry.clone(),
    };
    runner.run(&journey).await
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_string()))
        .map(|kv| &kv.value)
}

/// Nothing listens on port 1 of loopback: connections are refused at once.
const REFUSED: &str = "http://127.0.0.1:1";

#[tokio::test]
async fn spans_of_a_run_are_linked_redacted_and_carry_the_ids_of_the_result() {
    let collect = Collect::default();
    let t = Telemetry::with_exporter(collect.clone(), &TelemetryConfig::default());
    let yaml = format!(
        "name: unit\nsteps:\n  - name: fetch\n    http: {{ url: \"{REFUSED}/x?key={{{{ secret.KEY }}}}&page=2\" }}\n    retries: {{ count: 1, delay: 10ms }}\n  - name: pause\n    wait: 1ms\n"
    );
    let r = run(&yaml, &t).await;
    let stats = t.flush().await;
    let spans = collect.0.lock().unwrap().clone();
    // Root, two attempts of `fetch`, the skipped `pause`.
    assert_eq!(spans.len(), 4, "{spans:#?}");
    assert_eq!(stats.spans_exported, 4);
    assert_eq!(stats.spans_lost, 0);

    let root = spans.iter().find(|s| s.name == "journey unit").unwrap();
    assert_eq!(root.span_context.trace_id().to_string(), r.trace_id);
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(
        attr(root, "waymark.run.outcome"),
        Some(&Value::from("failed"))
    );
    assert_eq!(
        attr(root, "waymark.run.id"),
        Some(&Value::from(r.run_id.to_string()))
    );
    assert!(matches!(root.status, Status::Error { .. }));

    let fetch: Vec<&SpanData> = spans.iter().filter(|s| s.name == "http fetch").collect();
    assert_eq!(fetch.len(), 2);
    let ids: Vec<String> = fetch
        .iter()
        .map(|s| s.span_context.span_id().to_string())
        .collect();
    assert_eq!(r.steps[0].attempt_span_ids, ids);
    assert_eq!(r.steps[0].span_id, ids[1]);
    for (i, s) in fetch.iter().enumerate() {
        assert_eq!(s.span_kind, SpanKind::Client);
        assert_eq!(s.parent_span_id, root.span_context.span_id());
        assert_eq!(s.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(
            attr(s, "waymark.step.attempt"),
            Some(&Value::I64(i as i64 + 1))
        );
        assert_eq!(
            attr(s, "url.full"),
            Some(&Value::from("http://127.0.0.1:1/x?key=***&page=2"))
        );
        assert_eq!(attr(s, "error.type"), Some(&Value::from("connect")));
        assert!(
            s.events.iter().any(|e| e.name == "exception"),
            "{:?}",
            s.events
        );
        assert!(matches!(s.status, Status::Error { .. }));
    }
    assert_eq!(
        attr(fetch[1], "http.request.resend_count"),
        Some(&Value::I64(1))
    );

    let pause = spans.iter().find(|s| s.name == "wait pause").unwrap();
    assert_eq!(pause.span_kind, SpanKind::Internal);
    assert_eq!(r.steps[1].status, StepStatus::Skipped);
    assert_eq!(r.steps[1].span_id, pause.span_context.span_id().to_string());
    assert_eq!(
        attr(pause, "waymark.step.status"),
        Some(&Value::from("skipped"))
    );

    // No span carries the secret anywhere.
    let dump = format!("{spans:?}");
    assert!(!dump.contains("hunter2"), "{dump}");
}

#[tokio::test]
async fn a_disabled_telemetry_still_gives_ids() {
    let t = Telemetry::disabled();
    assert!(!t.is_exporting());
    let r = run("name: unit\nsteps:\n  - name: pause\n    wait: 1ms\n", &t).await;
    assert_eq!(r.trace_id.len(), 32);
    assert_ne!(r.trace_id, "0".repeat(32));
    assert_eq!(r.steps[0].span_id.len(), 16);
    assert_eq!(t.flush().await, TelemetryStats::default());
}

#[tokio::test]
async fn a_collector_that_is_down_costs_spans_not_time() {
    let t = Telemetry::with_exporter(Down, &TelemetryConfig::default());
    let started = std::time::Instant::now();
    let r = run("name: unit\nsteps:\n  - name: pause\n    wait: 1ms\n", &t).await;
    assert_eq!(r.steps[0].status, StepStatus::Passed);
    let stats = t.flush().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(stats.spans_ended, 2);
    assert_eq!(stats.spans_exported, 0);
    assert_eq!(stats.spans_lost, 2);
    assert_eq!(stats.failed_exports, 1);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let config = TelemetryConfig {
        export: Some(ExportConfig {
            max_queue_size: 4,
            scheduled_delay: Duration::from_millis(1),
            ..ExportConfig::new(Protocol::HttpProtobuf, "slow")
        }),
        ..TelemetryConfig::default()
    };
    let t = Telemetry::with_exporter(Slow, &config);
    let yaml = "name: unit\nsteps:\n  - { name: a, wait: 1ms }\n  - { name: b, wait: 1ms }\n  - { name: c, wait: 1ms }\n  - { name: d, wait: 1ms }\n  - { name: e, wait: 1ms }\n";
    let started = std::time::Instant::now();
    for _ in 0..3 {
        run(yaml, &t).await;
    }
    // 18 spans against a queue of 4 and a collector that needs 300 ms per batch.
    assert!(started.elapsed() < Duration::from_millis(600));
    let stats = t.shutdown().await;
    assert_eq!(stats.spans_ended, 18);
    assert!(stats.spans_lost >= 10, "{stats:?}");
    assert_eq!(stats.spans_exported + stats.spans_lost, 18, "{stats:?}");
}
