//! WebSocket step executor: connect, upgrade, then play the step's script of actions.
//!
//! The connect path (DNS, TCP, TLS with the shared rustls configurations) is the HTTP step's
//! (`transport::open`), with ALPN restricted to `http/1.1`; tungstenite only does the
//! upgrade and the framing over that stream. Every wait is bounded by the attempt's deadline,
//! every message by `max_message_bytes`, and every `expect` by `max_skipped_messages`, so a
//! hostile peer can neither hang a step nor make it hold much memory.
//!
//! Layout:
//! - this file: the attempt as a whole, rendering the upgrade request, the handshake, and
//!   how tungstenite's errors become failure classes;
//! - `script`: the conversation after the upgrade, one action at a time.

pub(crate) mod script;

#[cfg(test)]
mod tests;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use url::Url;

use super::http::header_pairs;
use super::http::request::{
    USER_AGENT, UrlError, add_propagation_headers, host_header, render_headers, sendable,
};
use super::http::transport::{self, Transport};
use super::net::Budget;
use super::tls_client::{Alpn, TlsOptions};
use super::{
    Attempt, Failure, FailureClass, RequestSummary, ResponseSummary, StepContext, StepExecutor,
    error_chain, failure, finish, summarize_headers,
};
use crate::journey::WebsocketStep;
use crate::journey::template::Redactor;

/// Longest excerpt of a message (or response body) quoted in details and failure messages.
const EXCERPT_CHARS: usize = 200;

impl StepExecutor for WebsocketStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let budget = Budget::new(ctx.deadline);
        let upgrade = match Upgrade::render(self, ctx) {
            Ok(upgrade) => upgrade,
            Err(failure) => {
                let mut attempt = Attempt {
                    failure: Some(failure),
                    ..Attempt::default()
                };
                finish(&mut attempt, budget.elapsed());
                return attempt;
            }
        };
        let mut attempt = Attempt {
            request: Some(upgrade.summary()),
            ..Attempt::default()
        };
        let outcome = converse(self, ctx, upgrade, &budget, &mut attempt).await;
        // The script sets the total before its closing courtesy; failures before it did not.
        let total = attempt.timings.total.unwrap_or_else(|| budget.elapsed());
        finish(&mut attempt, total);
        if let Err(failure) = outcome {
            attempt.failure = Some(failure);
        }
        attempt
    }
}

/// Connects, upgrades and plays the script; facts and timings go into `attempt` as they are
/// observed, so a failure keeps everything seen before it.
async fn converse(
    step: &WebsocketStep,
    ctx: &StepContext<'_>,
    upgrade: Upgrade,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<(), Failure> {
    let tls = (upgrade.url.scheme() == "wss").then_some(TlsOptions {
        insecure_skip_verify: step.insecure_skip_verify,
        alpn: Alpn::Http1,
    });
    let transport = transport::open(&upgrade.url, tls, budget, attempt).await?;
    // One monomorphisation per stream type keeps the rest free of an enum of streams.
    match transport {
        Transport::Plain(tcp) => {
            let ws = handshake(step, upgrade, tcp, budget, ctx.scope.redactor, attempt).await?;
            script::play(ws, step, ctx, budget, attempt).await
        }
        Transport::Tls(tls) => {
            let ws = handshake(step, upgrade, *tls, budget, ctx.scope.redactor, attempt).await?;
            script::play(ws, step, ctx, budget, attempt).await
        }
    }
}

/// The upgrade request, rendered before any network traffic.
#[derive(Debug)]
pub(crate) struct Upgrade {
    url: Url,
    /// Everything sent, the WebSocket headers (`Sec-WebSocket-Key` ...) included.
    headers: HeaderMap,
}

impl Upgrade {
    pub(crate) fn render(step: &WebsocketStep, ctx: &StepContext<'_>) -> Result<Upgrade, Failure> {
        let template = |message: String| failure(FailureClass::Template, message);
        let rendered = step.url.render(&ctx.scope)?;
        let url = ws_url(&rendered).map_err(|e| template(format!("url `{rendered}`: {e}")))?;
        let mut headers = render_headers(&step.headers, &ctx.scope).map_err(Failure::from)?;
        add_propagation_headers(&mut headers, &ctx.propagation_headers);
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        if !headers.contains_key(header::HOST) {
            headers.insert(
                header::HOST,
                host_header(&url).map_err(|e| template(e.to_string()))?,
            );
        }
        if !step.subprotocols.is_empty() {
            let offered = step.subprotocols.join(", ");
            let value = HeaderValue::try_from(offered)
                .map_err(|_| template("subprotocols must be visible ASCII tokens".into()))?;
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        // The protocol's own headers always win over the journey's.
        let key = HeaderValue::try_from(generate_key()).expect("a base64 key is a header value");
        let protocol: [(HeaderName, HeaderValue); 4] = [
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            ),
            (header::SEC_WEBSOCKET_KEY, key),
        ];
        for (name, value) in protocol {
            headers.insert(name, value);
        }
        Ok(Upgrade { url, headers })
    }

    fn summary(&self) -> RequestSummary {
        let headers = header_pairs(&self.headers);
        RequestSummary {
            method: "GET".to_string(),
            url: self.url.to_string(),
            headers: summarize_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            body_bytes: 0,
        }
    }

    /// The request tungstenite writes: origin-form target, our headers as they are.
    fn into_request(self) -> Result<http::Request<()>, Failure> {
        let mut request = http::Request::new(());
        *request.uri_mut() = self.url.as_str().parse().map_err(|e| {
            failure(
                FailureClass::Template,
                format!("URL `{}` cannot be sent: {e}", self.url),
            )
        })?;
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// Parses a rendered URL: `ws` or `wss`, a host, no credentials; the fragment is dropped.
fn ws_url(rendered: &str) -> Result<Url, UrlError> {
    sendable(Url::parse(rendered)?, ["ws", "wss"])
}

/// Sends the upgrade and waits for `101 Switching Protocols` (the `handshake` phase);
/// records the handshake status, headers and response summary.
async fn handshake<S>(
    step: &WebsocketStep,
    upgrade: Upgrade,
    stream: S,
    budget: &Budget,
    redactor: &Redactor,
    attempt: &mut Attempt,
) -> Result<WebSocketStream<S>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = upgrade.url.to_string();
    let request = upgrade.into_request()?;
    // A frame can never be larger than the message it belongs to, so one cap serves both.
    let cap = usize::try_from(step.max_message_bytes).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap));
    let started = Instant::now();
    let upgraded = budget
        .limit(
            "the WebSocket handshake (101 Switching Protocols)",
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)),
        )
        .await?;
    match upgraded {
        Ok((ws, response)) => {
            attempt.timings.handshake = Some(started.elapsed());
            record_response(&response, &url, attempt);
            Ok(ws)
        }
        Err(WsError::Http(response)) => {
            record_response(&response, &url, attempt);
            let mut message = format!("upgrade refused: HTTP {}", response.status());
            if let Some(body) = response.body().as_deref().filter(|b| !b.is_empty()) {
                message.push_str(&format!(
                    "; body: {}",
                    excerpt(String::from_utf8_lossy(body).trim(), redactor)
                ));
            }
            Err(failure(FailureClass::Handshake, message))
        }
        Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e))) => {
            // tungstenite checks the subprotocol only after the status, so this was a 101.
            attempt.facts.status = Some(101);
            let offered = step.subprotocols.join(", ");
            let message = match e {
                SubProtocolError::NoSubProtocol => {
                    format!("the server accepted none of the offered subprotocols ({offered})")
                }
                SubProtocolError::ServerSentSubProtocolNoneRequested => {
                    "the server chose a subprotocol although none was offered".to_string()
                }
                SubProtocolError::InvalidSubProtocol => {
                    format!("the server chose a subprotocol that was not offered ({offered})")
                }
            };
            Err(failure(FailureClass::Handshake, message))
        }
        Err(e) => Err(failure(
            FailureClass::Handshake,
            format!("WebSocket handshake failed: {}", describe(&e)),
        )),
    }
}

/// The upgrade response (a 101, or the refusal) as status, headers and response summary.
fn record_response<B>(response: &http::Response<B>, url: &str, attempt: &mut Attempt) {
    let status = response.status().as_u16();
    let headers = header_pairs(response.headers());
    attempt.facts.status = Some(status);
    attempt.response = Some(ResponseSummary {
        status,
        protocol: "HTTP/1.1".to_string(),
        headers: summarize_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        body_bytes: 0,
        wire_bytes: None,
        redirects: 0,
        url: url.to_string(),
    });
    attempt.facts.headers = headers;
}

/// Classifies an error of the established connection (reading, sending, closing).
fn classify(e: &WsError) -> Failure {
    let class = match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => FailureClass::MessageTooLarge,
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_)
        | WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing,
        ) => FailureClass::ClosedByPeer,
        _ => FailureClass::Protocol,
    };
    failure(class, describe(e))
}

/// Human wording of tungstenite's errors.
fn describe(e: &WsError) -> String {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => format!(
            "a message of at least {size} bytes exceeds max_message_bytes ({max_size} bytes)"
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "the connection was closed".into(),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the peer closed the connection without a close frame".into()
        }
        WsError::Protocol(ProtocolError::SendAfterClosing) => {
            "cannot send: the connection is closing".into()
        }
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => {
            "the peer closed the connection before answering the upgrade".into()
        }
        WsError::AttackAttempt => "the upgrade response head is too large".into(),
        WsError::Io(io) => format!("connection lost: {}", error_chain(io)),
        other => error_chain(other),
    }
}

/// `code (name): reason` of a close frame, or that there was none.
fn describe_close(frame: Option<&CloseFrame>, redactor: &Redactor) -> String {
    let Some(frame) = frame else {
        return "no close code".into();
    };
    let code = u16::from(frame.code);
    let name = match code {
        1000 => " (normal closure)",
        1001 => " (going away)",
        1002 => " (protocol error)",
        1003 => " (unsupported data)",
        1007 => " (invalid payload)",
        1008 => " (policy violation)",
        1009 => " (message too big)",
        1011 => " (internal error)",
        1012 => " (service restart)",
        1013 => " (try again later)",
        _ => "",
    };
    if frame.reason.is_empty() {
        format!("{code}{name}")
    } else {
        format!("{code}{name}: {}", excerpt(frame.reason.as_str(), redactor))
    }
}

/// At most [`EXCERPT_CHARS`] characters of `text` once redacted, marked when cut: redaction
/// comes first, so a cut never leaves part of a secret behind.
fn excerpt(text: &str, redactor: &Redactor) -> String {
    match redactor.redact_upto(text, EXCERPT_CHARS) {
        (kept, false) => kept,
        (kept, true) => format!("{kept}… ({} bytes)", text.len()),
    }
}
