//! TLS for HTTPS hops and `wss://` connections: the shared client configurations
//! (verifying and `insecure_skip_verify`, each with an HTTP/1.1-only ALPN variant for
//! WebSocket upgrades), the handshake, and what it tells about the peer.
//!
//! All configurations name the `ring` provider explicitly instead of relying on a
//! process-wide default provider, and are built once: building a `ClientConfig` parses the
//! whole root store, which is far too slow to do per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, ConfigBuilder, DigitallySignedStruct, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::Host;

use super::transport::Clock;
use super::{HttpError, error_chain};
use crate::step::Timings;

/// Verifies the chain against the Mozilla roots (webpki-roots), like a browser would.
static VERIFYING: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    finish(builder().with_root_certificates(roots))
});

/// Accepts any certificate (the step set `insecure_skip_verify`); see [`AcceptAnyCertificate`].
static INSECURE: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let verifier = AcceptAnyCertificate {
        algorithms: provider().signature_verification_algorithms,
    };
    finish(
        builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier)),
    )
});

/// [`VERIFYING`] and [`INSECURE`] offering only `http/1.1`: a WebSocket upgrade is an
/// HTTP/1.1 request, so the server must not pick h2.
static VERIFYING_HTTP1: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| http1_only(&VERIFYING));
static INSECURE_HTTP1: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| http1_only(&INSECURE));

fn http1_only(config: &ClientConfig) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
}

/// No client certificates; ALPN offers h2 first so servers that speak it get HTTP/2.
fn finish(builder: ConfigBuilder<ClientConfig, WantsClientCert>) -> Arc<ClientConfig> {
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// How to run a TLS handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsOptions {
    /// Accept any certificate (the step's `insecure_skip_verify`).
    pub insecure_skip_verify: bool,
    /// Offer only `http/1.1` in ALPN (WebSocket); otherwise h2 first, then `http/1.1`.
    pub http1_only: bool,
}

impl TlsOptions {
    fn config(self) -> &'static Arc<ClientConfig> {
        match (self.insecure_skip_verify, self.http1_only) {
            (false, false) => &VERIFYING,
            (true, false) => &INSECURE,
            (false, true) => &VERIFYING_HTTP1,
            (true, true) => &INSECURE_HTTP1,
        }
    }
}

/// What the handshake established.
pub(crate) struct TlsInfo {
    /// ALPN selected HTTP/2.
    pub h2: bool,
    /// `[CERTIFICATE_EXPIRATION]`: leaf `notAfter` minus now, in milliseconds.
    pub expires_in_ms: Option<i64>,
}

/// Runs the TLS handshake over an established TCP stream; SNI comes from the URL's host.
pub(super) async fn handshake(
    tcp: TcpStream,
    host: &Host<&str>,
    peer: SocketAddr,
    options: TlsOptions,
    clock: &Clock,
    timings: &mut Timings,
) -> Result<(TlsStream<TcpStream>, TlsInfo), HttpError> {
    let failed = |reason: String| HttpError::Tls {
        peer: format!("{host} ({peer})"),
        reason,
    };
    let name = server_name(host).map_err(failed)?;
    let connector = TlsConnector::from(Arc::clone(options.config()));
    let started = Instant::now();
    let stream = clock
        .limit("TLS handshake", connector.connect(name, tcp))
        .await?
        .map_err(|e| failed(error_chain(&e)))?;
    Timings::add(&mut timings.tls, started.elapsed());
    let info = TlsInfo::of(stream.get_ref().1);
    Ok((stream, info))
}

fn server_name(host: &Host<&str>) -> Result<ServerName<'static>, String> {
    match *host {
        Host::Domain(domain) => ServerName::try_from(domain.to_string())
            .map_err(|e| format!("`{domain}` is not a valid TLS server name: {e}")),
        Host::Ipv4(ip) => Ok(ServerName::IpAddress(IpAddr::V4(ip).into())),
        Host::Ipv6(ip) => Ok(ServerName::IpAddress(IpAddr::V6(ip).into())),
    }
}

impl TlsInfo {
    fn of(conn: &ClientConnection) -> TlsInfo {
        TlsInfo {
            h2: conn.alpn_protocol() == Some(b"h2"),
            expires_in_ms: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(expires_in_ms),
        }
    }
}

/// Milliseconds until the certificate's `notAfter` (negative once expired); `None` if the
/// certificate does not parse, which is a fact about the peer, not an error of the attempt.
fn expires_in_ms(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let not_after_ms = cert.validity().not_after.timestamp().checked_mul(1000)?;
    Some(not_after_ms.saturating_sub(chrono::Utc::now().timestamp_millis()))
}

/// Accepts any certificate chain for any name, for `insecure_skip_verify`. Handshake
/// signatures are still checked against the presented certificate, so the peer must hold its
/// key: only trust in the certificate is skipped, not the cryptography of the handshake.
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
