//! `tls` steps: a TLS handshake only, and what the peer's leaf certificate says.
//!
//! The two client configurations (verifying against the Mozilla roots from webpki-roots, and
//! `insecure_skip_verify`) name the `ring` provider explicitly and are built once. They offer
//! no ALPN: this is a certificate probe, not an HTTP client.
//!
//! rustls does not hand out the peer's certificates after a failed handshake, so a
//! verification failure (`tls`) leaves the certificate facts empty; use
//! `insecure_skip_verify: true` to inspect a self-signed or expired certificate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use x509_parser::extensions::GeneralName;

use super::tcp::{connect, failure, finish, template_failure};
use super::{Attempt, Failure, FailureClass, StepContext, StepExecutor};
use crate::journey::TlsStep;
use crate::journey::facts::Facts;

#[cfg(test)]
mod tests;

static VERIFYING: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
});

static INSECURE: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let verifier = AcceptAnyCertificate {
        algorithms: provider().signature_verification_algorithms,
    };
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    )
});

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl StepExecutor for TlsStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let config = if self.insecure_skip_verify {
            &INSECURE
        } else {
            &VERIFYING
        };
        self.probe(ctx, Arc::clone(config)).await
    }
}

impl TlsStep {
    /// One attempt with the given client configuration (tests bring their own roots).
    async fn probe(&self, ctx: &StepContext<'_>, config: Arc<ClientConfig>) -> Attempt {
        let started = Instant::now();
        let mut attempt = Attempt::default();
        if let Err(failure) = self.run(ctx, config, &mut attempt).await {
            attempt.failure = Some(failure);
        }
        finish(&mut attempt, started);
        attempt
    }

    async fn run(
        &self,
        ctx: &StepContext<'_>,
        config: Arc<ClientConfig>,
        attempt: &mut Attempt,
    ) -> Result<(), Failure> {
        let host = self.host.render(&ctx.scope).map_err(template_failure)?;
        let sni = server_name(self.server_name.as_deref().unwrap_or(&host))?;
        let (tcp, peer) = connect(&host, self.port, ctx.deadline, attempt).await?;

        let started = Instant::now();
        let handshake = TlsConnector::from(config).connect(sni.clone(), tcp);
        let mut stream = match timeout_at(ctx.deadline, handshake).await {
            Err(_) => {
                return Err(failure(
                    FailureClass::Timeout,
                    format!(
                        "timed out in the TLS handshake with {} ({peer})",
                        sni.to_str()
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(failure(
                    FailureClass::Tls,
                    format!(
                        "TLS handshake with {} ({peer}) failed: {}",
                        sni.to_str(),
                        handshake_error(&e)
                    ),
                ));
            }
            Ok(Ok(stream)) => stream,
        };
        attempt.timings.tls = Some(started.elapsed());
        if let Some(leaf) = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            certificate_facts(leaf, &mut attempt.facts);
        }
        // close_notify, then FIN; the peer's own close_notify is not awaited.
        let _ = timeout_at(ctx.deadline, stream.shutdown()).await;
        Ok(())
    }
}

/// SNI and the name to verify: an IP literal (`[v6]` too) becomes an IP server name.
fn server_name(text: &str) -> Result<ServerName<'static>, Failure> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|e| {
        failure(
            FailureClass::Template,
            format!("`{bare}` is not a valid TLS server name: {e}"),
        )
    })
}

/// The rustls reason, with the common certificate problems said plainly first.
fn handshake_error(e: &std::io::Error) -> String {
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    let plain = match cert {
        CertificateError::UnknownIssuer => "unknown issuer (self-signed or untrusted CA)",
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "name mismatch"
        }
        CertificateError::Revoked => "revoked",
        _ => return format!("certificate rejected: {e}"),
    };
    format!("certificate rejected, {plain}: {e}")
}

/// `[CERTIFICATE_EXPIRATION]`, `[CERTIFICATE_SUBJECT]`, `[CERTIFICATE_ISSUER]` and
/// `[CERTIFICATE_SANS]` from a DER leaf certificate. A certificate that does not parse leaves
/// them unset: a fact about the peer, not an error of the attempt.
pub(crate) fn certificate_facts(der: &CertificateDer<'_>, facts: &mut Facts) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return;
    };
    facts.certificate_expiration_ms = cert
        .validity()
        .not_after
        .timestamp()
        .checked_mul(1000)
        .map(|ms| ms.saturating_sub(chrono::Utc::now().timestamp_millis()));
    facts.certificate_subject = Some(cert.subject().to_string());
    facts.certificate_issuer = Some(cert.issuer().to_string());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => ip_text(b),
                _ => None,
            })
            .collect();
        facts.certificate_sans = Some(names.join(", "));
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| Ipv6Addr::from(v6).to_string())
}

/// Accepts any certificate chain for any name (`insecure_skip_verify`). Handshake signatures
/// are still checked against the presented certificate: only trust in it is skipped.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
