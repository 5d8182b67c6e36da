//! The journey model: plain data, produced only by the parser, fully validated.
//!
//! Nothing here does IO. A value of these types is known to be valid: every template and
//! condition is already parsed, every variable a step uses is defined before it.

use std::path::PathBuf;
use std::time::Duration;

use super::condition::{Condition, Placeholder};
use super::template::Template;

/// One journey file, parsed and validated.
#[derive(Debug, Clone)]
pub struct Journey {
    pub name: String,
    pub description: Option<String>,
    pub schedule: Schedule,
    /// Deadline for the whole run, all steps and retries included.
    pub timeout: Duration,
    pub tags: Vec<String>,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    /// Availability target in percent, e.g. `99.5`.
    pub slo: Option<f64>,
    /// Shown on the public status page (`public: true`), under `group` (default: "Services").
    pub public: bool,
    pub group: Option<String>,
    /// The node locations it runs from; empty: every location.
    pub locations: Vec<String>,
    /// Defaults, in file order; `--var` overrides win over them. Values keep their YAML type;
    /// a string with `{{ }}` is rendered at the start of each run from the variables above it.
    pub variables: Vec<(String, Variable)>,
    /// Anomaly detection for every step; a step's own `anomaly:` overrides it field by field.
    pub anomaly: AnomalySettings,
    /// When its runs open and resolve incidents (`alert:`).
    pub alert: AlertRules,
    pub steps: Vec<Step>,
    pub source: Source,
}

/// A `variables:` default.
#[derive(Debug, Clone, PartialEq)]
pub enum Variable {
    Value(serde_json::Value),
    /// Rendered once per run, before the first step, with the variables defined above it and
    /// the overrides (exactly one `{{ var }}` keeps that variable's type, as in JSON bodies).
    Template(Template),
}

/// The journey's incident rules (see `crate::alert::engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// Consecutive failed runs at a location before it counts as failing.
    pub failure_after: u32,
    /// Consecutive good runs (at every location) before an incident resolves.
    pub resolve_after: u32,
    /// Failing locations needed for a `failure` incident (K of the M that run it).
    pub locations: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            failure_after: 2,
            resolve_after: 2,
            locations: 1,
        }
    }
}

/// Where a journey came from: the file, and a hash of its content that identifies its version.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub content_sha256: String,
    /// Line and column of the `name:` value, for diagnostics that concern the whole journey.
    pub name_pos: (usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<CronSchedule>),
}

/// A cron expression normalised to the `cron` crate's seconds-first form, with its timezone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// What the user wrote, for display.
    pub expression: String,
    pub schedule: cron::Schedule,
    pub timezone: chrono_tz::Tz,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    /// Third-party dependency label (`stripe`, `auth0`) for grouping in reports.
    pub dependency: Option<String>,
    pub timeout: Duration,
    pub retries: Retries,
    pub conditions: Vec<Condition>,
    /// Variable name → where to read it from; applied in order after a passing attempt.
    pub extract: Vec<(String, Placeholder)>,
    /// Run even after an earlier step failed (cleanup).
    pub always_run: bool,
    /// Values extracted by this step are redacted everywhere, like secrets.
    pub sensitive: bool,
    pub anomaly: AnomalySettings,
    /// Conditions that mark the step degraded when they hold (`[RESPONSE_TIME] > 800`): the
    /// step still passes, but the journey's incident rules see a degradation.
    pub degraded_when: Vec<Condition>,
}

crate::words::words! {
    /// How eagerly anomalies are flagged; `Off` disables detection for the journey or step.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Sensitivity {
        Off,
        Low,
        #[default]
        Medium,
        High,
    }
}

/// Which recurring pattern the latency baseline learns. `Weekly` learns hour-of-week once
/// three weeks are seen and uses hour-of-day until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seasonality {
    Off,
    Daily,
    #[default]
    Weekly,
}

crate::words::words! {
    /// Which way a change must go to be an anomaly. Latency defaults to `Up`: a faster step is
    /// rarely a page, but `both` also catches a dependency that starts answering fast with
    /// errors or empty results.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Direction {
        #[default]
        Up,
        Down,
        Both,
    }
}

impl Direction {
    pub fn watches_up(self) -> bool {
        matches!(self, Direction::Up | Direction::Both)
    }

    pub fn watches_down(self) -> bool {
        matches!(self, Direction::Down | Direction::Both)
    }
}

/// The `anomaly:` block of a journey or step; `None` means "inherit, then default".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnomalySettings {
    pub sensitivity: Option<Sensitivity>,
    pub seasonality: Option<Seasonality>,
    pub direction: Option<Direction>,
    /// Smallest relative slowdown worth flagging (0.2 = 20 %).
    pub min_change: Option<f64>,
    /// Smallest absolute slowdown worth flagging.
    pub min_delta: Option<Duration>,
}

impl AnomalySettings {
    /// `self` with every unset field taken from `outer`.
    pub fn or(self, outer: AnomalySettings) -> AnomalySettings {
        AnomalySettings {
            sensitivity: self.sensitivity.or(outer.sensitivity),
            seasonality: self.seasonality.or(outer.seasonality),
            direction: self.direction.or(outer.direction),
            min_change: self.min_change.or(outer.min_change),
            min_delta: self.min_delta.or(outer.min_delta),
        }
    }
}

/// Fast retries inside one run: only the last attempt counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retries {
    pub count: u32,
    pub delay: Duration,
}

/// The closed set of step kinds: the compiler lists every place a new kind must be handled.
#[derive(Debug, Clone)]
pub enum StepKind {
    Http(HttpStep),
    Websocket(WebsocketStep),
    Tcp(TcpStep),
    Dns(DnsStep),
    Tls(TlsStep),
    Wait(WaitStep),
}

impl StepKind {
    /// The YAML key of this kind, also used in span and report names.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Websocket(_) => "websocket",
            StepKind::Tcp(_) => "tcp",
            StepKind::Dns(_) => "dns",
            StepKind::Tls(_) => "tls",
            StepKind::Wait(_) => "wait",
        }
    }

    /// Every template of the step's kind-specific part, for variable checks.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            StepKind::Http(h) => h.templates(),
            StepKind::Websocket(w) => w.templates(),
            StepKind::Tcp(t) => {
                let mut out = vec![&t.host];
                out.extend(t.send.iter().map(|p| &p.template));
                out.extend(t.expect.iter().map(|p| &p.template));
                out
            }
            StepKind::Dns(d) => vec![&d.name],
            StepKind::Tls(t) => {
                let mut out = vec![&t.host];
                out.extend(&t.server_name);
                out
            }
            StepKind::Wait(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpStep {
    pub method: http::Method,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub body: Option<HttpBody>,
    pub follow_redirects: bool,
    /// Redirects followed at most before the step fails with `too_many_redirects`.
    pub max_redirects: u32,
    /// Bodies larger than this fail the step with `body_too_large`; never buffered beyond it.
    pub max_body_bytes: u64,
    pub insecure_skip_verify: bool,
    /// Send `Accept-Encoding: gzip, deflate, br` (unless the step sets its own) and decode
    /// gzip, deflate and br bodies; `false` sends none and keeps the body as received.
    pub compressed: bool,
}

pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum HttpBody {
    /// Sent as is; `Content-Type` only if the step sets it.
    Raw(Template),
    /// `application/json`; every string leaf is a template.
    Json(JsonTemplate),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, Template)>),
}

/// A JSON value whose strings are templates. Never deeper than the YAML it came from, so at
/// most `super::yaml::MAX_DEPTH` levels: the recursive walks over it (templates, rendering,
/// serialising the rendered body) are bounded by the parser.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    pub fn templates(&self) -> Box<dyn Iterator<Item = &Template> + '_> {
        match self {
            JsonTemplate::String(t) => Box::new(std::iter::once(t)),
            JsonTemplate::Array(items) => Box::new(items.iter().flat_map(|i| i.templates())),
            JsonTemplate::Object(fields) => {
                Box::new(fields.iter().flat_map(|(_, v)| v.templates()))
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl HttpStep {
    /// Every template of the step, for variable checks.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = vec![&self.url];
        out.extend(self.headers.iter().map(|(_, t)| t));
        out.extend(self.query.iter().map(|(_, t)| t));
        match &self.body {
            Some(HttpBody::Raw(t)) => out.push(t),
            Some(HttpBody::Json(j)) => out.extend(j.templates()),
            Some(HttpBody::Form(f)) => out.extend(f.iter().map(|(_, t)| t)),
            None => {}
        }
        out
    }
}

impl Step {
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = self.kind.templates();
        out.extend(self.conditions.iter().flat_map(|c| c.templates()));
        out
    }
}

/// A WebSocket conversation: connect, then a script of actions in order.
#[derive(Debug, Clone)]
pub struct WebsocketStep {
    /// `ws://` or `wss://`.
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    /// Offered in `Sec-WebSocket-Protocol`; the server must pick one of them if any are given.
    pub subprotocols: Vec<String>,
    pub actions: Vec<WsAction>,
    /// A message (or frame) larger than this fails the step with `message_too_large`.
    pub max_message_bytes: u64,
    /// How many non-matching messages an `expect` may skip before failing with
    /// `no_matching_message`, so a flood cannot keep a step busy until its timeout.
    pub max_skipped_messages: u32,
    pub insecure_skip_verify: bool,
}

pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_SKIPPED_MESSAGES: u32 = 1000;

#[derive(Debug, Clone)]
pub enum WsAction {
    Send(WsPayload),
    /// Wait up to `timeout` (default: the rest of the step's time) for a message for which
    /// all conditions hold; extract from it.
    Expect {
        conditions: Vec<Condition>,
        timeout: Option<Duration>,
        extract: Vec<(String, Placeholder)>,
    },
    /// No message (matching `conditions`, if any) may arrive for `duration`.
    ExpectNone {
        duration: Duration,
        conditions: Vec<Condition>,
    },
    /// Send a ping and wait for its pong.
    Ping {
        timeout: Option<Duration>,
    },
    /// Close the connection; `code` is the close code expected back from the peer.
    Close {
        code: Option<u16>,
    },
}

impl WsAction {
    /// The YAML key of the action, for timings and reports.
    pub fn name(&self) -> &'static str {
        match self {
            WsAction::Send(_) => "send",
            WsAction::Expect { .. } => "expect",
            WsAction::ExpectNone { .. } => "expect_none",
            WsAction::Ping { .. } => "ping",
            WsAction::Close { .. } => "close",
        }
    }
}

#[derive(Debug, Clone)]
pub enum WsPayload {
    Text(Template),
    Json(JsonTemplate),
}

impl WebsocketStep {
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = vec![&self.url];
        out.extend(self.headers.iter().map(|(_, t)| t));
        for action in &self.actions {
            match action {
                WsAction::Send(WsPayload::Text(t)) => out.push(t),
                WsAction::Send(WsPayload::Json(j)) => out.extend(j.templates()),
                WsAction::Expect { conditions, .. } | WsAction::ExpectNone { conditions, .. } => {
                    out.extend(conditions.iter().flat_map(|c| c.templates()))
                }
                WsAction::Ping { .. } | WsAction::Close { .. } => {}
            }
        }
        out
    }
}

/// Connect to `host:port`, optionally send bytes and wait for expected bytes.
#[derive(Debug, Clone)]
pub struct TcpStep {
    pub host: Template,
    pub port: u16,
    pub send: Option<BytesTemplate>,
    /// Read until these bytes have been seen (or `max_bytes` read, or the deadline).
    pub expect: Option<BytesTemplate>,
    pub max_bytes: u64,
}

pub const DEFAULT_TCP_MAX_BYTES: u64 = 64 * 1024;

/// Bytes written as text (templated) or as hex (`"48 65 6c"`, spaces allowed).
#[derive(Debug, Clone)]
pub struct BytesTemplate {
    pub template: Template,
    pub hex: bool,
}

/// Resolve a name, from the system resolver or a given server.
#[derive(Debug, Clone)]
pub struct DnsStep {
    pub name: Template,
    pub record_type: DnsRecordType,
    /// `ip` or `ip:port` (default port 53); `None` = the system's resolvers.
    pub server: Option<std::net::SocketAddr>,
    /// Query over TCP instead of UDP.
    pub tcp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

impl DnsRecordType {
    pub const ALL: [(&'static str, DnsRecordType); 6] = [
        ("A", DnsRecordType::A),
        ("AAAA", DnsRecordType::Aaaa),
        ("CNAME", DnsRecordType::Cname),
        ("MX", DnsRecordType::Mx),
        ("TXT", DnsRecordType::Txt),
        ("NS", DnsRecordType::Ns),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("A", |(n, _)| n)
    }
}

/// A TLS handshake only, to inspect the certificate.
#[derive(Debug, Clone)]
pub struct TlsStep {
    pub host: Template,
    pub port: u16,
    /// SNI and the name the certificate must match; default: `host`.
    pub server_name: Option<Template>,
    /// Inspect the certificate even if it does not verify (self-signed, expired).
    pub insecure_skip_verify: bool,
}

/// Pause the journey (e.g. let an asynchronous job finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStep {
    pub duration: Duration,
}
