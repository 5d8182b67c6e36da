//! Every run is an OpenTelemetry trace: configuration, export and trace propagation.
//!
//! A [`Telemetry`] owns one tracer provider. The runner asks it for a [`RunTrace`] per run
//! (the root span `journey <name>`), a span per step attempt, and the propagation headers the
//! executors send with every request and WebSocket upgrade, so the target's own server spans
//! become children of the attempt span.
//!
//! There is no global state: whoever runs journeys creates a `Telemetry` (the CLI from the
//! standard `OTEL_*` environment variables), gives a clone to each [`crate::runner::Runner`],
//! and flushes it before exiting. Without an exporter ([`Telemetry::disabled`]) spans are still
//! created, so a run still has a trace id and targets still receive `traceparent`; nothing is
//! sent anywhere.
//!
//! Export is batched on the SDK's own thread with a bounded queue. When the collector is down
//! the runs do not wait for it: what cannot be exported is counted ([`TelemetryStats`]) and
//! reported with a warning.

mod attributes;
mod config;
mod spans;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};

pub use config::{ExportConfig, Propagators, Protocol, TelemetryConfig, TelemetryError};
pub use spans::{AttemptSpan, RunTrace};

/// What happened to the spans so far. Exact once [`Telemetry::flush`] has returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TelemetryStats {
    /// Spans finished and handed to export.
    pub spans_ended: u64,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans lost: their export failed (collector down, refused, timed out) or the queue was
    /// full.
    pub spans_lost: u64,
    /// Failed export requests (each carries a batch of spans).
    pub failed_exports: u64,
}

#[derive(Debug, Default)]
struct Counters {
    ended: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    failed_exports: AtomicU64,
}

impl Counters {
    fn in_flight(&self) -> u64 {
        let done = self.exported.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed);
        self.ended.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// A handle on the tracer provider: cheap to clone, shared by every run of a process.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagators: Propagators,
    counters: Arc<Counters>,
    /// Where spans go, for messages; `None` when nothing is exported.
    endpoint: Option<String>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("endpoint", &self.inner.endpoint)
            .field("propagators", &self.inner.propagators)
            .finish()
    }
}

impl Telemetry {
    /// Spans without export: runs still get trace ids and send `traceparent`.
    pub fn disabled() -> Telemetry {
        Telemetry::build(
            SdkTracerProvider::builder(),
            Propagators::default(),
            Arc::default(),
            None,
        )
    }

    /// Builds the exporter `config` asks for. With gRPC this must be called inside a tokio
    /// runtime, which must outlive the `Telemetry` (the gRPC channel's tasks run there).
    pub fn new(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let Some(export) = &config.export else {
            return Ok(Telemetry::build(
                resource_builder(config),
                config.propagators,
                Arc::default(),
                None,
            ));
        };
        let exporter = build_exporter(export)?;
        Ok(Telemetry::with_exporter(exporter, config))
    }

    /// Exports through any `SpanExporter` (tests, embedding), batched as `config.export` says
    /// (defaults when `None`).
    pub fn with_exporter<E: SpanExporter + 'static>(
        exporter: E,
        config: &TelemetryConfig,
    ) -> Telemetry {
        let export = config
            .export
            .clone()
            .unwrap_or_else(|| ExportConfig::new(Protocol::HttpProtobuf, "custom exporter"));
        let counters = Arc::new(Counters::default());
        let batch = BatchSpanProcessor::builder(CountingExporter {
            inner: exporter,
            counters: counters.clone(),
            endpoint: export.endpoint.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(export.max_queue_size)
                .with_max_export_batch_size(export.max_queue_size.min(512))
                .with_scheduled_delay(export.scheduled_delay)
                .build(),
        )
        .build();
        let processor = CountingProcessor {
            inner: batch,
            counters: counters.clone(),
            max_queue_size: export.max_queue_size as u64,
        };
        Telemetry::build(
            resource_builder(config).with_span_processor(processor),
            config.propagators,
            counters,
            Some(export.endpoint),
        )
    }

    fn build(
        builder: opentelemetry_sdk::trace::TracerProviderBuilder,
        propagators: Propagators,
        counters: Arc<Counters>,
        endpoint: Option<String>,
    ) -> Telemetry {
        let provider = builder.build();
        let scope = InstrumentationScope::builder("waymark")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        Telemetry {
            inner: Arc::new(Inner {
                provider,
                tracer,
                propagators,
                counters,
                endpoint,
            }),
        }
    }

    /// True when spans are sent to a collector.
    pub fn is_exporting(&self) -> bool {
        self.inner.endpoint.is_some()
    }

    /// The collector URL, when exporting.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.endpoint.as_deref()
    }

    pub fn stats(&self) -> TelemetryStats {
        let c = &self.inner.counters;
        TelemetryStats {
            spans_ended: c.ended.load(Ordering::Relaxed),
            spans_exported: c.exported.load(Ordering::Relaxed),
            spans_lost: c.failed.load(Ordering::Relaxed) + c.dropped.load(Ordering::Relaxed),
            failed_exports: c.failed_exports.load(Ordering::Relaxed),
        }
    }

    /// Sends every finished span now and waits for the collector's answer (at most about 5 s,
    /// the SDK's flush limit). Returns the stats; a failure is already counted in them.
    pub async fn flush(&self) -> TelemetryStats {
        if self.is_exporting() {
            let provider = self.inner.provider.clone();
            let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        }
        self.stats()
    }

    /// Flushes and stops the export thread; spans started afterwards are not exported. Warns
    /// once if spans were lost.
    pub async fn shutdown(&self) -> TelemetryStats {
        if self.is_exporting() {
            let provider = self.inner.provider.clone();
            let _ = tokio::task::spawn_blocking(move || {
                provider.shutdown_with_timeout(Duration::from_secs(5))
            })
            .await;
            let stats = self.stats();
            if stats.spans_lost > 0 {
                tracing::warn!(
                    spans_lost = stats.spans_lost,
                    spans_exported = stats.spans_exported,
                    endpoint = self.endpoint().unwrap_or_default(),
                    "{} span(s) could not be exported",
                    stats.spans_lost
                );
            }
        }
        self.stats()
    }

    /// Starts the trace of one run: its root span.
    pub fn start_run(&self, journey: &crate::journey::Journey, run_id: uuid::Uuid) -> RunTrace {
        RunTrace::start(self, journey, run_id)
    }

    /// For embedding: the demo target's server spans (`crate::demo`) are started with it, so
    /// they go to this handle's provider and exporter under its `service.name`.
    pub fn tracer(&self) -> &SdkTracer {
        &self.inner.tracer
    }

    /// The headers that carry `(trace id, span id)` to a target, per the configured propagators.
    pub fn propagation_headers(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
        flags: TraceFlags,
        run_id: uuid::Uuid,
    ) -> Vec<(String, String)> {
        let p = self.inner.propagators;
        let sampled = flags.is_sampled();
        let mut out = Vec::with_capacity(5);
        if p.tracecontext {
            out.push((
                "traceparent".to_string(),
                format!("00-{trace_id}-{span_id}-{:02x}", flags.to_u8()),
            ));
            out.push(("tracestate".to_string(), format!("waymark={run_id}")));
        }
        if p.b3 {
            out.push((
                "b3".to_string(),
                format!("{trace_id}-{span_id}-{}", u8::from(sampled)),
            ));
        }
        if p.b3multi {
            out.push(("X-B3-TraceId".to_string(), trace_id.to_string()));
            out.push(("X-B3-SpanId".to_string(), span_id.to_string()));
            out.push(("X-B3-Sampled".to_string(), u8::from(sampled).to_string()));
        }
        out
    }
}

/// A trace link for people: `template` with `{trace_id}` replaced, e.g.
/// `http://jaeger:16686/trace/{trace_id}` (the CLI reads it from `WAYMARK_TRACE_URL`).
pub fn trace_url(template: &str, trace_id: &str) -> String {
    template.replace("{trace_id}", trace_id)
}

fn resource_builder(config: &TelemetryConfig) -> opentelemetry_sdk::trace::TracerProviderBuilder {
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    let from_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    match &config.service_name {
        Some(name) => resource = resource.with_service_name(name.clone()),
        None if !from_env => resource = resource.with_service_name("waymark"),
        None => {}
    }
    SdkTracerProvider::builder().with_resource(resource.build())
}

fn build_exporter(
    export: &ExportConfig,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let retry = if export.retry {
        opentelemetry_otlp::RetryPolicy::recommended()
    } else {
        opentelemetry_otlp::RetryPolicy::disabled()
    };
    let built = match export.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(export.endpoint.clone())
            .with_timeout(export.timeout)
            .with_retry_policy(retry)
            .build(),
        Protocol::HttpProtobuf => {
            // reqwest's TLS uses the process's rustls provider; Waymark's is ring. The CLI
            // installs it first thing; a library user may not have.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(export.endpoint.clone())
                .with_timeout(export.timeout)
                .with_retry_policy(retry)
                .build()
        }
    };
    built.map_err(|e| TelemetryError::Exporter(e.to_string()))
}

/// Counts what the exporter accepted and what it lost, and warns about losses.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counters: Arc<Counters>,
    endpoint: String,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let c = &self.counters;
        match &result {
            Ok(()) => {
                c.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                c.failed.fetch_add(n, Ordering::Relaxed);
                c.failed_exports.fetch_add(1, Ordering::Relaxed);
                let lost = c.failed.load(Ordering::Relaxed) + c.dropped.load(Ordering::Relaxed);
                tracing::warn!(
                    endpoint = %self.endpoint,
                    spans = n,
                    spans_lost = lost,
                    "trace export failed, {n} span(s) lost ({lost} so far): {e}"
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts finished spans and keeps the batch queue bounded with an exact count of what it
/// drops (the SDK's own processor drops silently past its queue size).
#[derive(Debug)]
struct CountingProcessor {
    inner: BatchSpanProcessor,
    counters: Arc<Counters>,
    max_queue_size: u64,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let c = &self.counters;
        // Spans ended but neither exported nor lost yet are at most what the queue holds, so
        // this never lets the SDK's queue overflow.
        if c.in_flight() >= self.max_queue_size {
            c.ended.fetch_add(1, Ordering::Relaxed);
            if c.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    max_queue_size = self.max_queue_size,
                    "trace export queue full: dropping spans (counted) until the collector catches up"
                );
            }
            return;
        }
        c.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
