//! Tests against real servers on 127.0.0.1 (random ports): an axum app for well-behaved
//! HTTP, raw TCP listeners for hostile servers, and a rustls server with an rcgen certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::journey::template::Template;
use crate::journey::{DEFAULT_MAX_BODY_BYTES, HttpBody, HttpStep, JsonTemplate};
use crate::step::test_support::{self, Harness, TRACEPARENT, says, t};
use crate::step::{Attempt, FailureClass};

// ---------------------------------------------------------------------------------------------
// Harness

fn step(method: Method, url: &str) -> HttpStep {
    HttpStep {
        method,
        url: t(url),
        headers: Vec::new(),
        query: Vec::new(),
        body: None,
        follow_redirects: true,
        max_redirects: 5,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        insecure_skip_verify: false,
        compressed: true,
    }
}

/// A step calling `path` on a fresh [`serve_app`].
async fn app_step(method: Method, path: &str) -> HttpStep {
    let addr = serve_app().await;
    step(method, &format!("http://{addr}{path}"))
}

/// Runs one attempt with `name = waymark` defined, a deadline `timeout` from now and the
/// given propagation headers.
async fn run_with(step: &HttpStep, timeout: Duration, propagation: &[(&str, &str)]) -> Attempt {
    attempt(
        step,
        timeout,
        propagation,
        &[("name", Value::from("waymark"))],
    )
    .await
}

async fn attempt(
    step: &HttpStep,
    timeout: Duration,
    propagation: &[(&str, &str)],
    vars: &[(&str, Value)],
) -> Attempt {
    Harness::new(vars)
        .run_propagating(step, timeout, propagation)
        .await
}

async fn run(step: &HttpStep) -> Attempt {
    run_with(step, Duration::from_secs(5), &[]).await
}

#[track_caller]
fn assert_ok(a: &Attempt) {
    assert!(a.failure.is_none(), "unexpected failure: {:?}", a.failure);
}

#[track_caller]
fn assert_failed(a: &Attempt, class: FailureClass) -> &str {
    let f = a
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected {class:?}, got success"));
    assert_eq!(f.class, class, "{}", f.message);
    &f.message
}

/// [`assert_failed`], and the message says `needle`: most failure tests check one phrase.
#[track_caller]
fn assert_failed_with<'a>(a: &'a Attempt, class: FailureClass, needle: &str) -> &'a str {
    says(assert_failed(a, class), needle)
}

fn body_json(a: &Attempt) -> Value {
    serde_json::from_slice(a.facts.body.as_deref().expect("a body")).expect("a JSON body")
}

/// The attempt of a step that must succeed.
async fn passed(s: &HttpStep) -> Attempt {
    let a = run(s).await;
    assert_ok(&a);
    a
}

/// What `/echo` (or a redirect to it) says it received, from a step that must succeed.
async fn echoed(s: &HttpStep) -> Value {
    body_json(&passed(s).await)
}

/// The method and body an echo says it received.
fn method_and_body(echo: &Value) -> (Option<&str>, Option<&str>) {
    (echo["method"].as_str(), echo["body"].as_str())
}

// ---------------------------------------------------------------------------------------------
// A well-behaved server

async fn serve_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/hello",
            get(|| async { ([("x-test", "yes")], "hello world") }),
        )
        .route("/big", get(|| async { "x".repeat(1000) }))
        .route("/echo", any(echo));
    let port = addr.port();
    let redirects = [
        ("/r/rel", StatusCode::FOUND, "/r/abs".to_string()),
        (
            "/r/abs",
            StatusCode::MOVED_PERMANENTLY,
            format!("http://127.0.0.1:{port}/echo"),
        ),
        ("/loop", StatusCode::FOUND, "/loop".into()),
        ("/see-other", StatusCode::SEE_OTHER, "/echo".into()),
        ("/found", StatusCode::FOUND, "/echo".into()),
        ("/temporary", StatusCode::TEMPORARY_REDIRECT, "/echo".into()),
        (
            "/to-localhost",
            StatusCode::FOUND,
            format!("http://localhost:{port}/echo"),
        ),
    ];
    let app = redirects
        .into_iter()
        .fold(app, |app, (path, status, location)| {
            let handler = move || {
                let location = location.clone();
                async move { redirect(status, location) }
            };
            app.route(path, any(handler))
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn redirect(status: StatusCode, location: String) -> impl IntoResponse {
    (status, [(header::LOCATION, location)])
}

/// Echoes the request as JSON: method, request target, headers, body.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(v.to_str().unwrap_or("?").to_string()),
            )
        })
        .collect();
    axum::Json(json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

// ---------------------------------------------------------------------------------------------
// Hostile servers

/// A server that handles connections one at a time, inside its single task (so tests can
/// count tasks), with `handle` getting each stream after the request head was read.
async fn raw_server<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request_head(&mut stream).await;
            handle(stream).await;
        }
    });
    addr
}

async fn read_request_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// A server that answers every request with `bytes`, then holds the connection for 30 s.
async fn stalling_server(bytes: &'static [u8]) -> SocketAddr {
    raw_server(move |mut s| async move {
        let _ = s.write_all(bytes).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

/// A server that answers every request with `bytes`, then closes the connection.
async fn closing_server(bytes: &'static [u8]) -> SocketAddr {
    raw_server(move |mut s| async move {
        let _ = s.write_all(bytes).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// HTTPS server with a self-signed certificate

/// Year 2100, as in the test certificate's `notAfter`.
const CERT_NOT_AFTER_UNIX: i64 = 4_102_444_800;

/// A TLS acceptor with a fresh self-signed certificate for `localhost` (valid until 2100),
/// offering the given ALPN protocols.
fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    test_support::tls_acceptor(cert.der().clone(), &key, alpn)
}

/// An HTTPS server answering `secure` to everything, offering the given ALPN protocols.
async fn serve_tls(alpn: &[&[u8]]) -> SocketAddr {
    let acceptor = tls_acceptor(alpn);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("secure"))))
            });
            let io = TokioIo::new(tls);
            let _ = if h2 {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
        }
    });
    addr
}

/// Waits until the runtime has no more live tasks than `before`: aborted tasks are reaped
/// only when the runtime next gets control.
async fn assert_tasks_back_to(before: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{} tasks alive after the attempt, {before} before",
        metrics.num_alive_tasks()
    );
}

mod body_cap;
mod compression;
mod deadlines;
mod journey_errors;
mod redirects;
mod success;
mod tls;
mod transport;
