//! Tests against tokio-rustls servers on 127.0.0.1 with certificates made here by rcgen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::journey::TlsStep;
use crate::step::test_support::{
    self, Harness, assert_ended_at_300ms, assert_failed, assert_failed_with, assert_ok,
    closed_port, plain_http_server, t,
};
use crate::step::tls_client::verifying_with;
use crate::step::{Attempt, FailureClass, StepContext};

const THREE_DAYS_MS: i64 = 3 * 24 * 3600 * 1000;
const FIVE_S: Duration = Duration::from_secs(5);

fn in_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// Leaf parameters: SANs `shop.test` and `127.0.0.1`, subject `CN=shop.test, O=Waymark Tests`.
fn leaf_params(not_after: time::OffsetDateTime) -> CertificateParams {
    let mut params =
        CertificateParams::new(vec!["shop.test".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "shop.test");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Waymark Tests");
    params.not_before = in_days(-30);
    params.not_after = not_after;
    params
}

/// A self-signed leaf expiring in 3 days.
fn self_signed() -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(in_days(3)).self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

/// A CA, and a leaf it signed valid until `not_after`: (CA certificate, leaf, leaf key).
fn ca_signed(
    not_after: time::OffsetDateTime,
) -> (CertificateDer<'static>, CertificateDer<'static>, KeyPair) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Waymark Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params(not_after);
    params.not_before = in_days(-60);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (ca.der().clone(), leaf.der().clone(), key)
}

/// A TLS server; for each connection it reports whether the client closed with close_notify.
async fn tls_server(
    cert: CertificateDer<'static>,
    key: &KeyPair,
) -> (SocketAddr, mpsc::UnboundedReceiver<bool>) {
    let acceptor = test_support::tls_acceptor(cert, key, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    // Ok(0) only after the peer's close_notify; a bare FIN is an error.
                    let polite = matches!(tls.read(&mut [0u8; 16]).await, Ok(0));
                    let _ = tx.send(polite);
                }
            });
        }
    });
    (addr, rx)
}

fn step(host: &str, port: u16, server_name: Option<&str>, insecure: bool) -> TlsStep {
    TlsStep {
        host: t(host),
        port,
        server_name: server_name.map(t),
        insecure_skip_verify: insecure,
    }
}

/// Probes 127.0.0.1:`port` within five seconds, without variables.
async fn probe(port: u16, server_name: Option<&str>, insecure: bool) -> Attempt {
    Harness::new(&[])
        .run(&step("127.0.0.1", port, server_name, insecure), FIVE_S)
        .await
}

/// Probes 127.0.0.1:`port` like [`probe`], verifying but trusting only `root` (instead of
/// the Mozilla roots).
async fn probe_trusting(
    port: u16,
    server_name: Option<&str>,
    root: CertificateDer<'static>,
) -> Attempt {
    let s = step("127.0.0.1", port, server_name, false);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = verifying_with(roots);
    let h = Harness::new(&[]);
    let ctx = StepContext {
        scope: h.scope(),
        deadline: Instant::now() + FIVE_S,
        propagation_headers: Vec::new(),
        sensitive: false,
    };
    s.probe(&ctx, Arc::new(config)).await
}

#[tokio::test]
async fn insecure_skip_verify_inspects_a_self_signed_certificate() {
    let (cert, key) = self_signed();
    let (addr, mut closes) = tls_server(cert, &key).await;
    let a = probe(addr.port(), Some("shop.test"), true).await;
    assert_ok(&a);
    let f = &a.facts;
    let left = f.certificate_expiration_ms.unwrap();
    assert!((left - THREE_DAYS_MS).abs() < 60_000, "{left}");
    assert_eq!(
        f.certificate_subject.as_deref(),
        Some("CN=shop.test, O=Waymark Tests")
    );
    assert_eq!(f.certificate_issuer, f.certificate_subject, "self-signed");
    assert_eq!(f.certificate_sans.as_deref(), Some("shop.test, 127.0.0.1"));
    assert_eq!(f.connected, Some(true));
    assert_eq!(f.ip, Some(addr.ip()));
    assert!(a.timings.connect.is_some() && a.timings.tls.is_some());
    assert!(a.timings.dns.is_none());
    assert_eq!(closes.recv().await, Some(true), "closed with close_notify");
}

#[tokio::test]
async fn self_signed_certificate_fails_verification_as_self_signed() {
    let (cert, key) = self_signed();
    let (addr, _closes) = tls_server(cert, &key).await;
    let a = probe(addr.port(), Some("shop.test"), false).await;
    let msg = assert_failed_with(
        &a,
        FailureClass::Tls,
        "the certificate is self-signed, and not trusted",
    );
    assert!(msg.contains("shop.test"), "{msg}");
    assert_eq!(a.facts.certificate_expiration_ms, None);
    assert_eq!(a.facts.connected, Some(true));
}

#[tokio::test]
async fn expiry_condition_fails_showing_the_time_left() {
    let (cert, key) = self_signed();
    let (addr, _closes) = tls_server(cert, &key).await;
    let h = Harness::new(&[]);
    let a = probe(addr.port(), None, true).await;
    assert_ok(&a);
    let (passed, actual) = h.check("[CERTIFICATE_EXPIRATION] > 336h", &a);
    assert!(!passed);
    assert!(actual.contains("71h") || actual.contains("72h"), "{actual}");
    assert!(h.check("[CERTIFICATE_EXPIRATION] > 48h", &a).0);
    assert!(h.check("[CERTIFICATE_SANS] == pat(*shop.test*)", &a).0);
    assert!(h.check("[CERTIFICATE_ISSUER] == pat(*Waymark*)", &a).0);
}

#[tokio::test]
async fn ca_signed_certificate_verifies_by_name_and_by_ip() {
    let (ca, leaf, key) = ca_signed(in_days(90));
    let (addr, mut closes) = tls_server(leaf, &key).await;
    let a = probe_trusting(addr.port(), Some("shop.test"), ca.clone()).await;
    assert_ok(&a);
    assert_eq!(
        a.facts.certificate_issuer.as_deref(),
        Some("CN=Waymark Test CA")
    );
    assert_eq!(closes.recv().await, Some(true));
    // No server_name: the IP literal is verified against the IP SAN.
    assert_ok(&probe_trusting(addr.port(), None, ca).await);
}

#[tokio::test]
async fn name_mismatch_and_expiry_fail_verification() {
    let (ca, leaf, key) = ca_signed(in_days(90));
    let (addr, _closes) = tls_server(leaf, &key).await;
    let a = probe_trusting(addr.port(), Some("other.test"), ca).await;
    assert_failed_with(
        &a,
        FailureClass::Tls,
        "the certificate is for shop.test, 127.0.0.1, not other.test",
    );

    let (ca, leaf, key) = ca_signed(in_days(-1));
    let (addr, _closes) = tls_server(leaf, &key).await;
    assert_failed_with(
        &probe_trusting(addr.port(), Some("shop.test"), ca).await,
        FailureClass::Tls,
        "the certificate expired on 20",
    );

    // With insecure_skip_verify the expired certificate is inspected: time left is negative.
    let a = probe(addr.port(), None, true).await;
    assert_ok(&a);
    let left = a.facts.certificate_expiration_ms.unwrap();
    assert!((left + 24 * 3600 * 1000).abs() < 60_000, "{left}");
}

#[tokio::test]
async fn server_that_never_speaks_tls_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    let a = Harness::new(&[])
        .run(
            &step("127.0.0.1", port, None, true),
            Duration::from_millis(300),
        )
        .await;
    let elapsed = started.elapsed();
    assert_failed_with(&a, FailureClass::Timeout, "TLS handshake");
    assert_ended_at_300ms(elapsed);
}

#[tokio::test]
async fn peer_closing_during_the_handshake_is_a_tls_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let a = probe(port, None, true).await;
    assert_failed(&a, FailureClass::Tls);
}

#[tokio::test]
async fn refused_port_and_bad_server_name() {
    let port = closed_port().await;
    let a = probe(port, None, false).await;
    assert_failed(&a, FailureClass::Connect);
    let a = probe(port, Some("not a name!"), false).await;
    assert_failed_with(&a, FailureClass::Template, "not a valid TLS server name");
    assert_eq!(a.facts.connected, None, "nothing was attempted");
}

/// Issue #19: a CA certificate served as the leaf said only `CaUsedAsEndEntity`.
#[tokio::test]
async fn ca_certificate_served_as_the_leaf_is_said_plainly() {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = leaf_params(in_days(30));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap().der().clone();
    let (addr, _closes) = tls_server(ca.clone(), &ca_key).await;
    let a = probe_trusting(addr.port(), Some("shop.test"), ca).await;
    assert_failed_with(
        &a,
        FailureClass::Tls,
        "the certificate is a CA certificate used as a server certificate",
    );
}

#[tokio::test]
async fn unknown_issuer_is_not_called_self_signed() {
    let (_ca, leaf, key) = ca_signed(in_days(90));
    let (addr, _closes) = tls_server(leaf, &key).await;
    let h = Harness::new(&[]);
    let s = step("127.0.0.1", addr.port(), Some("shop.test"), false);
    assert_failed_with(
        &h.run(&s, FIVE_S).await,
        FailureClass::Tls,
        "the certificate's issuer is unknown: no trusted CA signed it",
    );
}

/// Issue #19: a plain HTTP server on the port said only `InvalidContentType`.
#[tokio::test]
async fn plain_http_server_is_said_not_to_speak_tls() {
    let port = plain_http_server().await;
    let a = probe(port, None, true).await;
    assert_failed_with(
        &a,
        FailureClass::Tls,
        "the server's answer is not TLS (plain HTTP on this port?)",
    );
}
