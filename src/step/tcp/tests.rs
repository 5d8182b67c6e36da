//! Tests against real TCP servers on 127.0.0.1 (random ports).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::journey::{BytesTemplate, DEFAULT_TCP_MAX_BYTES, TcpStep};
use crate::step::test_support::{
    Harness, assert_ended_at_300ms, assert_failed, assert_failed_with, assert_ok, closed_port, t,
};
use crate::step::{Attempt, FailureClass};

// ---------------------------------------------------------------------------------------------
// Servers

/// Accepts connections forever and hands each to `handle`.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(handle(s));
        }
    });
    addr
}

async fn echo_server() -> SocketAddr {
    serve(|mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Accepts connections and holds each for 30 s without a byte.
async fn silent_server() -> SocketAddr {
    serve(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await
}

/// Writes each chunk with a pause in between, then keeps the connection open.
async fn chunked_server(chunks: &'static [&'static [u8]]) -> SocketAddr {
    serve(move |mut s| async move {
        for c in chunks {
            let _ = s.write_all(c).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

fn text(src: &str) -> Option<BytesTemplate> {
    Some(BytesTemplate {
        template: t(src),
        hex: false,
    })
}

fn hex(src: &str) -> Option<BytesTemplate> {
    Some(BytesTemplate {
        template: t(src),
        hex: true,
    })
}

fn step(host: &str, port: u16) -> TcpStep {
    TcpStep {
        host: t(host),
        port,
        send: None,
        expect: None,
        max_bytes: DEFAULT_TCP_MAX_BYTES,
    }
}

/// A step that sends `send`, then reads until `expect`.
fn exchange(
    host: &str,
    port: u16,
    send: Option<BytesTemplate>,
    expect: Option<BytesTemplate>,
) -> TcpStep {
    TcpStep {
        send,
        expect,
        ..step(host, port)
    }
}

const FIVE_S: Duration = Duration::from_secs(5);

/// One attempt without variables, with five seconds to go.
async fn run(s: &TcpStep) -> Attempt {
    Harness::new(&[]).run(s, FIVE_S).await
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn echo_server_answers_what_was_sent() {
    let addr = echo_server().await;
    let h = Harness::new(&[]);
    let s = exchange("127.0.0.1", addr.port(), text("PING\r\n"), text("PING"));
    let a = h.run(&s, FIVE_S).await;
    assert_ok(&a);
    assert_eq!(a.facts.body.as_deref(), Some(&b"PING\r\n"[..]));
    assert_eq!(a.facts.connected, Some(true));
    assert_eq!(a.facts.ip, Some(addr.ip()));
    assert!(a.timings.dns.is_none(), "an IP literal needs no DNS");
    assert!(a.timings.connect.is_some());
    assert!(a.timings.ttfb.is_some());
    assert!(h.check("[BODY] == PING", &a).0);
    assert!(h.check("[CONNECTED] == true", &a).0);
}

#[tokio::test]
async fn hex_send_and_expect() {
    let addr = echo_server().await;
    let a = run(&exchange(
        "127.0.0.1",
        addr.port(),
        hex("de ad\tBE ef"),
        hex("adbe"),
    ))
    .await;
    assert_ok(&a);
    assert_eq!(a.facts.body.as_deref(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
}

#[tokio::test]
async fn send_and_expect_are_templates() {
    let addr = echo_server().await;
    let h = Harness::new(&[
        ("who", Value::from("waymark")),
        ("bytes", Value::from("2a 0a")),
    ]);
    let mut s = step("127.0.0.1", addr.port());
    s.send = text("HELLO {{ who }}\n");
    s.expect = text("{{ who }}");
    assert_ok(&h.run(&s, FIVE_S).await);

    s.send = hex("{{ bytes }}");
    s.expect = hex("0a");
    assert_ok(&h.run(&s, FIVE_S).await);
}

#[tokio::test]
async fn bad_hex_at_run_time_is_a_template_error_before_connecting() {
    let h = Harness::new(&[("bytes", Value::from("zz"))]);
    let mut s = step("127.0.0.1", closed_port().await);
    s.send = hex("{{ bytes }}");
    let a = h.run(&s, FIVE_S).await;
    let msg = assert_failed(&a, FailureClass::Template);
    assert!(
        msg.contains("tcp.send") && msg.contains("{{ bytes }}"),
        "{msg}"
    );
    assert_eq!(a.facts.connected, None, "nothing was attempted");

    let s = step("{{ undefined }}", 1);
    assert_failed(&h.run(&s, FIVE_S).await, FailureClass::Template);
}

#[tokio::test]
async fn expected_bytes_split_across_reads_are_found() {
    let addr = chunked_server(&[b"+PO", b"N", b"G\r\n"]).await;
    let a = run(&exchange("127.0.0.1", addr.port(), None, text("+PONG"))).await;
    assert_ok(&a);
    assert!(a.facts.body.as_deref().unwrap().starts_with(b"+PONG"));
}

#[tokio::test]
async fn expect_not_within_max_bytes_is_a_protocol_failure() {
    let addr = chunked_server(&[&[b'x'; 100]]).await;
    let s = TcpStep {
        max_bytes: 10,
        ..exchange("127.0.0.1", addr.port(), None, text("PONG"))
    };
    let a = run(&s).await;
    assert_failed_with(
        &a,
        FailureClass::Protocol,
        "`PONG` not found in the first 10 bytes",
    );
    assert_eq!(a.facts.body.as_deref(), Some(&[b'x'; 10][..]), "capped");
}

#[tokio::test]
async fn peer_closing_before_expect_is_closed_by_peer() {
    let addr = serve(|mut s| async move {
        // Reads the request first, so the close is a FIN rather than a reset.
        let _ = s.read_exact(&mut [0u8; 6]).await;
        let _ = s.write_all(b"-ERR go away\r\n").await;
    })
    .await;
    let s = exchange("127.0.0.1", addr.port(), text("PING\r\n"), text("+PONG"));
    let a = run(&s).await;
    assert_failed_with(
        &a,
        FailureClass::ClosedByPeer,
        "closed the connection after 14 bytes",
    );
    assert_eq!(a.facts.body.as_deref(), Some(&b"-ERR go away\r\n"[..]));
    assert_eq!(a.facts.connected, Some(true));
}

#[tokio::test]
async fn silent_server_times_out_by_the_deadline() {
    let addr = silent_server().await;
    let s = exchange("127.0.0.1", addr.port(), text("hello"), text("anything"));
    let started = Instant::now();
    let a = Harness::new(&[]).run(&s, Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    assert_failed_with(&a, FailureClass::Timeout, "timed out reading");
    assert_ended_at_300ms(elapsed);
    assert_eq!(a.facts.body.as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn refused_port_is_a_connect_failure() {
    let a = run(&step("127.0.0.1", closed_port().await)).await;
    assert_failed_with(&a, FailureClass::Connect, "refused");
    assert_eq!(a.facts.connected, Some(false));
}

#[tokio::test]
async fn connect_only_passes_once_connected() {
    let addr = silent_server().await;
    let h = Harness::new(&[]);
    let a = h.run(&step("127.0.0.1", addr.port()), FIVE_S).await;
    assert_ok(&a);
    assert_eq!(a.facts.body, None, "nothing is read without `expect`");
    assert_eq!(h.check("[CONNECTED] == true", &a), (true, "true".into()));
    assert!(h.check("[RESPONSE_TIME] < 1000", &a).0);
}

#[tokio::test]
async fn localhost_resolves_and_falls_back_across_addresses() {
    // `localhost` may resolve to ::1 first, where nothing listens: the next address is tried.
    let addr = echo_server().await;
    let a = run(&exchange("localhost", addr.port(), text("hi"), text("hi"))).await;
    assert_ok(&a);
    assert!(a.timings.dns.is_some());
    assert_eq!(a.facts.ip, Some(addr.ip()));
}

#[tokio::test]
async fn peer_resetting_the_connection_is_closed_by_peer() {
    let addr = serve(|s| async move {
        // A zero linger turns the close into a reset.
        let _ = s.set_zero_linger();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    })
    .await;
    let a = run(&exchange("127.0.0.1", addr.port(), None, text("+PONG"))).await;
    assert_failed_with(
        &a,
        FailureClass::ClosedByPeer,
        "broke the connection while reading",
    );
}
