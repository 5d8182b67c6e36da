//! TLS on the client side, for HTTPS hops, `wss://` connections and `tls` steps: the rustls
//! client configurations, the SNI name, the handshake, and what the peer's leaf certificate
//! says (`[CERTIFICATE_*]`).
//!
//! The configurations (verifying against the Mozilla roots from webpki-roots, and
//! `insecure_skip_verify`, each with the ALPN offers of [`Alpn`]) name the `ring` provider
//! explicitly instead of relying on a process-wide default, and are built once: building a
//! `ClientConfig` parses the whole root store, far too slow to do per request.
//!
//! rustls does not hand out the peer's certificates after a failed handshake, so a
//! verification failure (`tls`) leaves the certificate facts empty. Why it failed is said in
//! plain words by [`reason`], for every step kind that does TLS.

mod reason;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::extensions::GeneralName;

use super::net::{Budget, ip_literal};
use super::{Attempt, Failure, FailureClass, Timings, failure};
use crate::journey::facts::Facts;

/// What ALPN offers, i.e. which protocols may run over the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// HTTP steps: `h2` first so servers that speak it get HTTP/2, then `http/1.1`.
    Http = 0,
    /// WebSocket: only `http/1.1`, since the upgrade is an HTTP/1.1 request.
    Http1 = 1,
    /// `tls` steps: nothing, a certificate probe is not an HTTP client.
    None = 2,
}

impl Alpn {
    /// In discriminant order, which indexes [`CONFIGS`].
    const ALL: [Alpn; 3] = [Alpn::Http, Alpn::Http1, Alpn::None];

    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::None => Vec::new(),
        }
    }
}

/// `[verifying, insecure]`, each indexed by `Alpn as usize`.
static CONFIGS: LazyLock<[[Arc<ClientConfig>; 3]; 2]> = LazyLock::new(|| {
    [verifying(), insecure()].map(|base| {
        Alpn::ALL.map(|alpn| {
            let mut config = base.clone();
            config.alpn_protocols = alpn.protocols();
            Arc::new(config)
        })
    })
});

/// Which of the shared client configurations a connection uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsOptions {
    /// Accept any certificate (the step's `insecure_skip_verify`, see [`Verifier`]);
    /// otherwise verify against the Mozilla roots.
    pub insecure_skip_verify: bool,
    pub alpn: Alpn,
}

impl TlsOptions {
    pub fn config(self) -> Arc<ClientConfig> {
        Arc::clone(&CONFIGS[usize::from(self.insecure_skip_verify)][self.alpn as usize])
    }
}

pub(in crate::step) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
}

/// Verifies the chain against the Mozilla roots (webpki-roots), like a browser would.
fn verifying() -> ClientConfig {
    verifying_with(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

/// Verifies the chain against `roots` with rustls's verifier, telling a self-signed leaf apart
/// from other unknown issuers (tests bring their own roots).
pub(in crate::step) fn verifying_with(roots: rustls::RootCertStore) -> ClientConfig {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("the root store is not empty and the ring provider has algorithms");
    with_verifier(Some(inner))
}

fn insecure() -> ClientConfig {
    with_verifier(None)
}

/// A configuration with [`Verifier`]: checking the chain with `chain`, or not at all.
fn with_verifier(chain: Option<Arc<WebPkiServerVerifier>>) -> ClientConfig {
    let verifier = Verifier {
        chain,
        algorithms: provider().signature_verification_algorithms,
    };
    builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth()
}

/// SNI and the name to verify: an IP literal (`[v6]` too) becomes an IP server name. The
/// error is the reason only; whose fault it is depends on the caller.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    match ip_literal(host) {
        (_, Some(ip)) => Ok(ServerName::IpAddress(ip.into())),
        (name, None) => ServerName::try_from(name.to_string())
            .map_err(|e| format!("`{name}` is not a valid TLS server name: {e}")),
    }
}

/// The `tls` failure of a handshake with `name` at `peer`.
pub(crate) fn handshake_failed(name: &str, peer: SocketAddr, reason: &str) -> Failure {
    failure(
        FailureClass::Tls,
        format!("TLS handshake with {name} ({peer}) failed: {reason}"),
    )
}

/// Runs the TLS handshake over an established TCP stream, recording the `tls` phase and the
/// peer's certificate facts into `attempt`.
pub(crate) async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
    peer: SocketAddr,
    config: Arc<ClientConfig>,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<TlsStream<TcpStream>, Failure> {
    let shown = name.to_str().into_owned();
    let started = Instant::now();
    let stream = budget
        .limit(
            format!("the TLS handshake with {shown} ({peer})"),
            TlsConnector::from(config).connect(name, tcp),
        )
        .await?
        .map_err(|e| handshake_failed(&shown, peer, &reason::handshake_error(&e)))?;
    Timings::add(&mut attempt.timings.tls, started.elapsed());
    if let Some(leaf) = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        certificate_facts(leaf, &mut attempt.facts);
    }
    Ok(stream)
}

/// `[CERTIFICATE_EXPIRATION]` (ms until `notAfter`, negative once expired),
/// `[CERTIFICATE_SUBJECT]`, `[CERTIFICATE_ISSUER]` and `[CERTIFICATE_SANS]` from a DER leaf
/// certificate. A certificate that does not parse leaves them unset: a fact about the peer,
/// not an error of the attempt.
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

/// The one certificate verifier of both configurations. Handshake signatures are always
/// checked against the presented certificate with the provider's algorithms, so the peer must
/// hold its key; what differs is trust in the certificate:
/// - with `chain`, rustls's verifier, except that an unknown issuer is reported as
///   [`reason::SelfSigned`] when the leaf issued itself: the most common certificate problem
///   of test and internal servers;
/// - without (`insecure_skip_verify`), any chain for any name is accepted.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        let verdict =
            chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if self_issued(end_entity) =>
            {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(reason::SelfSigned)),
                )))
            }
            verdict => verdict,
        }
    }

    // rustls's own verifier checks signatures exactly so, with the algorithms of the
    // provider it was built with: the same provider as here.
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

/// Whether the certificate names itself as its issuer.
fn self_issued(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .is_ok_and(|(_, cert)| cert.issuer().as_raw() == cert.subject().as_raw())
}
