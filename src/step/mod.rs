//! Step executors: one file per step kind, all behind [`StepExecutor`].
//!
//! An executor performs exactly one attempt and reports what it observed ([`Attempt`]).
//! Retries, conditions, extraction and redaction belong to the runner, so every kind gets
//! them the same way. Executors never panic on hostile input and always return by the
//! attempt's deadline.
//!
//! Shared plumbing: `net` reaches a host (DNS, TCP, the attempt's time budget `net::Budget`) and
//! `tls_client` runs TLS over it, for the `http`, `websocket`, `tcp` and `tls` steps alike.
//! This file holds the types every executor reports with and the small helpers that build
//! and finish them (`failure`, `finish`, `error_chain`).

pub mod dns;
pub mod http;
pub(crate) mod net;
pub mod tcp;
pub mod tls;
pub(crate) mod tls_client;
pub mod wait;
pub mod websocket;

#[cfg(test)]
mod render_tests;
#[cfg(test)]
mod test_support;

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::journey::facts::Facts;
use crate::journey::template::{RenderError, Scope};

/// What an executor gets for one attempt.
pub struct StepContext<'a> {
    pub scope: Scope<'a>,
    /// The attempt must be over by then: the step timeout or the run deadline, whichever is first.
    pub deadline: Instant,
    /// Extra headers for every outgoing request (trace propagation).
    pub propagation_headers: Vec<(String, String)>,
    /// The step is `sensitive`: an executor that extracts values itself (WebSocket `expect`)
    /// registers them with the scope's redactor at once, before quoting any message.
    pub sensitive: bool,
}

pub trait StepExecutor {
    fn execute(&self, ctx: &StepContext<'_>) -> impl Future<Output = Attempt> + Send;
}

/// The result of one attempt, before conditions are evaluated.
#[derive(Debug, Default)]
pub struct Attempt {
    pub facts: Facts,
    pub timings: Timings,
    /// Set when the attempt could not complete (transport error, timeout, template error).
    pub failure: Option<Failure>,
    pub request: Option<RequestSummary>,
    pub response: Option<ResponseSummary>,
    /// Values extracted inside the attempt (WebSocket `expect` actions), in order.
    pub extracted: Vec<(String, serde_json::Value)>,
    /// One entry per scripted action (WebSocket), in order.
    pub actions: Vec<ActionOutcome>,
}

/// What one scripted action did and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ActionOutcome {
    /// `send`, `expect`, `expect_none`, `ping`, `close`.
    pub action: String,
    pub passed: bool,
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub duration: Option<Duration>,
    /// What happened, e.g. the matched message or why nothing matched (redacted like the rest).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub detail: String,
}

impl Attempt {
    pub fn failed(class: FailureClass, message: impl Into<String>) -> Attempt {
        Attempt {
            failure: Some(failure(class, message)),
            ..Attempt::default()
        }
    }
}

impl From<RenderError> for Attempt {
    fn from(e: RenderError) -> Attempt {
        Attempt::failed(FailureClass::Template, e.to_string())
    }
}

/// Sets `total` and `[RESPONSE_TIME]`: the attempt is over.
pub(crate) fn finish(attempt: &mut Attempt, total: Duration) {
    attempt.timings.total = Some(total);
    attempt.facts.response_time = Some(total);
}

/// Where the time of an attempt went. Phases that did not happen (no DNS for an IP literal,
/// no TLS for plain HTTP) stay `None`; after redirects each phase is the sum over all hops.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Timings {
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub dns: Option<Duration>,
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub connect: Option<Duration>,
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub tls: Option<Duration>,
    /// WebSocket upgrade: request sent → `101 Switching Protocols` received.
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub handshake: Option<Duration>,
    /// Time to first byte: request sent → response head received.
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub ttfb: Option<Duration>,
    /// Response head → last body byte.
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub download: Option<Duration>,
    #[serde(with = "opt_ms", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<f64>)]
    pub total: Option<Duration>,
}

impl Timings {
    /// The phases that happened, in the order they happen in an attempt (`total` excluded).
    pub fn phases(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("dns", self.dns),
            ("connect", self.connect),
            ("tls", self.tls),
            ("handshake", self.handshake),
            ("ttfb", self.ttfb),
            ("download", self.download),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| (name, d)))
    }

    /// Adds `d` to a phase, creating it if absent (phases add up across redirect hops).
    pub fn add(phase: &mut Option<Duration>, d: Duration) {
        *phase = Some(phase.unwrap_or_default() + d);
    }
}

/// Durations as fractional milliseconds in JSON: stable, readable, precise to the microsecond.
mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64((d.as_micros() as f64) / 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms: Option<f64> = Option::deserialize(d)?;
        Ok(ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

pub(crate) fn failure(class: FailureClass, message: impl Into<String>) -> Failure {
    Failure {
        class,
        message: message.into(),
    }
}

/// A template that did not render is the journey's fault.
impl From<RenderError> for Failure {
    fn from(e: RenderError) -> Failure {
        failure(FailureClass::Template, e.to_string())
    }
}

/// Formats an error with its whole `source()` chain: hyper, rustls and io errors keep the
/// useful part (the OS error, the parse problem) in their sources.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

crate::words::words! {
    /// Why a step failed: stable names, used in JSON output, storage and alert grouping.
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
    )]
    #[serde(rename_all = "snake_case")]
    pub enum FailureClass {
        /// The step or the run deadline passed.
        Timeout,
        /// The name did not resolve.
        Dns,
        /// TCP connection refused, reset or unreachable.
        Connect,
        /// TLS handshake or certificate verification failed.
        Tls,
        /// A condition on `[STATUS]` failed.
        HttpStatus,
        /// Any other condition failed.
        Condition,
        /// A value named in `extract:` was not in the response.
        Extraction,
        /// The response body exceeded `max_body_bytes`.
        BodyTooLarge,
        /// Redirect loop or more redirects than allowed.
        TooManyRedirects,
        /// The peer broke the protocol (malformed response, closed mid-response).
        Protocol,
        /// The WebSocket upgrade was refused or never completed (the message has the HTTP status).
        Handshake,
        /// The peer closed the WebSocket (or TCP) connection when the script did not expect it.
        ClosedByPeer,
        /// An `expect` saw no matching message in time, or skipped too many non-matching ones.
        NoMatchingMessage,
        /// An `expect_none` saw a message it forbids.
        UnexpectedMessage,
        /// A WebSocket message exceeded `max_message_bytes`.
        MessageTooLarge,
        /// Waymark could not build the request (undefined variable, missing secret, bad URL):
        /// a problem of the journey, not of the target.
        Template,
        /// Waymark itself failed while running the step (a panic: a bug, logged as an error);
        /// the run is an `error` and the service carries on.
        Internal,
    }
}

impl FailureClass {
    /// True when the fault is not the target's (the journey's, or Waymark's own), so the step
    /// is an `error` rather than `failed`, and retrying cannot help.
    pub fn is_error(self) -> bool {
        matches!(self, FailureClass::Template | FailureClass::Internal)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RequestSummary {
    pub method: String,
    pub url: String,
    /// Header names and values; credentials-bearing headers are masked.
    pub headers: Vec<(String, String)>,
    pub body_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ResponseSummary {
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2`.
    pub protocol: String,
    pub headers: Vec<(String, String)>,
    /// The body's size as `[BODY]` sees it: decoded when it came with a `Content-Encoding`.
    pub body_bytes: u64,
    /// Bytes received on the wire for a body that was decoded (gzip, deflate, br); absent when
    /// the body arrived as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_bytes: Option<u64>,
    /// Number of redirects followed before this response.
    pub redirects: u32,
    /// Final URL after redirects.
    pub url: String,
}

pub use crate::journey::redact::is_credential_header;

/// Masks credential header values for summaries.
pub fn summarize_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(k, v)| {
            let v = if is_credential_header(k) {
                crate::journey::template::REDACTED
            } else {
                v
            };
            (k.to_string(), v.to_string())
        })
        .collect()
}
