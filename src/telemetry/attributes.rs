//! Span attributes per step kind, following the OpenTelemetry semantic conventions (HTTP
//! client, WebSocket, TCP, DNS, TLS), and `url.full` sanitising. Nothing here is redacted yet:
//! `spans::apply` does that for every string before a span gets it.

use std::time::SystemTime;

use opentelemetry::{Array, KeyValue, StringValue, Value};

use super::spans::ms;
use crate::journey::facts::Facts;
use crate::journey::template::Scope;
use crate::journey::{Step, StepKind};
use crate::run::StepResult;
use crate::step::FailureClass;

/// Query parameters whose values never appear in `url.full`: the OpenTelemetry semantic
/// conventions' list (signed URLs) plus common bearer credentials. In a `sensitive` step every
/// query value is hidden.
const SENSITIVE_QUERY_KEYS: [&str; 16] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "api_key",
    "apikey",
    "password",
    "client_secret",
];

/// What semantic conventions write for hidden URL parts.
const URL_REDACTED: &str = "REDACTED";

/// Attributes being collected for one span (not yet redacted: see [`apply`]).
#[derive(Default)]
pub(super) struct Attrs(pub(super) Vec<KeyValue>);

impl Attrs {
    pub(super) fn str(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.push(KeyValue::new(key, value.into()));
    }

    pub(super) fn int(&mut self, key: &'static str, value: i64) {
        self.0.push(KeyValue::new(key, value));
    }

    pub(super) fn bool(&mut self, key: &'static str, value: bool) {
        self.0.push(KeyValue::new(key, value));
    }

    pub(super) fn f64(&mut self, key: &'static str, value: f64) {
        self.0.push(KeyValue::new(key, value));
    }

    /// What every step span has.
    pub(super) fn step(&mut self, step: &Step, result: &StepResult) {
        self.str("waymark.step.name", step.name.clone());
        self.str("waymark.step.kind", step.kind.name());
        self.str("waymark.step.status", result.status.as_str());
        if let Some(d) = &step.dependency {
            self.str("waymark.dependency", d.clone());
        }
        if step.sensitive {
            self.bool("waymark.step.sensitive", true);
        }
        if let Some(f) = &result.failure {
            self.str("waymark.failure.class", f.class.as_str());
        }
        if let Some(total) = result.timings.total {
            self.f64("waymark.step.duration_ms", ms(total));
        }
        if !result.extracted.is_empty() {
            self.0.push(KeyValue::new(
                "waymark.step.extracted",
                Value::Array(Array::String(
                    result
                        .extracted
                        .iter()
                        .map(|n| StringValue::from(n.clone()))
                        .collect(),
                )),
            ));
        }
    }

    /// Semantic-convention attributes of the step's kind.
    pub(super) fn kind_specific(
        &mut self,
        step: &Step,
        scope: &Scope<'_>,
        facts: &Facts,
        result: &StepResult,
        start: SystemTime,
        attempt: u32,
    ) {
        if let Some(ip) = facts.ip {
            self.str("network.peer.address", ip.to_string());
        }
        match &step.kind {
            StepKind::Http(_) => {
                self.str("network.protocol.name", "http");
                self.http_exchange(step, result);
                if attempt > 1 {
                    self.int("http.request.resend_count", i64::from(attempt - 1));
                }
                if let Some(f) = &result.failure {
                    let error_type = match (&result.response, f.class) {
                        (Some(r), FailureClass::HttpStatus) if r.status >= 400 => {
                            r.status.to_string()
                        }
                        _ => f.class.as_str().to_string(),
                    };
                    self.str("error.type", error_type);
                }
            }
            StepKind::Websocket(_) => {
                self.str("network.protocol.name", "websocket");
                self.http_exchange(step, result);
                if let Some(n) = facts.messages_received {
                    self.int("waymark.websocket.messages_received", n as i64);
                }
                if let Some(f) = &result.failure {
                    self.str("error.type", f.class.as_str());
                }
            }
            StepKind::Tcp(t) => {
                self.str("network.transport", "tcp");
                if let Ok(host) = t.host.render(scope) {
                    self.str("server.address", host);
                }
                self.int("server.port", t.port.into());
                if let Some(c) = facts.connected {
                    self.bool("waymark.tcp.connected", c);
                }
                if let Some(b) = &facts.body {
                    self.int("waymark.tcp.bytes_read", b.len() as i64);
                }
                self.error_type(result);
            }
            StepKind::Dns(d) => {
                self.str("network.transport", if d.tcp { "tcp" } else { "udp" });
                if let Ok(name) = d.name.render(scope) {
                    self.str("dns.question.name", name);
                }
                self.str("waymark.dns.record_type", d.record_type.name());
                if let Some(server) = d.server {
                    self.str("server.address", server.ip().to_string());
                    self.int("server.port", server.port().into());
                }
                if let Some(rcode) = &facts.dns_rcode {
                    self.str("waymark.dns.rcode", rcode.clone());
                }
                if let Some(body) = facts.body_text() {
                    let answers: Vec<StringValue> = body
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| StringValue::from(l.to_string()))
                        .collect();
                    if !answers.is_empty() {
                        self.0.push(KeyValue::new(
                            "dns.answers",
                            Value::Array(Array::String(answers)),
                        ));
                    }
                }
                self.error_type(result);
            }
            StepKind::Tls(t) => {
                self.str("network.transport", "tcp");
                self.str("network.protocol.name", "tls");
                if let Ok(host) = t.host.render(scope) {
                    self.str("server.address", host);
                }
                self.int("server.port", t.port.into());
                if let Some(Ok(sni)) = t.server_name.as_ref().map(|s| s.render(scope)) {
                    self.str("waymark.tls.server_name", sni);
                }
                if let Some(s) = &facts.certificate_subject {
                    self.str("tls.server.subject", s.clone());
                }
                if let Some(s) = &facts.certificate_issuer {
                    self.str("tls.server.issuer", s.clone());
                }
                if let Some(s) = &facts.certificate_sans {
                    self.str("waymark.tls.certificate_sans", s.clone());
                }
                if let Some(ms) = facts.certificate_expiration_ms {
                    let not_after = chrono::DateTime::<chrono::Utc>::from(start)
                        + chrono::Duration::milliseconds(ms);
                    self.str(
                        "tls.server.not_after",
                        not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                }
                self.error_type(result);
            }
            StepKind::Wait(w) => {
                self.f64("waymark.wait.duration_ms", ms(w.duration));
            }
        }
    }

    pub(super) fn error_type(&mut self, result: &StepResult) {
        if let Some(f) = &result.failure {
            self.str("error.type", f.class.as_str());
        }
    }

    /// HTTP client attributes from the request and response summaries (HTTP and the
    /// WebSocket upgrade).
    pub(super) fn http_exchange(&mut self, step: &Step, result: &StepResult) {
        if let Some(req) = &result.request {
            const KNOWN: [&str; 9] = [
                "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
            ];
            if KNOWN.contains(&req.method.as_str()) {
                self.str("http.request.method", req.method.clone());
            } else {
                self.str("http.request.method", "_OTHER");
                self.str("http.request.method_original", req.method.clone());
            }
            self.str("url.full", sanitize_url(&req.url, step.sensitive));
            if let Ok(url) = url::Url::parse(&req.url) {
                self.str("url.scheme", url.scheme().to_string());
                if let Some(host) = url.host_str() {
                    self.str(
                        "server.address",
                        host.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string(),
                    );
                }
                if let Some(port) = url.port_or_known_default() {
                    self.int("server.port", port.into());
                }
            }
            if req.body_bytes > 0 {
                self.int("http.request.body.size", req.body_bytes as i64);
            }
        }
        if let Some(resp) = &result.response {
            self.int("http.response.status_code", resp.status.into());
            let version = resp
                .protocol
                .trim_start_matches("HTTP/")
                .trim_start_matches("http/");
            if !version.is_empty() {
                self.str("network.protocol.version", version.to_string());
            }
            if matches!(step.kind, StepKind::Http(_)) {
                // The semantic conventions' body size is the transferred (compressed) one.
                let size = resp.wire_bytes.unwrap_or(resp.body_bytes);
                self.int("http.response.body.size", size as i64);
            }
            if resp.redirects > 0 {
                self.int("waymark.http.redirects", resp.redirects.into());
                self.str(
                    "waymark.http.final_url",
                    sanitize_url(&resp.url, step.sensitive),
                );
            }
        }
    }
}

/// `url.full` as the semantic conventions want it: no credentials in the user-info part, and
/// no values of credential-like query parameters (`every_value`: none at all). The text is
/// otherwise kept as the request had it.
pub fn sanitize_url(raw: &str, every_value: bool) -> String {
    let (head, fragment) = match raw.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (raw, None),
    };
    let (base, query) = match head.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (head, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => {
                    format!("{scheme}://{URL_REDACTED}:{URL_REDACTED}@{host}{path}")
                }
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _))
                    if every_value
                        || SENSITIVE_QUERY_KEYS
                            .iter()
                            .any(|s| s.eq_ignore_ascii_case(k)) =>
                {
                    format!("{k}={URL_REDACTED}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}
