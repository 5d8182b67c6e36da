//! TLS: certificates, verification, ALPN.

use super::*;

/// `GET https://localhost:<port>/` of `addr`.
fn localhost_get(addr: SocketAddr) -> HttpStep {
    step(Method::GET, &format!("https://localhost:{}/", addr.port()))
}

/// An attempt of [`localhost_get`] accepting any certificate, on a fresh server offering `h2`
/// and `http/1.1`, which must succeed.
async fn insecure_get_over_h2() -> Attempt {
    let addr = serve_tls(&[b"h2", b"http/1.1"]).await;
    let s = HttpStep {
        insecure_skip_verify: true,
        ..localhost_get(addr)
    };
    passed(&s).await
}

#[tokio::test]
async fn self_signed_certificate_fails_verification() {
    let addr = serve_tls(&[b"h2", b"http/1.1"]).await;
    let a = run(&localhost_get(addr)).await;
    assert_failed_with(&a, FailureClass::Tls, "certificate");
    assert_eq!(a.facts.connected, Some(true));
    assert!(a.timings.connect.is_some() && a.timings.tls.is_none());
}

#[tokio::test]
async fn insecure_skip_verify_accepts_it_and_records_expiry_over_h2() {
    let a = insecure_get_over_h2().await;
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
    let a = insecure_get_over_h2().await;
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
    let a = passed(&s).await;
    assert_eq!(a.response.unwrap().protocol, "HTTP/1.1");
    assert!(a.facts.certificate_expiration_ms.unwrap() > 0);
}

/// An HTTPS server that completes the TLS handshake with ALPN `h2`, then never speaks.
async fn serve_silent_h2() -> SocketAddr {
    let acceptor = tls_acceptor(&[b"h2"]);
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
    assert_failed_with(&a, FailureClass::Timeout, "response headers");
    assert_tasks_back_to(before).await;
}

/// Issue #19: TLS failures of https steps are said in plain words, like the `tls` step's.
#[tokio::test]
async fn tls_failures_are_said_plainly_for_https() {
    let port = test_support::plain_http_server().await;
    let a = run(&step(Method::GET, &format!("https://127.0.0.1:{port}/"))).await;
    assert_failed_with(&a, FailureClass::Tls, "the server's answer is not TLS");

    // A server that speaks no protocol the client offers aborts the handshake with an alert.
    let addr = serve_tls(&[b"spdy/1"]).await;
    let mut s = step(Method::GET, &format!("https://127.0.0.1:{}/", addr.port()));
    s.insecure_skip_verify = true;
    let msg = assert_failed(&run(&s).await, FailureClass::Tls).to_string();
    assert!(
        msg.contains(
            "the server aborted the handshake: it accepts none of the application \
             protocols offered (alert `NoApplicationProtocol`)"
        ),
        "{msg}"
    );
}
