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
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::journey::condition::{Condition, Placeholder};
use crate::journey::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_SKIPPED_MESSAGES, HttpBody,
    HttpStep, JsonTemplate, WebsocketStep, WsAction, WsPayload,
};
use crate::step::test_support::{Harness, t};
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

#[track_caller]
fn assert_ok(a: &Attempt) {
    assert!(
        a.failure.is_none(),
        "unexpected failure: {:?}\nactions: {:#?}",
        a.failure,
        a.actions
    );
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
            let frame = CloseFrame {
                code: CloseCode::Error,
                reason: "peer failure for tests".into(),
            };
            let _ = ws.close(Some(frame)).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        "/goaway" => {
            let _ = ws.next().await;
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            };
            let _ = ws.close(Some(frame)).await;
            while let Some(Ok(_)) = ws.next().await {}
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

// ---------------------------------------------------------------------------------------------
// The conversation

#[tokio::test]
async fn hello_send_json_expect_echo_and_close() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![
            expect(&["[MESSAGE].type == hello", "[MESSAGES_RECEIVED] == 1"]),
            send_json(json!({ "type": "add", "n": "{{ n }}", "note": "n={{ n }}" })),
            expect(&[
                "[MESSAGE].echo == true",
                "[MESSAGE].n == 41",
                "[MESSAGE].note == n=41",
            ]),
            close(Some(1000)),
        ],
    );
    let a = run(&s).await;
    assert_ok(&a);
    let names: Vec<_> = a.actions.iter().map(|o| o.action.as_str()).collect();
    assert_eq!(names, ["expect", "send", "expect", "close"]);
    assert!(a.actions.iter().all(|o| o.passed && o.duration.is_some()));
    assert!(
        a.actions[2].detail.contains("\"echo\":true"),
        "{:?}",
        a.actions
    );
    assert_eq!(a.actions[3].detail, "closed: 1000 (normal closure)");
    // The JSON leaf that is exactly `{{ n }}` keeps the number type.
    let echoed: Value = serde_json::from_str(a.facts.message.as_deref().unwrap()).unwrap();
    assert_eq!(echoed["n"], json!(41));
    assert_eq!(a.facts.messages_received, Some(2));
    assert_eq!(a.facts.status, Some(101));
    assert_eq!(a.facts.connected, Some(true));
    assert_eq!(a.facts.ip, Some(addr.ip()));
    assert_eq!(a.facts.header("upgrade"), Some("websocket"));
    // IP literal: no DNS; plain ws: no TLS.
    let tm = a.timings;
    assert!(tm.dns.is_none() && tm.tls.is_none(), "{tm:?}");
    assert!(tm.connect.is_some() && tm.handshake.is_some(), "{tm:?}");
    assert!(tm.total.unwrap() >= tm.connect.unwrap() + tm.handshake.unwrap());
    assert_eq!(a.facts.response_time, tm.total);
    let request = a.request.as_ref().unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.url, format!("ws://{addr}/echo"));
    let response = a.response.as_ref().unwrap();
    assert_eq!(
        (response.status, response.protocol.as_str()),
        (101, "HTTP/1.1")
    );
}

#[tokio::test]
async fn extracted_values_feed_later_actions_and_the_runner() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![
            expect_extract(
                &["[MESSAGE].type == hello"],
                &[("server", "[MESSAGE].server")],
            ),
            send_json(json!({ "type": "who", "server": "{{ server }}" })),
            expect_extract(
                &["[MESSAGE].server == {{ server }}", "[MESSAGE].echo == true"],
                &[("echoed", "[MESSAGE].echo")],
            ),
            send_text("plain {{ server }} {{ echoed }}"),
            expect(&["[MESSAGE] == plain test true"]),
        ],
    );
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(
        a.extracted,
        [
            ("server".to_string(), json!("test")),
            ("echoed".to_string(), json!(true))
        ]
    );
    assert_eq!(a.actions[3].detail, "plain test true");
    assert_eq!(a.facts.message.as_deref(), Some("plain test true"));
}

#[tokio::test]
async fn a_missing_extraction_fails_the_expect() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![expect_extract(
            &["[MESSAGE].type == hello"],
            &[("id", "[MESSAGE].id")],
        )],
    );
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::Extraction);
    assert!(msg.contains("`id`"), "{msg}");
    assert!(a.extracted.is_empty());
}

#[tokio::test]
async fn non_matching_messages_are_skipped_until_one_matches() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![
            send_json(json!({ "type": "noise", "i": 1 })),
            send_json(json!({ "type": "noise", "i": 2 })),
            send_json(json!({ "type": "target" })),
            expect(&["[MESSAGE].type == target"]),
        ],
    );
    let a = run(&s).await;
    assert_ok(&a);
    // The hello and both noises were skipped.
    let detail = &a.actions[3].detail;
    assert!(
        detail.starts_with("after skipping 3 non-matching"),
        "{detail}"
    );
    assert_eq!(a.facts.messages_received, Some(4));
}

#[tokio::test]
async fn binary_messages_are_messages_as_lossy_text() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/binary"),
        vec![expect(&[
            "[MESSAGE] == pat(bin*ary)",
            "[MESSAGES_RECEIVED] == 1",
        ])],
    );
    assert_ok(&run(&s).await);
}

#[tokio::test]
async fn expect_none_passes_on_silence_and_keeps_other_messages() {
    let (addr, _) = ws_peer().await;
    let quiet = step(
        &format!("ws://{addr}/quiet"),
        vec![WsAction::ExpectNone {
            duration: Duration::from_millis(200),
            conditions: Vec::new(),
        }],
    );
    let a = run(&quiet).await;
    assert_ok(&a);
    assert_eq!(a.actions[0].detail, "no message in 200ms");
    assert!(a.actions[0].duration.unwrap() >= Duration::from_millis(200));

    // The hello does not match, so it is kept for the expect after.
    let echo = step(
        &format!("ws://{addr}/echo"),
        vec![
            WsAction::ExpectNone {
                duration: Duration::from_millis(200),
                conditions: conditions(&["[MESSAGE].type == error"]),
            },
            expect_within(&["[MESSAGE].type == hello"], Duration::from_millis(50)),
        ],
    );
    let a = run(&echo).await;
    assert_ok(&a);
    assert!(
        a.actions[0].detail.contains("1 others kept"),
        "{:?}",
        a.actions
    );
}

#[tokio::test]
async fn expect_none_fails_on_a_message() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![WsAction::ExpectNone {
            duration: Duration::from_secs(2),
            conditions: conditions(&["[MESSAGE].type == hello"]),
        }],
    );
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::UnexpectedMessage);
    assert!(msg.contains("\"hello\""), "{msg}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(!a.actions[0].passed);
}

#[tokio::test]
async fn ping_gets_its_pong_and_messages_meanwhile_are_kept() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/echo"),
        vec![
            WsAction::Ping { timeout: None },
            WsAction::Ping {
                timeout: Some(Duration::from_secs(1)),
            },
            expect(&["[MESSAGE].type == hello"]),
        ],
    );
    let a = run(&s).await;
    assert_ok(&a);
    assert!(
        a.actions[0].detail.starts_with("pong after"),
        "{:?}",
        a.actions
    );
}

#[tokio::test]
async fn a_missing_pong_times_out_at_the_ping_timeout() {
    let (addr, _) = ws_peer().await;
    let timeout = Duration::from_millis(300);
    let s = step(
        &format!("ws://{addr}/deaf"),
        vec![WsAction::Ping {
            timeout: Some(timeout),
        }],
    );
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("pong"), "{msg}");
    // The ping's timeout, plus the closing courtesy to a peer that never answers it.
    assert_within(elapsed, timeout + super::script::CLOSE_GRACE);
}

#[tokio::test]
async fn close_with_an_unexpected_code_fails_naming_both() {
    let (addr, _) = ws_peer().await;
    let s = step(
        &format!("ws://{addr}/goaway"),
        vec![send_text("bye"), close(Some(1000))],
    );
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::ClosedByPeer);
    assert!(msg.contains("1001") && msg.contains("1000"), "{msg}");
}

#[tokio::test]
async fn without_expect_timeout_the_deadline_is_a_timeout_with_one_it_is_no_match() {
    let (addr, _) = ws_peer().await;
    let url = format!("ws://{addr}/quiet");
    let own = Duration::from_millis(300);
    let s = step(&url, vec![expect_within(&["[MESSAGE].type == x"], own)]);
    let (a, elapsed) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::NoMatchingMessage);
    assert!(msg.contains("no message arrived"), "{msg}");
    assert!(elapsed >= own);
    assert_within(elapsed, own + super::script::CLOSE_GRACE);

    let deadline = Duration::from_millis(400);
    let s = step(&url, vec![expect(&["[MESSAGE].type == x"])]);
    let (a, elapsed) = run_with(&s, deadline, &[], &[]).await;
    assert_failed(&a, FailureClass::Timeout);
    assert_within(elapsed, deadline);
}

// ---------------------------------------------------------------------------------------------
// The upgrade

#[tokio::test]
async fn subprotocols_are_negotiated() {
    let (addr, seen) = ws_peer().await;
    let mut s = step(
        &format!("ws://{addr}/echo"),
        vec![expect(&["[MESSAGE].type == hello"])],
    );
    s.subprotocols = vec!["v0.old".into(), "v1.echo".into()];
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(a.facts.header("sec-websocket-protocol"), Some("v1.echo"));
    assert_eq!(seen.last()["sec-websocket-protocol"], "v0.old, v1.echo");

    s.subprotocols = vec!["v9.other".into()];
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::Handshake);
    assert!(
        msg.contains("none of the offered") && msg.contains("v9.other"),
        "{msg}"
    );

    s.url = t(&format!("ws://{addr}/wrongproto"));
    s.subprotocols = vec!["v1.echo".into()];
    let msg = assert_failed(&run(&s).await, FailureClass::Handshake).to_string();
    assert!(msg.contains("not offered"), "{msg}");
}

#[tokio::test]
async fn step_and_propagation_headers_arrive_on_the_upgrade() {
    let (addr, seen) = ws_peer().await;
    let mut s = step(
        &format!("ws://{addr}/echo"),
        vec![expect(&["[MESSAGE].type == hello"])],
    );
    s.headers = vec![
        ("X-Team".into(), t("core-{{ n }}")),
        ("Authorization".into(), t("Bearer {{ secret.TOKEN }}")),
    ];
    let propagation = [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("X-Team", "from-the-runner"),
    ];
    let (a, _) = run_with(&s, Duration::from_secs(5), &[], &propagation).await;
    assert_ok(&a);
    let headers = seen.last();
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-team"), ["core-41"], "the step's header wins");
    assert_eq!(all("traceparent"), [propagation[0].1]);
    assert_eq!(all("authorization"), ["Bearer s3cret-token"]);
    assert!(all("user-agent")[0].starts_with("waymark/"));
    assert_eq!(all("host"), [addr.to_string()]);
    // The summary shows what was sent, credentials masked.
    let summary = &a.request.as_ref().unwrap().headers;
    let get = |name: &str| {
        summary
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("authorization"), Some("***"));
    assert_eq!(get("upgrade"), Some("websocket"));
    assert_eq!(get("traceparent"), Some(propagation[0].1));
}

#[tokio::test]
async fn urls_must_be_ws_or_wss() {
    for url in [
        "http://127.0.0.1:1/x",
        "ws://",
        "ws://u:p@127.0.0.1:1/",
        "{{ nope }}",
    ] {
        let a = run(&step(url, Vec::new())).await;
        assert_failed(&a, FailureClass::Template);
        assert!(a.facts.connected.is_none(), "{url}: nothing was sent");
    }
}

/// A rustls server with a fresh self-signed certificate for 127.0.0.1 that offers h2 and
/// http/1.1, then speaks WebSocket like [`ws_peer`].
async fn wss_peer() -> SocketAddr {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                    serve_ws(tls, Seen::default()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn wss_uses_the_shared_tls_path_with_http1_alpn() {
    let addr = wss_peer().await;
    let mut s = step(
        &format!("wss://{addr}/echo"),
        vec![expect(&["[MESSAGE].type == hello"]), close(Some(1000))],
    );
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::Tls);
    assert!(a.actions.is_empty(), "{msg}");

    s.insecure_skip_verify = true;
    let a = run(&s).await;
    assert_ok(&a);
    assert!(a.timings.tls.is_some() && a.timings.handshake.is_some());
    assert!(a.facts.certificate_expiration_ms.unwrap() > 0);
    assert_eq!(a.facts.certificate_sans.as_deref(), Some("127.0.0.1"));
    assert!(a.facts.certificate_subject.is_some() && a.facts.certificate_issuer.is_some());
}

// ---------------------------------------------------------------------------------------------
// Hostile peers: each fails with its class, within its timeout

#[tokio::test]
async fn a_peer_that_never_answers_the_upgrade_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let timeout = Duration::from_millis(400);
    let s = step(&format!("ws://{addr}/"), vec![expect(&["[MESSAGE] == x"])]);
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("handshake"), "{msg}");
    assert_eq!(a.facts.connected, Some(true));
    assert!(a.timings.connect.is_some() && a.timings.handshake.is_none());
    assert_eq!(a.timings.total, a.facts.response_time);
    assert_within(elapsed, timeout);
    holder.abort();
}

/// A raw HTTP server that answers every request with `response`.
async fn http_answer(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_refused_upgrade_is_a_handshake_failure_with_the_status() {
    let addr = http_answer(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nno feed today",
    )
    .await;
    let timeout = Duration::from_secs(2);
    let s = step(
        &format!("ws://{addr}/feed"),
        vec![expect(&["[MESSAGE] == x"])],
    );
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::Handshake);
    assert!(
        msg.contains("403") && msg.contains("no feed today"),
        "{msg}"
    );
    assert_eq!(a.facts.status, Some(403));
    assert_eq!(a.facts.header("content-type"), Some("text/plain"));
    assert_eq!(a.response.as_ref().unwrap().status, 403);
    assert!(a.timings.handshake.is_none() && a.timings.total.is_some());
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_bogus_101_is_a_handshake_failure() {
    let addr = http_answer(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: wrong\r\n\r\n",
    )
    .await;
    let s = step(&format!("ws://{addr}/"), Vec::new());
    let msg = assert_failed(&run(&s).await, FailureClass::Handshake).to_string();
    assert!(msg.contains("Sec-WebSocket-Accept"), "{msg}");
}

#[tokio::test]
async fn a_message_over_the_cap_is_too_large() {
    let (addr, _) = ws_peer().await;
    let timeout = Duration::from_secs(3);
    let mut s = step(
        &format!("ws://{addr}/big"),
        vec![expect(&["[MESSAGE] == x"])],
    );
    s.max_message_bytes = 64 * 1024;
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::MessageTooLarge);
    assert!(msg.contains("65536"), "{msg}");
    assert_eq!(a.facts.messages_received, Some(0));
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_peer_closing_with_1011_is_closed_by_peer() {
    let (addr, _) = ws_peer().await;
    let timeout = Duration::from_secs(2);
    let s = step(
        &format!("ws://{addr}/close1011"),
        vec![
            expect(&["[MESSAGE].type == hello"]),
            expect(&["[MESSAGE].type == never"]),
        ],
    );
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::ClosedByPeer);
    assert!(
        msg.contains("1011") && msg.contains("peer failure for tests"),
        "{msg}"
    );
    assert_eq!(a.actions.len(), 2);
    assert!(a.actions[0].passed && !a.actions[1].passed);
    assert_within(elapsed, timeout);
}

#[tokio::test]
async fn a_flood_of_non_matching_messages_stops_at_max_skipped() {
    let (addr, _) = ws_peer().await;
    let timeout = Duration::from_secs(5);
    let mut s = step(
        &format!("ws://{addr}/flood"),
        vec![expect(&["[MESSAGE].type == never"])],
    );
    s.max_skipped_messages = 50;
    let (a, elapsed) = run_with(&s, timeout, &[], &[]).await;
    let msg = assert_failed(&a, FailureClass::NoMatchingMessage);
    assert!(msg.contains("51 non-matching messages skipped"), "{msg}");
    assert!(
        msg.contains("\"noise\"") && msg.contains("actual: noise"),
        "{msg}"
    );
    assert_eq!(a.facts.messages_received, Some(51));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// The demo shop's order feed

fn http_step(method: Method, url: String, token: Option<&str>, body: Option<Value>) -> HttpStep {
    HttpStep {
        method,
        url: t(&url),
        headers: token
            .map(|tk| vec![("Authorization".to_string(), t(&format!("Bearer {tk}")))])
            .unwrap_or_default(),
        query: Vec::new(),
        body: body.map(|b| HttpBody::Json(json_template(b))),
        follow_redirects: false,
        max_redirects: 0,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        insecure_skip_verify: false,
    }
}

/// One HTTP request through the project's own executor; returns the JSON body.
async fn call(method: Method, url: String, token: Option<&str>, body: Option<Value>) -> Value {
    let s = http_step(method, url, token, body);
    let (a, _) = run_with(&s, Duration::from_secs(5), &[], &[]).await;
    assert_ok(&a);
    serde_json::from_slice(a.facts.body.as_deref().unwrap_or(b"null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn demo_feed_announces_a_placed_order() {
    let shop = crate::demo::DemoTarget::start(0).await.unwrap();
    let base = shop.base_url();
    let login = json!({ "user": crate::demo::DEMO_USER, "password": crate::demo::DEMO_PASSWORD });
    let body = call(Method::POST, format!("{base}/api/login"), None, Some(login)).await;
    let token = body["auth"]["token"].as_str().unwrap().to_string();

    let mut feed = step(
        &format!("ws://{}/api/orders/feed", shop.addr),
        vec![
            expect_within(
                &["[MESSAGE].type == hello", "[MESSAGE].user == 7"],
                Duration::from_secs(1),
            ),
            expect_extract(
                &["[MESSAGE].type == order", "[MESSAGE].status == confirmed"],
                &[("order_id", "[MESSAGE].order_id")],
            ),
            expect(&[
                "[MESSAGE].order_id == {{ order_id }}",
                "[MESSAGE].status == shipped",
            ]),
            send_json(json!({ "type": "ping", "n": "{{ n }}" })),
            expect(&[
                "[MESSAGE].type == pong",
                "[MESSAGE].n == 41",
                "[MESSAGE].echo == true",
            ]),
            close(Some(1000)),
        ],
    );
    feed.headers = vec![("Authorization".into(), t("Bearer {{ token }}"))];
    let vars = [("token", json!(token))];
    // Subscribe, and place an order once the subscription is surely up.
    let subscribed = run_with(&feed, Duration::from_secs(5), &vars, &[]);
    let order = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let item = json!({ "item_id": 3, "qty": 2 });
        let cart = call(
            Method::POST,
            format!("{base}/api/cart"),
            Some(&token),
            Some(item),
        )
        .await;
        let cart = json!({ "cart_id": cart["cart_id"] });
        call(
            Method::POST,
            format!("{base}/api/orders"),
            Some(&token),
            Some(cart),
        )
        .await
    };
    let ((a, _), placed) = tokio::join!(subscribed, order);
    assert_ok(&a);
    assert_eq!(
        a.extracted,
        [("order_id".to_string(), placed["order_id"].clone())]
    );
    assert_eq!(a.facts.messages_received, Some(4));

    // A later subscriber first gets the snapshot: the order, now shipped.
    let later = step(
        &format!("ws://{}/api/orders/feed", shop.addr),
        vec![expect_within(
            &["[MESSAGE].type == order", "[MESSAGE].status == shipped"],
            Duration::from_secs(1),
        )],
    );
    let mut later = later;
    later.headers = feed.headers.clone();
    let (a, _) = run_with(&later, Duration::from_secs(2), &vars, &[]).await;
    assert_ok(&a);

    // Without a token the upgrade is refused.
    feed.headers.clear();
    let (a, _) = run_with(&feed, Duration::from_secs(2), &vars, &[]).await;
    let msg = assert_failed(&a, FailureClass::Handshake);
    assert!(msg.contains("401"), "{msg}");
}

#[tokio::test]
async fn demo_feed_test_client_sees_cancellation() {
    // A plain tokio-tungstenite client, independent of the executor, checks the feed's wire
    // format (and that a bad token is refused with 401).
    let shop = crate::demo::DemoTarget::start(0).await.unwrap();
    let base = shop.base_url();
    let login = json!({ "user": crate::demo::DEMO_USER, "password": crate::demo::DEMO_PASSWORD });
    let body = call(Method::POST, format!("{base}/api/login"), None, Some(login)).await;
    let token = body["auth"]["token"].as_str().unwrap().to_string();
    let item = json!({ "item_id": 1, "qty": 1 });
    let cart = call(
        Method::POST,
        format!("{base}/api/cart"),
        Some(&token),
        Some(item),
    )
    .await;
    let cart = json!({ "cart_id": cart["cart_id"] });
    let order = call(
        Method::POST,
        format!("{base}/api/orders"),
        Some(&token),
        Some(cart),
    )
    .await;
    let id = order["order_id"].as_u64().unwrap();

    let connect = |token: &str| {
        let request = http::Request::builder()
            .uri(format!("ws://{}/api/orders/feed", shop.addr))
            .header("host", shop.addr.to_string())
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                tokio_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        async move {
            let tcp = TcpStream::connect(shop.addr).await.unwrap();
            tokio_tungstenite::client_async(request, tcp).await
        }
    };
    assert!(connect("wrong").await.is_err());
    let (mut ws, _) = connect(&token).await.unwrap();
    let mut next = async || -> Value {
        let message = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(message.to_text().unwrap()).unwrap()
    };
    assert_eq!(next().await, json!({ "type": "hello", "user": 7 }));
    let snapshot = next().await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["order_id"].as_u64()),
        (Some("order"), Some(id))
    );
    call(
        Method::DELETE,
        format!("{base}/api/orders/{id}"),
        Some(&token),
        None,
    )
    .await;
    // The order may ship before it is cancelled.
    let mut update = next().await;
    if update["status"] == "shipped" {
        update = next().await;
    }
    assert_eq!(
        update,
        json!({ "type": "order", "order_id": id, "status": "cancelled" })
    );
}
