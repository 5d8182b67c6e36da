//! Telemetry configuration: the standard `OTEL_*` environment variables and Waymark's flags,
//! validated once into a [`TelemetryConfig`].

use std::time::Duration;

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC, usually port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually port 4318, path `/v1/traces`.
    HttpProtobuf,
}

impl Protocol {
    /// The values of `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, `http/protobuf`.
    pub fn parse(s: &str) -> Result<Protocol, TelemetryError> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Err(TelemetryError::Config(
                "OTLP protocol `http/json` is not supported; use `grpc` or `http/protobuf`".into(),
            )),
            other => Err(TelemetryError::Config(format!(
                "unknown OTLP protocol `{other}` (expected `grpc` or `http/protobuf`)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The collector's default endpoint for this protocol (an OpenTelemetry Collector on this
    /// machine).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318/v1/traces",
        }
    }

    /// The URL spans are sent to when `base` is a collector's base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: HTTP appends `/v1/traces`, gRPC uses it as is.
    pub fn endpoint_from_base(self, base: &str) -> String {
        match self {
            Protocol::Grpc => base.to_string(),
            Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub protocol: Protocol,
    /// The full URL: for HTTP including `/v1/traces`.
    pub endpoint: String,
    /// Per export request (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
    pub timeout: Duration,
    /// Spans waiting for export at most; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// How long a span may wait before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    pub scheduled_delay: Duration,
    /// Retry a failed export a few times with backoff (the OTLP exporter's recommended policy,
    /// about one second in all). Off: one try per batch.
    pub retry: bool,
}

impl ExportConfig {
    pub fn new(protocol: Protocol, endpoint: impl Into<String>) -> ExportConfig {
        ExportConfig {
            protocol,
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(10),
            max_queue_size: 2048,
            scheduled_delay: Duration::from_secs(5),
            retry: true,
        }
    }
}

/// Which headers carry the trace context to targets (`OTEL_PROPAGATORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagators {
    /// W3C `traceparent` and `tracestate` (with `waymark=<run id>`).
    pub tracecontext: bool,
    /// Zipkin B3 single header: `b3: {trace id}-{span id}-{sampled}`.
    pub b3: bool,
    /// Zipkin B3 multiple headers: `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    pub b3multi: bool,
}

impl Default for Propagators {
    fn default() -> Propagators {
        Propagators {
            tracecontext: true,
            b3: false,
            b3multi: false,
        }
    }
}

impl Propagators {
    /// A comma-separated list as in `OTEL_PROPAGATORS`: `tracecontext`, `b3`, `b3multi`,
    /// `none`; `baggage` is accepted and ignored (Waymark has no baggage to send).
    pub fn parse(list: &str) -> Result<Propagators, TelemetryError> {
        let mut p = Propagators {
            tracecontext: false,
            b3: false,
            b3multi: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "tracecontext" => p.tracecontext = true,
                "b3" => p.b3 = true,
                "b3multi" => p.b3multi = true,
                "baggage" | "none" => {}
                other => {
                    return Err(TelemetryError::Config(format!(
                        "unknown propagator `{other}` (expected tracecontext, b3, b3multi or none)"
                    )));
                }
            }
        }
        Ok(p)
    }
}

/// Everything a `Telemetry` needs; [`TelemetryConfig::from_env`] reads the standard variables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    /// `None`: spans are created (trace ids, propagation) but not exported.
    pub export: Option<ExportConfig>,
    pub propagators: Propagators,
    /// `service.name` of the resource; `None` keeps what `OTEL_SERVICE_NAME` or
    /// `OTEL_RESOURCE_ATTRIBUTES` say, else `waymark`.
    pub service_name: Option<String>,
}

impl TelemetryConfig {
    /// Reads the standard OpenTelemetry variables through `var` (`std::env::var` in the CLI):
    ///
    /// - export is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
    ///   is set, or `OTEL_TRACES_EXPORTER=otlp` (default endpoint then); off with
    ///   `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`;
    /// - `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`: `http/protobuf` (default) or `grpc`;
    /// - `OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT` in milliseconds;
    /// - `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` (ms);
    /// - `OTEL_PROPAGATORS` (default `tracecontext`).
    ///
    /// `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`, `OTEL_EXPORTER_OTLP_INSECURE`, `OTEL_SERVICE_NAME`
    /// and `OTEL_RESOURCE_ATTRIBUTES` are read by the OpenTelemetry SDK itself.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<TelemetryConfig, TelemetryError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let propagators = match var("OTEL_PROPAGATORS") {
            Some(list) => Propagators::parse(&list)?,
            None => Propagators::default(),
        };
        let disabled =
            var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let exporter = var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase());
        if let Some(e) = exporter.as_deref()
            && !matches!(e, "otlp" | "none")
        {
            return Err(TelemetryError::Config(format!(
                "OTEL_TRACES_EXPORTER=`{e}` is not supported (expected `otlp` or `none`)"
            )));
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(p) => Protocol::parse(&p)?,
            None => Protocol::HttpProtobuf,
        };
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
            var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| protocol.endpoint_from_base(base.trim()))
        });
        let wanted = endpoint.is_some() || exporter.as_deref() == Some("otlp");
        let export = if disabled || exporter.as_deref() == Some("none") || !wanted {
            None
        } else {
            let mut e = ExportConfig::new(
                protocol,
                endpoint.unwrap_or_else(|| protocol.default_endpoint().to_string()),
            );
            let ms = |name: &str| -> Result<Option<Duration>, TelemetryError> {
                var(name)
                    .map(|v| {
                        v.trim()
                            .parse::<u64>()
                            .map(Duration::from_millis)
                            .map_err(|_| {
                                TelemetryError::Config(format!("{name}=`{v}` is not milliseconds"))
                            })
                    })
                    .transpose()
            };
            if let Some(t) =
                ms("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?.or(ms("OTEL_EXPORTER_OTLP_TIMEOUT")?)
            {
                e.timeout = t;
            }
            if let Some(d) = ms("OTEL_BSP_SCHEDULE_DELAY")? {
                e.scheduled_delay = d;
            }
            if let Some(q) = var("OTEL_BSP_MAX_QUEUE_SIZE") {
                e.max_queue_size = q.trim().parse().ok().filter(|q| *q > 0).ok_or_else(|| {
                    TelemetryError::Config(format!("OTEL_BSP_MAX_QUEUE_SIZE=`{q}` is not a count"))
                })?;
            }
            Some(e)
        };
        Ok(TelemetryConfig {
            export,
            propagators,
            service_name: None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry configuration: {0}")]
    Config(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("flushing spans: {0}")]
    Flush(String),
}
