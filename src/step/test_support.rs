//! Test harness shared by the step tests: a [`Harness`] that renders with fixed variables and
//! the test [`SECRETS`], and runs one attempt; attempt assertions, and a closed port.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::journey::condition::Condition;
use crate::journey::template::{MapSecrets, Redactor, Scope, Template};
use crate::step::{Attempt, FailureClass, StepContext, StepExecutor};

/// The only secrets a step test sees: `TOKEN` and `PIN` (no environment).
const SECRETS: &[(&str, &str)] = &[("TOKEN", "s3cret-token"), ("PIN", "1234")];

/// Variables, [`SECRETS`] and redactor for one test; builds the [`Scope`] steps render with.
pub(super) struct Harness {
    vars: BTreeMap<String, Value>,
    secrets: MapSecrets,
    redactor: Redactor,
}

impl Harness {
    pub fn new(vars: &[(&str, Value)]) -> Harness {
        Harness {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            secrets: MapSecrets::new(SECRETS),
            redactor: Redactor::default(),
        }
    }

    pub fn scope(&self) -> Scope<'_> {
        Scope {
            vars: &self.vars,
            secrets: &self.secrets,
            redactor: &self.redactor,
            now: chrono::Utc::now(),
        }
    }

    /// One attempt with a deadline `timeout` from now.
    pub async fn run<S: StepExecutor>(&self, step: &S, timeout: Duration) -> Attempt {
        self.run_propagating(step, timeout, &[]).await
    }

    /// One attempt that also sends the given trace propagation headers.
    pub async fn run_propagating<S: StepExecutor>(
        &self,
        step: &S,
        timeout: Duration,
        propagation: &[(&str, &str)],
    ) -> Attempt {
        let ctx = StepContext {
            scope: self.scope(),
            deadline: Instant::now() + timeout,
            propagation_headers: propagation
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sensitive: false,
        };
        step.execute(&ctx).await
    }

    /// Evaluates a condition against the attempt's facts: (passed, actual).
    pub fn check(&self, condition: &str, attempt: &Attempt) -> (bool, String) {
        let c = Condition::parse(condition).unwrap();
        let outcome = c.evaluate(&attempt.facts, &self.scope());
        (outcome.passed, outcome.actual)
    }
}

/// A trace propagation header as the runner sends it (the W3C Trace Context example).
pub(super) const TRACEPARENT: (&str, &str) = (
    "traceparent",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
);

pub(super) fn t(src: &str) -> Template {
    Template::parse(src).unwrap()
}

#[track_caller]
pub(super) fn assert_ok(a: &Attempt) {
    assert!(a.failure.is_none(), "unexpected failure: {:?}", a.failure);
    assert!(a.timings.total.is_some());
    assert_eq!(a.facts.response_time, a.timings.total);
}

#[track_caller]
pub(super) fn assert_failed(a: &Attempt, class: FailureClass) -> &str {
    let f = a
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected {class:?}, got success: {a:?}"));
    assert_eq!(f.class, class, "{}", f.message);
    assert!(a.timings.total.is_some());
    &f.message
}

/// [`assert_failed`], and the message says `needle`: most failure tests check one phrase.
#[track_caller]
pub(super) fn assert_failed_with<'a>(a: &'a Attempt, class: FailureClass, needle: &str) -> &'a str {
    says(assert_failed(a, class), needle)
}

/// `msg`, once checked to contain `needle`; the step kinds' own `assert_failed` use it too.
#[track_caller]
pub(super) fn says<'a>(msg: &'a str, needle: &str) -> &'a str {
    assert!(msg.contains(needle), "{msg}");
    msg
}

/// The attempt ended at its 300 ms deadline: not before, and not long after.
#[track_caller]
pub(super) fn assert_ended_at_300ms(elapsed: Duration) {
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_millis(400),
        "{elapsed:?}"
    );
}

/// A TLS acceptor serving `cert` (with its PKCS#8 `key`) and offering the `alpn` protocols.
pub(super) fn tls_acceptor(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: &rcgen::KeyPair,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsAcceptor {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// A server that answers whatever it is sent with an HTTP 400, as HTTP servers do to a
/// ClientHello.
pub(super) async fn plain_http_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.read(&mut [0u8; 1024]).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    port
}

/// A port nothing listens on (bound, then released).
pub(super) async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
