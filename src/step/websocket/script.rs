//! The conversation after the upgrade: the step's actions in order, then a polite close.
//!
//! Only `expect` consumes messages. Messages that arrive while the script waits for something
//! else (a pong, the end of an `expect_none` whose conditions they do not match) are kept, in
//! a bounded queue, for the next `expect`, so a `ping` between a `send` and its `expect`
//! cannot swallow the answer.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{classify, describe_close, excerpt, failure};
use crate::journey::condition::{Condition, Placeholder};
use crate::journey::facts::Facts;
use crate::journey::template::{Redactor, Scope, Vars, value_text};
use crate::journey::{WebsocketStep, WsAction, WsPayload};
use crate::step::http::request::render_json;
use crate::step::net::Budget;
use crate::step::{ActionOutcome, Attempt, Failure, FailureClass, StepContext};

/// How long the closing courtesy after the script may wait for the peer's close frame.
pub(super) const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// Plays the script on an upgraded connection, records one [`ActionOutcome`] per action
/// played, then closes politely. `total` is the script's end, before the closing courtesy.
pub(super) async fn play<S>(
    ws: WebSocketStream<S>,
    step: &WebsocketStep,
    ctx: &StepContext<'_>,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conversation = Conversation {
        ws,
        deadline: ctx.deadline,
        max_skipped: u64::from(step.max_skipped_messages),
        queue_bytes_cap: usize::try_from(step.max_message_bytes)
            .unwrap_or(usize::MAX)
            .max(QUEUE_BYTES_MIN),
        received: 0,
        queue: VecDeque::new(),
        queue_bytes: 0,
        dropped: 0,
        pings: 0,
        state: State::Open,
        redactor: ctx.scope.redactor.clone(),
    };
    // Values extracted by `expect`s are visible to the actions after them.
    let mut vars = ctx.scope.vars.clone();
    let mut outcome = Ok(());
    for action in &step.actions {
        let started = Instant::now();
        let result = conversation.act(action, ctx, &mut vars, attempt).await;
        let (passed, detail) = match &result {
            Ok(detail) => (true, detail.clone()),
            Err(f) => (false, excerpt(&f.message, ctx.scope.redactor)),
        };
        attempt.actions.push(ActionOutcome {
            action: action.name().to_string(),
            passed,
            duration: Some(started.elapsed()),
            detail,
        });
        if let Err(f) = result {
            outcome = Err(f);
            break;
        }
    }
    attempt.timings.total = Some(budget.elapsed());
    attempt.facts.messages_received = Some(conversation.received);
    let code = match &outcome {
        Err(f) if f.class == FailureClass::MessageTooLarge => CloseCode::Size,
        _ => CloseCode::Normal,
    };
    conversation.finish(code).await;
    outcome
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The peer sent its close frame (tungstenite queued the reply).
    PeerClosed,
    /// We sent ours and are waiting for the peer's.
    Closing,
    /// Both close frames exchanged, or the connection is unusable: nothing more to do.
    Done,
}

/// The queue of unconsumed messages holds at most this many bytes, or `max_message_bytes`
/// when larger (always at least the newest message).
const QUEUE_BYTES_MIN: usize = 1024 * 1024;

struct Conversation<S> {
    ws: WebSocketStream<S>,
    deadline: Instant,
    max_skipped: u64,
    queue_bytes_cap: usize,
    /// Data messages received so far (`[MESSAGES_RECEIVED]`).
    received: u64,
    /// Messages not consumed yet, with the count at their arrival, for the next `expect`.
    queue: VecDeque<(String, u64)>,
    queue_bytes: usize,
    /// Messages dropped from a full queue; the next `expect` counts them as skipped.
    dropped: u64,
    pings: u32,
    state: State,
    /// The run's redactor: excerpts of what the peer sent are redacted before they are cut.
    redactor: Redactor,
}

/// What the connection delivered.
enum Event {
    /// A text or binary message (binary as lossy UTF-8).
    Message(String),
    Pong(Bytes),
    Close(Option<CloseFrame>),
}

impl<S> Conversation<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Runs one action; `Ok` carries its detail.
    async fn act(
        &mut self,
        action: &WsAction,
        ctx: &StepContext<'_>,
        vars: &mut Vars,
        attempt: &mut Attempt,
    ) -> Result<String, Failure> {
        match action {
            WsAction::Send(payload) => self.send_payload(payload, &scope(ctx, vars)).await,
            WsAction::Expect {
                conditions,
                timeout,
                extract,
            } => {
                let (text, count, skipped) = self.expect(conditions, *timeout, ctx, vars).await?;
                let facts = message_facts(text, count);
                for (name, placeholder) in extract {
                    let value = extracted(name, placeholder, &facts)?;
                    if ctx.sensitive {
                        self.redactor.register(&value_text(&value));
                    }
                    vars.insert(name.clone(), value.clone());
                    attempt.extracted.push((name.clone(), value));
                }
                let text = facts.message.unwrap_or_default();
                let mut detail = excerpt(&text, &self.redactor);
                if skipped > 0 {
                    detail = format!("after skipping {skipped} non-matching messages: {detail}");
                }
                attempt.facts.message = Some(text);
                Ok(detail)
            }
            WsAction::ExpectNone {
                duration,
                conditions,
            } => {
                self.expect_none(*duration, conditions, &scope(ctx, vars))
                    .await
            }
            WsAction::Ping { timeout } => self.ping(*timeout).await,
            WsAction::Close { code } => self.close(*code).await,
        }
    }

    async fn send_payload(
        &mut self,
        payload: &WsPayload,
        scope: &Scope<'_>,
    ) -> Result<String, Failure> {
        let text = render_payload(payload, scope)?;
        let detail = excerpt(&text, &self.redactor);
        self.send(Message::Text(text.into()), "sending a message")
            .await?;
        Ok(detail)
    }

    /// Waits for a message for which all conditions hold. Returns it, the message count at
    /// its arrival, and how many messages were skipped before it.
    async fn expect(
        &mut self,
        conditions: &[Condition],
        timeout: Option<Duration>,
        ctx: &StepContext<'_>,
        vars: &Vars,
    ) -> Result<(String, u64, u64), Failure> {
        let started = Instant::now();
        let (until, cut_by_deadline) = self.wait_limit(timeout);
        let scope = scope(ctx, vars);
        let mut skipped = std::mem::take(&mut self.dropped);
        // The last skipped message and the first condition it failed.
        let mut last: Option<(String, String)> = None;
        loop {
            let (text, count) = match self.queue.pop_front() {
                Some((text, count)) => {
                    self.queue_bytes -= text.len();
                    (text, count)
                }
                None => match self.next_event(until).await? {
                    Some(Event::Message(text)) => (text, self.received),
                    Some(Event::Pong(_)) => continue,
                    Some(Event::Close(frame)) => {
                        return Err(closed_by_peer(frame.as_ref(), &self.redactor));
                    }
                    None => {
                        let seen = skipped_summary(skipped, last.as_ref(), &self.redactor);
                        let waited = humantime::format_duration(round_ms(started.elapsed()));
                        return Err(if cut_by_deadline {
                            failure(
                                FailureClass::Timeout,
                                format!(
                                    "timed out after {waited} waiting for a matching message ({seen})"
                                ),
                            )
                        } else {
                            failure(
                                FailureClass::NoMatchingMessage,
                                format!("no matching message within {waited}: {seen}"),
                            )
                        });
                    }
                },
            };
            let facts = message_facts(text, count);
            let Some(why) = first_failed(conditions, &facts, &scope) else {
                return Ok((facts.message.unwrap_or_default(), count, skipped));
            };
            skipped += 1;
            last = Some((facts.message.unwrap_or_default(), why));
            if skipped > self.max_skipped {
                let seen = skipped_summary(skipped, last.as_ref(), &self.redactor);
                return Err(failure(
                    FailureClass::NoMatchingMessage,
                    format!(
                        "max_skipped_messages ({}) exceeded: {seen}",
                        self.max_skipped
                    ),
                ));
            }
        }
    }

    /// Fails on any message (or any matching `conditions`) arriving within `duration`;
    /// messages that do not match are kept for the next `expect`.
    async fn expect_none(
        &mut self,
        duration: Duration,
        conditions: &[Condition],
        scope: &Scope<'_>,
    ) -> Result<String, Failure> {
        let (until, cut_by_deadline) = self.wait_limit(Some(duration));
        let mut ignored = 0u64;
        loop {
            match self.next_event(until).await? {
                Some(Event::Message(text)) => {
                    let facts = message_facts(text, self.received);
                    let forbidden =
                        conditions.is_empty() || first_failed(conditions, &facts, scope).is_none();
                    let text = facts.message.unwrap_or_default();
                    if forbidden {
                        return Err(failure(
                            FailureClass::UnexpectedMessage,
                            format!(
                                "received during expect_none: {}",
                                excerpt(&text, &self.redactor)
                            ),
                        ));
                    }
                    ignored += 1;
                    self.keep(text);
                }
                Some(Event::Pong(_)) => {}
                Some(Event::Close(frame)) => {
                    return Err(closed_by_peer(frame.as_ref(), &self.redactor));
                }
                None if cut_by_deadline => {
                    return Err(failure(
                        FailureClass::Timeout,
                        format!(
                            "the step's deadline came before expect_none's {} were over",
                            humantime::format_duration(duration)
                        ),
                    ));
                }
                None => {
                    let span = humantime::format_duration(duration);
                    return Ok(match ignored {
                        0 => format!("no message in {span}"),
                        n => format!("no matching message in {span} ({n} others kept)"),
                    });
                }
            }
        }
    }

    async fn ping(&mut self, timeout: Option<Duration>) -> Result<String, Failure> {
        self.pings += 1;
        let payload = Bytes::from(format!("waymark-{}", self.pings));
        let started = Instant::now();
        self.send(Message::Ping(payload.clone()), "sending a ping")
            .await?;
        let (until, _) = self.wait_limit(timeout);
        loop {
            match self.next_event(until).await? {
                Some(Event::Pong(p)) if p == payload => {
                    let took = humantime::format_duration(round_ms(started.elapsed()));
                    return Ok(format!("pong after {took}"));
                }
                Some(Event::Pong(_)) => {}
                Some(Event::Message(text)) => self.keep(text),
                Some(Event::Close(frame)) => {
                    return Err(closed_by_peer(frame.as_ref(), &self.redactor));
                }
                None => {
                    let waited = humantime::format_duration(round_ms(started.elapsed()));
                    return Err(failure(
                        FailureClass::Timeout,
                        format!("timed out after {waited} waiting for the pong"),
                    ));
                }
            }
        }
    }

    /// Sends a normal close and waits (until the deadline) for the peer's close frame, whose
    /// code must be `expected` if given.
    async fn close(&mut self, expected: Option<u16>) -> Result<String, Failure> {
        if self.state == State::Open {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            self.send(Message::Close(Some(frame)), "sending the close frame")
                .await?;
            self.state = State::Closing;
        }
        // A peer that closes first (or answers at once) has its close frame read here.
        let frame = loop {
            match self.next_event(self.deadline).await {
                Ok(Some(Event::Close(frame))) => break frame,
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(failure(
                        FailureClass::Timeout,
                        "timed out waiting for the peer's close frame",
                    ));
                }
                // Closed without a close frame: fine unless a code was expected.
                Err(f) if f.class == FailureClass::ClosedByPeer && expected.is_none() => {
                    return Ok(f.message);
                }
                Err(f) => return Err(f),
            }
        };
        self.state = State::Done;
        let got = frame.as_ref().map(|f| u16::from(f.code));
        let described = describe_close(frame.as_ref(), &self.redactor);
        match expected {
            Some(code) if got != Some(code) => Err(failure(
                FailureClass::ClosedByPeer,
                format!("the peer closed with {described}, expected {code}"),
            )),
            _ => Ok(format!("closed: {described}")),
        }
    }

    /// The closing courtesy after the script: answer or send a close frame and give the peer
    /// a short grace (within the deadline) to answer, so servers do not log aborted
    /// connections. Best effort: errors are ignored.
    async fn finish(&mut self, code: CloseCode) {
        let until = self.deadline.min(Instant::now() + CLOSE_GRACE);
        match self.state {
            State::Done => return,
            // Flushes the reply tungstenite queued when the peer's close frame was read.
            State::PeerClosed => {
                let _ = tokio::time::timeout_at(until, self.ws.flush()).await;
                return;
            }
            State::Open => {
                let frame = CloseFrame {
                    code,
                    reason: "".into(),
                };
                let sent = tokio::time::timeout_at(until, self.ws.close(Some(frame))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            State::Closing => {}
        }
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends one message (or control frame) within the deadline.
    async fn send(&mut self, message: Message, what: &'static str) -> Result<(), Failure> {
        match tokio::time::timeout_at(self.deadline, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.state = State::Done;
                Err(classify(&e))
            }
            Err(_) => Err(failure(
                FailureClass::Timeout,
                format!("timed out {what}: the peer is not reading"),
            )),
        }
    }

    /// The next message, pong or close frame; `Ok(None)` once `until` has passed. Pings are
    /// answered by tungstenite as part of reading.
    async fn next_event(&mut self, until: Instant) -> Result<Option<Event>, Failure> {
        loop {
            let Ok(next) = tokio::time::timeout_at(until, self.ws.next()).await else {
                return Ok(None);
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.state = State::Done;
                    return Err(classify(&e));
                }
                None => {
                    self.state = State::Done;
                    return Err(failure(
                        FailureClass::ClosedByPeer,
                        "the connection was closed",
                    ));
                }
            };
            let text = match message {
                Message::Text(text) => text.as_str().to_owned(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Pong(payload) => return Ok(Some(Event::Pong(payload))),
                Message::Close(frame) => {
                    self.state = match self.state {
                        State::Closing => State::Done,
                        _ => State::PeerClosed,
                    };
                    return Ok(Some(Event::Close(frame)));
                }
                Message::Ping(_) | Message::Frame(_) => continue,
            };
            self.received += 1;
            return Ok(Some(Event::Message(text)));
        }
    }

    /// Keeps a message that arrived outside an `expect` for the next one; when the queue is
    /// full the oldest go, counted as skipped.
    fn keep(&mut self, text: String) {
        self.queue_bytes += text.len();
        self.queue.push_back((text, self.received));
        while self.queue.len() > 1
            && (self.queue_bytes > self.queue_bytes_cap
                || self.queue.len() as u64 > self.max_skipped + 1)
        {
            if let Some((old, _)) = self.queue.pop_front() {
                self.queue_bytes -= old.len();
                self.dropped += 1;
            }
        }
    }

    /// When a wait for `timeout` ends, and whether the step's deadline is what ends it.
    fn wait_limit(&self, timeout: Option<Duration>) -> (Instant, bool) {
        match timeout.and_then(|t| Instant::now().checked_add(t)) {
            Some(until) if until < self.deadline => (until, false),
            _ => (self.deadline, true),
        }
    }
}

/// The text a `send` action sends.
pub(crate) fn render_payload(payload: &WsPayload, scope: &Scope<'_>) -> Result<String, Failure> {
    let rendered = match payload {
        WsPayload::Text(t) => t.render(scope),
        WsPayload::Json(j) => render_json(j, scope).map(|v| v.to_string()),
    };
    rendered.map_err(|e| failure(FailureClass::Template, e.to_string()))
}

fn scope<'a>(ctx: &'a StepContext<'_>, vars: &'a Vars) -> Scope<'a> {
    Scope {
        vars,
        secrets: ctx.scope.secrets,
        redactor: ctx.scope.redactor,
        now: ctx.scope.now,
    }
}

/// The facts an `expect`'s conditions and extraction see: the message and the count.
fn message_facts(text: String, count: u64) -> Facts {
    let mut facts = Facts::default();
    facts.message = Some(text);
    facts.messages_received = Some(count);
    facts
}

/// The first condition that does not hold, as `expression (actual: ...)`.
fn first_failed(conditions: &[Condition], facts: &Facts, scope: &Scope<'_>) -> Option<String> {
    conditions.iter().find_map(|c| {
        let outcome = c.evaluate(facts, scope);
        (!outcome.passed).then(|| format!("{} (actual: {})", outcome.expression, outcome.actual))
    })
}

fn extracted(name: &str, placeholder: &Placeholder, facts: &Facts) -> Result<Value, Failure> {
    placeholder.resolve(facts).ok_or_else(|| {
        failure(
            FailureClass::Extraction,
            match placeholder.missing_reason(facts) {
                Some(reason) => format!("cannot extract `{name}`: {reason}"),
                None => format!(
                    "cannot extract `{name}`: {placeholder} is missing from the matched message"
                ),
            },
        )
    })
}

fn closed_by_peer(frame: Option<&CloseFrame>, redactor: &Redactor) -> Failure {
    failure(
        FailureClass::ClosedByPeer,
        format!(
            "the peer closed the connection: {}",
            describe_close(frame, redactor)
        ),
    )
}

/// `no message arrived` or `12 non-matching messages skipped; last: … (why)`.
fn skipped_summary(skipped: u64, last: Option<&(String, String)>, redactor: &Redactor) -> String {
    match (skipped, last) {
        (0, _) => "no message arrived".to_string(),
        (n, Some((text, why))) => {
            format!(
                "{n} non-matching messages skipped; last: {} — {why}",
                excerpt(text, redactor)
            )
        }
        (n, None) => format!("{n} non-matching messages skipped"),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}
