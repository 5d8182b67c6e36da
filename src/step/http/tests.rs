//! Tests against real servers on 127.0.0.1 (random ports): an axum app for well-behaved
//! HTTP, raw TCP listeners for hostile servers, and a rustls server with an rcgen certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::journey::template::Template;
use crate::journey::{DEFAULT_MAX_BODY_BYTES, HttpBody, HttpStep, JsonTemplate};
use crate::step::test_support::{Harness, t};
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
    }
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

fn body_json(a: &Attempt) -> Value {
    serde_json::from_slice(a.facts.body.as_deref().expect("a body")).expect("a JSON body")
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
        .route("/echo", any(echo))
        .route(
            "/r/rel",
            any(|| async { redirect(StatusCode::FOUND, "/r/abs".into()) }),
        )
        .route(
            "/r/abs",
            any(|State(port): State<u16>| async move {
                redirect(
                    StatusCode::MOVED_PERMANENTLY,
                    format!("http://127.0.0.1:{port}/echo"),
                )
            }),
        )
        .route(
            "/loop",
            any(|| async { redirect(StatusCode::FOUND, "/loop".into()) }),
        )
        .route(
            "/see-other",
            any(|| async { redirect(StatusCode::SEE_OTHER, "/echo".into()) }),
        )
        .route(
            "/found",
            any(|| async { redirect(StatusCode::FOUND, "/echo".into()) }),
        )
        .route(
            "/temporary",
            any(|| async { redirect(StatusCode::TEMPORARY_REDIRECT, "/echo".into()) }),
        )
        .route(
            "/to-localhost",
            any(|State(port): State<u16>| async move {
                redirect(StatusCode::FOUND, format!("http://localhost:{port}/echo"))
            }),
        )
        .with_state(addr.port());
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

/// Writes `bytes` then keeps the connection open without sending anything more.
async fn send_then_stall(mut stream: TcpStream, bytes: &'static [u8]) {
    let _ = stream.write_all(bytes).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
}

// ---------------------------------------------------------------------------------------------
// HTTPS server with a self-signed certificate

/// Year 2100, as in the test certificate's `notAfter`.
const CERT_NOT_AFTER_UNIX: i64 = 4_102_444_800;

fn self_signed_cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

/// An HTTPS server answering `secure` to everything, offering the given ALPN protocols.
async fn serve_tls(alpn: &[&[u8]]) -> SocketAddr {
    let (cert, key) = self_signed_cert();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
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

// ---------------------------------------------------------------------------------------------
// Success paths

#[tokio::test]
async fn get_fills_status_headers_body_and_timings() {
    let addr = serve_app().await;
    let a = run(&step(Method::GET, &format!("http://{addr}/hello"))).await;
    assert_ok(&a);
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(a.facts.body.as_deref(), Some(&b"hello world"[..]));
    assert_eq!(a.facts.header("X-Test"), Some("yes"));
    assert!(a.facts.headers.iter().all(|(k, _)| *k == k.to_lowercase()));
    assert_eq!(a.facts.ip, Some(addr.ip()));
    assert_eq!(a.facts.connected, Some(true));
    assert_eq!(a.facts.certificate_expiration_ms, None);

    let tm = a.timings;
    assert_eq!(tm.dns, None, "no DNS phase for an IP literal");
    assert_eq!(tm.tls, None, "no TLS phase for plain HTTP");
    let (connect, ttfb, download, total) = (
        tm.connect.unwrap(),
        tm.ttfb.unwrap(),
        tm.download.unwrap(),
        tm.total.unwrap(),
    );
    assert!(connect + ttfb + download <= total, "{tm:?}");
    assert!(total < Duration::from_secs(2), "{tm:?}");
    assert_eq!(a.facts.response_time, Some(total));

    let req = a.request.as_ref().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.url, format!("http://{addr}/hello"));
    assert!(
        req.headers.contains(&("host".into(), addr.to_string())),
        "{:?}",
        req.headers
    );
    let resp = a.response.as_ref().unwrap();
    assert_eq!(
        (
            resp.status,
            resp.protocol.as_str(),
            resp.body_bytes,
            resp.redirects
        ),
        (200, "HTTP/1.1", 11, 0)
    );
}

#[tokio::test]
async fn localhost_goes_through_a_dns_phase() {
    let addr = serve_app().await;
    let a = run(&step(
        Method::GET,
        &format!("http://localhost:{}/hello", addr.port()),
    ))
    .await;
    assert_ok(&a);
    assert!(a.timings.dns.is_some(), "{:?}", a.timings);
    assert!(a.facts.ip.unwrap().is_loopback());
}

#[tokio::test]
async fn json_body_is_rendered_and_typed() {
    let addr = serve_app().await;
    let mut s = step(Method::POST, &format!("http://{addr}/echo"));
    s.body = Some(HttpBody::Json(JsonTemplate::Object(vec![
        ("name".into(), JsonTemplate::String(t("{{ name }}"))),
        ("n".into(), JsonTemplate::Number(42.into())),
        (
            "tags".into(),
            JsonTemplate::Array(vec![JsonTemplate::Bool(true), JsonTemplate::Null]),
        ),
    ])));
    let a = run(&s).await;
    assert_ok(&a);
    let echo = body_json(&a);
    assert_eq!(echo["method"], "POST");
    let sent: Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"name": "waymark", "n": 42, "tags": [true, null]})
    );
    assert_eq!(echo["headers"]["content-type"], "application/json");
    let len = echo["body"].as_str().unwrap().len();
    assert_eq!(echo["headers"]["content-length"], len.to_string());
    assert_eq!(a.request.as_ref().unwrap().body_bytes, len as u64);
}

#[tokio::test]
async fn json_leaf_that_is_one_variable_keeps_its_json_type() {
    let addr = serve_app().await;
    let vars = [
        ("id", json!(42)),
        ("flag", json!(true)),
        ("list", json!([1, 2])),
        ("zip", json!("01234")),
        ("text", json!("hello")),
        ("looks_numeric", json!("12345")),
    ];
    let mut s = step(Method::POST, &format!("http://{addr}/echo"));
    let mut fields: Vec<(String, JsonTemplate)> = vars
        .iter()
        .map(|(k, _)| {
            (
                k.to_string(),
                JsonTemplate::String(t(&format!("{{{{ {k} }}}}"))),
            )
        })
        .collect();
    fields.push(("mixed".into(), JsonTemplate::String(t("{{ id }} "))));
    fields.push(("secret".into(), JsonTemplate::String(t("{{ secret.PIN }}"))));
    s.body = Some(HttpBody::Json(JsonTemplate::Object(fields)));
    let a = attempt(&s, Duration::from_secs(5), &[], &vars).await;
    assert_ok(&a);
    let sent: Value = serde_json::from_str(body_json(&a)["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"id": 42, "flag": true, "list": [1, 2], "zip": "01234", "text": "hello",
               "looks_numeric": "12345", "mixed": "42 ", "secret": "1234"})
    );
}

#[tokio::test]
async fn form_body_is_urlencoded() {
    let addr = serve_app().await;
    let mut s = step(Method::POST, &format!("http://{addr}/echo"));
    s.body = Some(HttpBody::Form(vec![
        ("a".into(), t("x y {{ name }}")),
        ("b".into(), t("&=é")),
    ]));
    let a = run(&s).await;
    assert_ok(&a);
    let echo = body_json(&a);
    assert_eq!(echo["body"], "a=x+y+waymark&b=%26%3D%C3%A9");
    assert_eq!(
        echo["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn raw_body_is_sent_as_is_without_implicit_content_type() {
    let addr = serve_app().await;
    let mut s = step(Method::PUT, &format!("http://{addr}/echo"));
    s.body = Some(HttpBody::Raw(t("plain {{ name }}\n")));
    let a = run(&s).await;
    assert_ok(&a);
    let echo = body_json(&a);
    assert_eq!(
        (echo["method"].as_str(), echo["body"].as_str()),
        (Some("PUT"), Some("plain waymark\n"))
    );
    assert!(echo["headers"].get("content-type").is_none(), "{echo}");
    assert_eq!(echo["headers"]["content-length"], "14");

    s.headers = vec![("Content-Type".into(), t("text/csv"))];
    let echo = body_json(&run(&s).await);
    assert_eq!(echo["headers"]["content-type"], "text/csv");
}

#[tokio::test]
async fn query_pairs_are_appended_and_encoded() {
    let addr = serve_app().await;
    let mut s = step(Method::GET, &format!("http://{addr}/echo?x=1#fragment"));
    s.query = vec![
        ("q".into(), t("a b&c=d/é")),
        ("who".into(), t("{{ name }}")),
        ("empty".into(), t("")),
    ];
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(
        body_json(&a)["uri"],
        "/echo?x=1&q=a+b%26c%3Dd%2F%C3%A9&who=waymark&empty="
    );
    assert!(!a.request.unwrap().url.contains('#'));
}

#[tokio::test]
async fn step_and_propagation_headers_arrive_and_credentials_are_masked() {
    let addr = serve_app().await;
    let mut s = step(Method::GET, &format!("http://{addr}/echo"));
    s.headers = vec![
        ("X-Custom".into(), t("{{ name }}")),
        ("Authorization".into(), t("Bearer {{ secret.TOKEN }}")),
        ("baggage".into(), t("from-step")),
    ];
    let propagation = [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("baggage", "from-runner"),
    ];
    let a = run_with(&s, Duration::from_secs(5), &propagation).await;
    assert_ok(&a);
    let headers = &body_json(&a)["headers"];
    assert_eq!(headers["x-custom"], "waymark");
    assert_eq!(headers["authorization"], "Bearer s3cret-token");
    assert_eq!(headers["traceparent"], propagation[0].1);
    assert_eq!(
        headers["baggage"], "from-step",
        "the step's own header wins"
    );
    assert_eq!(
        headers["user-agent"],
        concat!("waymark/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(headers["host"], addr.to_string());

    let summary = &a.request.unwrap().headers;
    assert!(
        summary.contains(&("authorization".into(), "***".into())),
        "{summary:?}"
    );
    assert!(!format!("{summary:?}").contains("s3cret"));

    s.headers = vec![("User-Agent".into(), t("custom-agent/1"))];
    let headers = &body_json(&run(&s).await)["headers"];
    assert_eq!(headers["user-agent"], "custom-agent/1");
}

// ---------------------------------------------------------------------------------------------
// Redirects

#[tokio::test]
async fn follows_relative_and_absolute_redirects() {
    let addr = serve_app().await;
    let a = run(&step(Method::GET, &format!("http://{addr}/r/rel"))).await;
    assert_ok(&a);
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(body_json(&a)["uri"], "/echo");
    let resp = a.response.as_ref().unwrap();
    assert_eq!(resp.redirects, 2);
    assert_eq!(resp.url, format!("http://{addr}/echo"));
    assert_eq!(
        a.request.as_ref().unwrap().url,
        format!("http://{addr}/echo")
    );
    // Three hops, three connections: each phase adds up, and still fits in the total.
    let tm = a.timings;
    assert!(tm.connect.unwrap() + tm.ttfb.unwrap() + tm.download.unwrap() <= tm.total.unwrap());
}

#[tokio::test]
async fn see_other_and_found_turn_post_into_get_without_body() {
    let addr = serve_app().await;
    for path in ["see-other", "found"] {
        let mut s = step(Method::POST, &format!("http://{addr}/{path}"));
        s.body = Some(HttpBody::Json(JsonTemplate::Object(vec![(
            "a".into(),
            JsonTemplate::Bool(true),
        )])));
        let a = run(&s).await;
        assert_ok(&a);
        let echo = body_json(&a);
        assert_eq!(
            (echo["method"].as_str(), echo["body"].as_str()),
            (Some("GET"), Some("")),
            "{path}"
        );
        assert!(
            echo["headers"].get("content-type").is_none(),
            "{path}: {echo}"
        );
        assert_eq!(a.request.unwrap().method, "GET");
    }
}

#[tokio::test]
async fn temporary_redirect_keeps_method_and_body() {
    let addr = serve_app().await;
    let mut s = step(Method::POST, &format!("http://{addr}/temporary"));
    s.body = Some(HttpBody::Raw(t("payload")));
    let a = run(&s).await;
    assert_ok(&a);
    let echo = body_json(&a);
    assert_eq!(
        (echo["method"].as_str(), echo["body"].as_str()),
        (Some("POST"), Some("payload"))
    );
}

#[tokio::test]
async fn redirect_loop_fails_with_too_many_redirects() {
    let addr = serve_app().await;
    let mut s = step(Method::GET, &format!("http://{addr}/loop"));
    s.max_redirects = 3;
    let a = run(&s).await;
    let msg = assert_failed(&a, FailureClass::TooManyRedirects);
    assert!(msg.contains("more than 3 redirects"), "{msg}");
    assert_eq!(a.response.unwrap().redirects, 3);
}

#[tokio::test]
async fn redirects_are_the_result_when_not_followed() {
    let addr = serve_app().await;
    let mut s = step(Method::GET, &format!("http://{addr}/r/rel"));
    s.follow_redirects = false;
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(a.facts.status, Some(302));
    assert_eq!(a.facts.header("location"), Some("/r/abs"));
    assert_eq!(a.response.unwrap().redirects, 0);
}

#[tokio::test]
async fn credentials_are_dropped_only_when_the_redirect_changes_host() {
    let addr = serve_app().await;
    let with_credentials = |path: &str| {
        let mut s = step(Method::GET, &format!("http://{addr}/{path}"));
        s.headers = vec![
            ("Authorization".into(), t("Bearer x")),
            ("Cookie".into(), t("sid=1")),
            ("X-Other".into(), t("kept")),
        ];
        s
    };
    // 127.0.0.1 → localhost: another host, same server.
    let a = run(&with_credentials("to-localhost")).await;
    assert_ok(&a);
    let headers = &body_json(&a)["headers"];
    assert!(
        headers.get("authorization").is_none() && headers.get("cookie").is_none(),
        "{headers}"
    );
    assert_eq!(headers["x-other"], "kept");
    assert_eq!(headers["host"], format!("localhost:{}", addr.port()));

    let a = run(&with_credentials("r/rel")).await;
    let headers = &body_json(&a)["headers"];
    assert_eq!(
        (
            headers["authorization"].as_str(),
            headers["cookie"].as_str()
        ),
        (Some("Bearer x"), Some("sid=1"))
    );
}

// ---------------------------------------------------------------------------------------------
// Deadlines

#[tokio::test]
async fn silent_server_times_out_at_the_deadline() {
    let addr = raw_server(|s| send_then_stall(s, b"")).await;
    let started = Instant::now();
    let a = run_with(
        &step(Method::GET, &format!("http://{addr}/")),
        Duration::from_millis(300),
        &[],
    )
    .await;
    let elapsed = started.elapsed();
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("waiting for response headers"), "{msg}");
    assert!(msg.starts_with("timed out after 0.3"), "{msg}");
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    assert!(
        a.timings.connect.is_some() && a.timings.ttfb.is_none(),
        "{:?}",
        a.timings
    );
    assert!(a.timings.total.is_some());
    assert_eq!(a.facts.connected, Some(true));
}

#[tokio::test]
async fn stalled_body_times_out_with_ttfb_recorded() {
    let addr = raw_server(|s| {
        send_then_stall(
            s,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        )
    })
    .await;
    let started = Instant::now();
    let a = run_with(
        &step(Method::GET, &format!("http://{addr}/")),
        Duration::from_millis(300),
        &[],
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(400));
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("waiting for response body"), "{msg}");
    assert!(
        a.timings.ttfb.is_some() && a.timings.download.is_none(),
        "{:?}",
        a.timings
    );
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(a.response.unwrap().body_bytes, 10);
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

#[tokio::test]
async fn no_task_outlives_an_attempt_to_a_server_that_stops_reading() {
    // The server reads the request head, then neither reads the body nor answers: hyper's
    // own graceful close would wait forever to flush the rest of the body.
    let addr = raw_server(|s| send_then_stall(s, b"")).await;
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut s = step(Method::POST, &format!("http://{addr}/"));
    s.body = Some(HttpBody::Raw(Template::literal(
        "z".repeat(32 * 1024 * 1024),
    )));
    let a = run_with(&s, Duration::from_millis(300), &[]).await;
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("response headers"), "{msg}");
    assert_tasks_back_to(before).await;
}

// ---------------------------------------------------------------------------------------------
// Body cap

#[tokio::test]
async fn announced_length_over_the_cap_fails_at_once() {
    let addr = raw_server(|s| {
        send_then_stall(
            s,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n",
        )
    })
    .await;
    let mut s = step(Method::GET, &format!("http://{addr}/"));
    s.max_body_bytes = 1024;
    let started = Instant::now();
    let a = run(&s).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let msg = assert_failed(&a, FailureClass::BodyTooLarge);
    assert!(msg.contains("Content-Length is 1000000000000"), "{msg}");
    assert_eq!(a.facts.body, None);
}

#[tokio::test]
async fn head_is_not_held_to_the_announced_length() {
    let addr = serve_app().await;
    let mut s = step(Method::HEAD, &format!("http://{addr}/big"));
    s.max_body_bytes = 10;
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(a.facts.header("content-length"), Some("1000"));
    s.method = Method::GET;
    assert_failed(&run(&s).await, FailureClass::BodyTooLarge);
}

#[tokio::test]
async fn endless_chunked_stream_is_cut_at_the_cap() {
    let addr = raw_server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("4000\r\n{}\r\n", "y".repeat(0x4000));
        // Bounded: 64 MiB at most, or until the client hangs up.
        for _ in 0..4096 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let mut s = step(Method::GET, &format!("http://{addr}/"));
    s.max_body_bytes = 64 * 1024;
    let started = Instant::now();
    let a = run(&s).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let msg = assert_failed(&a, FailureClass::BodyTooLarge);
    assert!(msg.contains("max_body_bytes (65536 bytes)"), "{msg}");
    assert!(a.response.unwrap().body_bytes <= 64 * 1024);
    assert_eq!(a.facts.body, None);
}

// ---------------------------------------------------------------------------------------------
// Transport and protocol failures

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let a = run(&step(Method::GET, &format!("http://{addr}/"))).await;
    let msg = assert_failed(&a, FailureClass::Connect);
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("refused"),
        "{msg}"
    );
    assert_eq!(a.facts.connected, Some(false));
    assert_eq!(a.timings.connect, None);
    assert!(a.timings.total.is_some());
}

#[tokio::test]
async fn unresolvable_name_is_a_dns_failure() {
    // A 64-character label is not a valid DNS name: the system resolver rejects it without
    // sending a query, so this test sends no traffic off the machine (a name like
    // `nonexistent.invalid` would be sent to the configured nameserver).
    let host = format!("{}.test", "a".repeat(64));
    let a = run(&step(Method::GET, &format!("http://{host}/"))).await;
    let msg = assert_failed(&a, FailureClass::Dns);
    assert!(msg.contains(&host), "{msg}");
    assert_eq!(a.facts.connected, Some(false));
    assert_eq!(a.timings.dns, None);
}

#[tokio::test]
async fn garbage_response_is_a_protocol_failure() {
    let addr = raw_server(|mut s| async move {
        let _ = s
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02garbage\r\n\r\n")
            .await;
    })
    .await;
    let a = run(&step(Method::GET, &format!("http://{addr}/"))).await;
    assert_failed(&a, FailureClass::Protocol);
    assert_eq!(a.facts.status, None);
}

#[tokio::test]
async fn connection_closed_early_is_a_protocol_failure() {
    let closed_before = raw_server(|_| async {}).await;
    let a = run(&step(Method::GET, &format!("http://{closed_before}/"))).await;
    assert_failed(&a, FailureClass::Protocol);

    let closed_mid_body = raw_server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
    })
    .await;
    let a = run(&step(Method::GET, &format!("http://{closed_mid_body}/"))).await;
    let msg = assert_failed(&a, FailureClass::Protocol);
    assert!(msg.contains("after 10 bytes"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Journey errors

#[tokio::test]
async fn template_problems_fail_before_any_traffic() {
    let a = run(&step(Method::GET, "http://127.0.0.1:1/{{ undefined }}")).await;
    let msg = assert_failed(&a, FailureClass::Template);
    assert!(msg.contains("undefined"), "{msg}");
    assert_eq!(a.facts.connected, None);

    let msg = assert_failed(
        &run(&step(Method::GET, "{{ name }}/path")).await,
        FailureClass::Template,
    )
    .to_string();
    assert!(msg.contains("`waymark/path` is not a valid URL"), "{msg}");

    let msg = assert_failed(
        &run(&step(Method::GET, "ftp://127.0.0.1/")).await,
        FailureClass::Template,
    )
    .to_string();
    assert!(msg.contains("scheme `ftp`"), "{msg}");

    let mut s = step(Method::GET, "http://127.0.0.1:1/");
    s.headers = vec![("X-Bad".into(), t("line\nbreak"))];
    assert_failed(&run(&s).await, FailureClass::Template);
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn self_signed_certificate_fails_verification() {
    let addr = serve_tls(&[b"h2", b"http/1.1"]).await;
    let a = run(&step(
        Method::GET,
        &format!("https://localhost:{}/", addr.port()),
    ))
    .await;
    let msg = assert_failed(&a, FailureClass::Tls);
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(a.facts.connected, Some(true));
    assert!(a.timings.connect.is_some() && a.timings.tls.is_none());
}

#[tokio::test]
async fn insecure_skip_verify_accepts_it_and_records_expiry_over_h2() {
    let addr = serve_tls(&[b"h2", b"http/1.1"]).await;
    let mut s = step(Method::GET, &format!("https://localhost:{}/", addr.port()));
    s.insecure_skip_verify = true;
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(a.facts.body.as_deref(), Some(&b"secure"[..]));
    assert_eq!(a.response.as_ref().unwrap().protocol, "HTTP/2");
    let tm = a.timings;
    assert!(
        tm.dns.is_some() && tm.connect.is_some() && tm.tls.is_some() && tm.ttfb.is_some(),
        "{tm:?}"
    );
    let expected = CERT_NOT_AFTER_UNIX * 1000 - chrono::Utc::now().timestamp_millis();
    let actual = a.facts.certificate_expiration_ms.unwrap();
    assert!((actual - expected).abs() < 60_000, "{actual} vs {expected}");
}

#[tokio::test]
async fn https_records_subject_issuer_and_sans_like_the_tls_step() {
    let addr = serve_tls(&[b"h2", b"http/1.1"]).await;
    let mut s = step(Method::GET, &format!("https://localhost:{}/", addr.port()));
    s.insecure_skip_verify = true;
    let a = run(&s).await;
    assert_ok(&a);
    let f = &a.facts;
    // rcgen's default distinguished name, and the one SAN `self_signed_cert` asks for.
    assert_eq!(
        f.certificate_subject.as_deref(),
        Some("CN=rcgen self signed cert")
    );
    assert_eq!(f.certificate_issuer, f.certificate_subject, "self-signed");
    assert_eq!(f.certificate_sans.as_deref(), Some("localhost"));
    assert!(f.certificate_expiration_ms.unwrap() > 0);
}

#[tokio::test]
async fn https_without_h2_uses_http1() {
    let addr = serve_tls(&[b"http/1.1"]).await;
    let mut s = step(Method::GET, &format!("https://127.0.0.1:{}/", addr.port()));
    s.insecure_skip_verify = true;
    let a = run(&s).await;
    assert_ok(&a);
    assert_eq!(a.response.unwrap().protocol, "HTTP/1.1");
    assert!(a.facts.certificate_expiration_ms.unwrap() > 0);
}

/// An HTTPS server that completes the TLS handshake with ALPN `h2`, then never speaks.
async fn serve_silent_h2() -> SocketAddr {
    let (cert, key) = self_signed_cert();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut sink = [0u8; 4096];
            // Reads (so the client's writes never block) but never answers.
            while let Ok(n) = tls.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    });
    addr
}

#[tokio::test]
async fn silent_h2_server_times_out_and_leaves_no_task() {
    let addr = serve_silent_h2().await;
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut s = step(Method::GET, &format!("https://127.0.0.1:{}/", addr.port()));
    s.insecure_skip_verify = true;
    let a = run_with(&s, Duration::from_millis(300), &[]).await;
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(msg.contains("response headers"), "{msg}");
    assert_tasks_back_to(before).await;
}
