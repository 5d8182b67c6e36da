//! WebSocket, TCP, DNS, TLS and wait steps, run as journeys against real peers on loopback:
//! the demo shop's order feed, Python's `websockets` and `dnsmasq` (started by
//! scripts/test.sh), and servers written here.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waymark::run::{Outcome, StepStatus};
use waymark::step::FailureClass;

use crate::support::{env_url, run_yaml};

#[tokio::test]
async fn http_and_websocket_example_sees_the_order_ship() {
    let shop = waymark::demo::DemoTarget::start(0, &Default::default())
        .await
        .unwrap();
    let yaml = std::fs::read_to_string("journeys/shop-order-feed.yaml").unwrap();
    let secrets = [("SHOP_PASSWORD", waymark::demo::DEMO_PASSWORD)];
    let r = run_yaml(&yaml, &shop.base_url(), &secrets).await;
    let feed = &r.steps[3];
    assert_eq!(r.outcome, Outcome::Passed, "{:#?}", r.steps);
    assert_eq!(feed.kind, "websocket");
    assert_eq!(feed.actions.len(), 5, "{feed:#?}");
    assert!(feed.actions.iter().all(|a| a.passed));
    assert!(feed.timings.handshake.is_some() && feed.timings.connect.is_some());
    assert_eq!(feed.response.as_ref().unwrap().status, 101);
}

#[tokio::test]
async fn websocket_against_an_independent_peer() {
    let peer = env_url("WS_PEER_URL");
    let yaml = r#"
name: python peer
variables: { n: 41 }
steps:
  - name: echo
    websocket:
      url: "{{ base }}/echo"
      subprotocols: [v1.echo]
      actions:
        - expect: { conditions: ["[MESSAGE].server == python-websockets"], timeout: 2s }
        - send: { json: { type: add, n: "{{ n }}" } }
        - expect:
            conditions: ["[MESSAGE].echo == true", "[MESSAGE].n == 41"]
            extract: { echoed: "[MESSAGE].n" }
        - send: { text: "plain {{ echoed }}" }
        - expect: { conditions: ["[MESSAGE] == plain 41"] }
        - ping: {}
        - close: { code: 1000 }
    conditions: ["[HEADERS].sec-websocket-protocol == v1.echo"]
  - name: uses the extracted value
    wait: 1ms
"#;
    let r = run_yaml(yaml, &peer, &[]).await;
    assert_eq!(r.outcome, Outcome::Passed, "{:#?}", r.steps);
    assert_eq!(r.steps[0].extracted, vec!["echoed"]);
}

#[tokio::test]
async fn websocket_peer_failures_are_classified_within_their_timeouts() {
    let peer = env_url("WS_PEER_URL");
    let yaml = r#"
name: hostile python peer
steps:
  - name: closes with 1011
    timeout: 2s
    websocket:
      url: "{{ base }}/close1011"
      actions:
        - expect: { conditions: ["[MESSAGE].type == never"] }
  - name: floods
    always_run: true
    timeout: 5s
    websocket:
      url: "{{ base }}/flood"
      max_skipped_messages: 500
      actions:
        - expect: { conditions: ["[MESSAGE].type == never"] }
"#;
    let started = Instant::now();
    let r = run_yaml(yaml, &peer, &[]).await;
    let classes: Vec<_> = r
        .steps
        .iter()
        .map(|s| s.failure.as_ref().map(|f| f.class))
        .collect();
    assert_eq!(
        classes,
        [
            Some(FailureClass::ClosedByPeer),
            Some(FailureClass::NoMatchingMessage)
        ],
        "{:#?}",
        r.steps
    );
    assert!(
        r.steps[0]
            .failure
            .as_ref()
            .unwrap()
            .message
            .contains("1011")
    );
    // The flood is cut by the skip bound, long before the 5 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn tcp_server(answer: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if answer {
                        let _ = s.write_all(&buf[..n]).await;
                    }
                }
            });
        }
    });
    addr.port().to_string()
}

#[tokio::test]
async fn tcp_steps_talk_and_time_out() {
    let echo = tcp_server(true).await;
    let silent = tcp_server(false).await;
    let yaml = format!(
        r#"
name: tcp
steps:
  - name: echo text
    tcp: {{ host: 127.0.0.1, port: {echo}, send: "PING\r\n", expect: "PING" }}
    conditions: ["[CONNECTED] == true", "[BODY] == PING", "[RESPONSE_TIME] < 1000"]
  - name: echo hex
    tcp: {{ host: 127.0.0.1, port: {echo}, send: {{ hex: "de ad be ef" }}, expect: {{ hex: "deadbeef" }} }}
  - name: silent
    timeout: 400ms
    tcp: {{ host: 127.0.0.1, port: {silent}, send: "hello", expect: "anything" }}
"#
    );
    let started = Instant::now();
    let r = run_yaml(&yaml, "http://unused", &[]).await;
    assert_eq!(r.steps[0].status, StepStatus::Passed, "{:#?}", r.steps[0]);
    assert_eq!(r.steps[1].status, StepStatus::Passed, "{:#?}", r.steps[1]);
    assert_eq!(
        r.steps[2].failure.as_ref().unwrap().class,
        FailureClass::Timeout
    );
    assert!(
        started.elapsed() < Duration::from_millis(500 + 200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dns_steps_against_dnsmasq() {
    let server = std::env::var("DNS_SERVER")
        .expect("DNS_SERVER is not set: run the suite with scripts/test.sh, which starts dnsmasq");
    let yaml = format!(
        r#"
name: dns
steps:
  - name: a
    dns: {{ name: shop.test, type: A, server: "{server}" }}
    conditions: ["[DNS_RCODE] == NOERROR", "[BODY][0] == 127.0.0.1", "len([BODY]) == 1"]
  - name: aaaa
    dns: {{ name: shop.test, type: AAAA, server: "{server}" }}
    conditions: ["[BODY][0] == ::1"]
  - name: cname
    dns: {{ name: www.shop.test, type: CNAME, server: "{server}" }}
    conditions: ["[BODY] == pat(*shop.test*)"]
  - name: mx
    dns: {{ name: shop.test, type: MX, server: "{server}", tcp: true }}
    conditions: ["[BODY][0] == pat(10 mail.shop.test*)"]
  - name: txt
    dns: {{ name: shop.test, type: TXT, server: "{server}" }}
    conditions: ["[BODY] == pat(*v=spf1 -all*)"]
  - name: nxdomain
    dns: {{ name: nope.shop.test, server: "{server}" }}
    conditions: ["[DNS_RCODE] == NXDOMAIN", "len([BODY]) == 0"]
"#
    );
    let r = run_yaml(&yaml, "http://unused", &[]).await;
    for s in &r.steps {
        assert_eq!(s.status, StepStatus::Passed, "{s:#?}");
    }
}

#[tokio::test]
async fn a_dns_server_that_never_answers_times_out() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let yaml = format!(
        "name: dns\nsteps:\n  - name: silent\n    timeout: 400ms\n    dns: {{ name: shop.test, server: \"{addr}\" }}\n"
    );
    let started = Instant::now();
    let r = run_yaml(&yaml, "http://unused", &[]).await;
    assert_eq!(
        r.steps[0].failure.as_ref().unwrap().class,
        FailureClass::Timeout,
        "{:#?}",
        r.steps
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    drop(socket);
}

/// A TLS server whose certificate (made here) expires in 3 days.
async fn tls_server_expiring_in_3_days() -> u16 {
    let mut params = rcgen::CertificateParams::new(vec!["shop.test".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = time_in_days(3);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
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
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

fn time_in_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

#[tokio::test]
async fn tls_expiry_condition_fails_with_the_actual_value() {
    let port = tls_server_expiring_in_3_days().await;
    let yaml = format!(
        r#"
name: tls
steps:
  - name: certificate
    tls: {{ host: 127.0.0.1, port: {port}, server_name: shop.test, insecure_skip_verify: true }}
    conditions:
      - "[CERTIFICATE_EXPIRATION] > 48h"
      - "[CERTIFICATE_SANS] == pat(*shop.test*)"
      - "[CERTIFICATE_EXPIRATION] > 336h"
  - name: verified
    always_run: true
    tls: {{ host: 127.0.0.1, port: {port}, server_name: shop.test }}
"#
    );
    let r = run_yaml(&yaml, "http://unused", &[]).await;
    let cert = &r.steps[0];
    assert_eq!(
        cert.failure.as_ref().unwrap().class,
        FailureClass::Condition,
        "{cert:#?}"
    );
    let outcomes: Vec<_> = cert.conditions.iter().map(|c| c.passed).collect();
    assert_eq!(outcomes, [true, true, false]);
    // About 72 hours, shown in the actual value.
    let actual = &cert.conditions[2].actual;
    assert!(actual.contains("71h") || actual.contains("72h"), "{actual}");
    assert_eq!(
        r.steps[1].failure.as_ref().unwrap().class,
        FailureClass::Tls
    );
}
