//! Tests against real peers on 127.0.0.1 (random ports): a tokio-tungstenite server whose
//! behaviour depends on the path, raw TCP listeners for peers that break the handshake, a
//! rustls server for `wss://`, and the demo shop's order feed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::journey::condition::{Condition, Placeholder};
use crate::journey::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_SKIPPED_MESSAGES, HttpBody,
    HttpStep, JsonTemplate, WebsocketStep, WsAction, WsPayload,
};
use crate::step::test_support::{Harness, TRACEPARENT, says, t};
use crate::step::{Attempt, FailureClass, StepExecutor};

// ---------------------------------------------------------------------------------------------
// Building steps

fn step(url: &str, actions: Vec<WsAction>) -> WebsocketStep {
    WebsocketStep {
        url: t(url),
        headers: Vec::new(),
        subprotocols: Vec::new(),
        actions,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        max_skipped_messages: DEFAULT_MAX_SKIPPED_MESSAGES,
        insecure_skip_verify: false,
    }
}

fn conditions(cs: &[&str]) -> Vec<Condition> {
    cs.iter().map(|c| Condition::parse(c).unwrap()).collect()
}

fn expect(cs: &[&str]) -> WsAction {
    WsAction::Expect {
        conditions: conditions(cs),
        timeout: None,
        extract: Vec::new(),
    }
}

fn expect_none(cs: &[&str], duration: Duration) -> WsAction {
    WsAction::ExpectNone {
        duration,
        conditions: conditions(cs),
    }
}

/// Expects the `hello` the test peers greet every `/echo` connection with.
fn hello() -> WsAction {
    expect(&["[MESSAGE].type == hello"])
}

fn expect_within(cs: &[&str], timeout: Duration) -> WsAction {
    WsAction::Expect {
        conditions: conditions(cs),
        timeout: Some(timeout),
        extract: Vec::new(),
    }
}

fn expect_extract(cs: &[&str], extract: &[(&str, &str)]) -> WsAction {
    WsAction::Expect {
        conditions: conditions(cs),
        timeout: None,
        extract: extract
            .iter()
            .map(|(name, p)| (name.to_string(), Placeholder::parse(p).unwrap()))
            .collect(),
    }
}

fn send_text(text: &str) -> WsAction {
    WsAction::Send(WsPayload::Text(t(text)))
}

fn send_json(value: Value) -> WsAction {
    WsAction::Send(WsPayload::Json(json_template(value)))
}

/// A JSON value whose strings become templates, like the parser makes them.
fn json_template(value: Value) -> JsonTemplate {
    match value {
        Value::Null => JsonTemplate::Null,
        Value::Bool(b) => JsonTemplate::Bool(b),
        Value::Number(n) => JsonTemplate::Number(n),
        Value::String(s) => JsonTemplate::String(t(&s)),
        Value::Array(items) => JsonTemplate::Array(items.into_iter().map(json_template).collect()),
        Value::Object(fields) => JsonTemplate::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, json_template(v)))
                .collect(),
        ),
    }
}

fn close(code: Option<u16>) -> WsAction {
    WsAction::Close { code }
}

// ---------------------------------------------------------------------------------------------
// Running one attempt

/// Runs one attempt with `n = 41` defined and a deadline `timeout` from now; returns it with
/// how long it took.
async fn run_with(
    step: &impl StepExecutor,
    timeout: Duration,
    vars: &[(&str, Value)],
    propagation: &[(&str, &str)],
) -> (Attempt, Duration) {
    let mut all = vec![("n", json!(41))];
    all.extend(vars.iter().cloned());
    let harness = Harness::new(&all);
    let started = Instant::now();
    let attempt = harness.run_propagating(step, timeout, propagation).await;
    (attempt, started.elapsed())
}

async fn run(step: &WebsocketStep) -> Attempt {
    run_with(step, Duration::from_secs(5), &[], &[]).await.0
}

/// The attempt of a step that must succeed.
async fn passed(step: &WebsocketStep) -> Attempt {
    let a = run(step).await;
    assert_ok(&a);
    a
}

#[track_caller]
fn assert_ok(a: &Attempt) {
    assert!(
        a.failure.is_none(),
        "unexpected failure: {:?}\nactions: {:#?}",
        a.failure,
        a.actions
    );
}

/// Action `i`'s detail passes `holds`; else the failure shows every action.
#[track_caller]
fn assert_detail(a: &Attempt, i: usize, holds: impl Fn(&str) -> bool) {
    assert!(holds(&a.actions[i].detail), "{:?}", a.actions);
}

#[track_caller]
fn assert_failed(a: &Attempt, class: FailureClass) -> &str {
    let f = a
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected {class:?}, got success: {:#?}", a.actions));
    assert_eq!(f.class, class, "{}", f.message);
    &f.message
}

/// [`assert_failed`], and the message says `needle`: most failure tests check one phrase.
#[track_caller]
fn assert_failed_with<'a>(a: &'a Attempt, class: FailureClass, needle: &str) -> &'a str {
    says(assert_failed(a, class), needle)
}

/// A hostile peer must be cut off by its timeout, not much later.
#[track_caller]
fn assert_within(elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed <= timeout + Duration::from_millis(100),
        "took {elapsed:?} for a {timeout:?} timeout"
    );
}

// ---------------------------------------------------------------------------------------------
// A WebSocket peer whose behaviour depends on the path
//
//   /echo        {"type":"hello","server":"test"}, then every JSON message back with
//                "echo": true (other text unchanged)
//   /quiet       reads and answers pings, sends nothing
//   /deaf        never reads, so it never answers a ping
//   /close1011   one message, then a close with 1011
//   /goaway      on the first client message, closes with 1001
//   /flood       {"type":"noise","n":i} as fast as it can (bounded)
//   /big         one 1 MiB text message
//   /binary      one binary message with a byte that is not UTF-8
//
// The subprotocol `v1.echo` is accepted when offered; `/wrongproto` answers `v9.other`
// whatever was offered. Every upgrade request's headers are recorded.

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

impl Seen {
    fn last(&self) -> HeaderMap {
        self.0.lock().unwrap().last().cloned().expect("an upgrade")
    }
}

async fn ws_peer() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_ws(tcp, recorded.clone()));
        }
    });
    (addr, seen)
}

/// A step on `path` of a fresh [`ws_peer`], and what that peer sees.
async fn peer_step(path: &str, actions: Vec<WsAction>) -> (WebsocketStep, Seen) {
    let (addr, seen) = ws_peer().await;
    (step(&format!("ws://{addr}{path}"), actions), seen)
}

/// Closes with `code` and `reason`, then reads until the client is gone.
async fn close_and_drain<S>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = ws.close(Some(frame)).await;
    while let Some(Ok(_)) = ws.next().await {}
}

// tungstenite's handshake callback returns its large `ErrorResponse` by value.
#[allow(clippy::result_large_err)]
async fn serve_ws<S>(stream: S, seen: Seen)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut path = String::new();
    let callback = |request: &Request, mut response: Response| {
        path = request.uri().path().to_string();
        seen.0.lock().unwrap().push(request.headers().clone());
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let answer = if path == "/wrongproto" {
            Some("v9.other")
        } else if offered.split(',').any(|p| p.trim() == "v1.echo") {
            Some("v1.echo")
        } else {
            None
        };
        if let Some(answer) = answer {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static(answer));
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let text = |v: Value| Message::Text(v.to_string().into());
    match path.as_str() {
        "/quiet" => while let Some(Ok(_)) = ws.next().await {},
        "/deaf" => tokio::time::sleep(Duration::from_secs(10)).await,
        "/close1011" => {
            let _ = ws.send(text(json!({ "type": "hello" }))).await;
            close_and_drain(&mut ws, CloseCode::Error, "peer failure for tests").await;
        }
        "/goaway" => {
            let _ = ws.next().await;
            close_and_drain(&mut ws, CloseCode::Away, "").await;
        }
        "/flood" => {
            for n in 0..200_000 {
                if ws
                    .send(text(json!({ "type": "noise", "n": n })))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        "/big" => {
            let _ = ws.send(Message::Text("x".repeat(1024 * 1024).into())).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        "/binary" => {
            let _ = ws
                .send(Message::Binary(b"bin\xffary".to_vec().into()))
                .await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        _ => {
            let hello = json!({ "type": "hello", "server": "test" });
            if ws.send(text(hello)).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = ws.next().await {
                let reply = match message {
                    Message::Text(s) => match serde_json::from_str::<Value>(s.as_str()) {
                        Ok(Value::Object(mut fields)) => {
                            fields.insert("echo".into(), Value::Bool(true));
                            text(Value::Object(fields))
                        }
                        _ => Message::Text(s),
                    },
                    _ => continue,
                };
                if ws.send(reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

mod conversation;
mod demo_feed;
mod hostile;
mod upgrade;
