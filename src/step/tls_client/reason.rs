//! Why a TLS handshake failed, in plain words: the one mapping from rustls (and webpki) errors
//! to the sentence a failure reports, used by every step kind that does TLS (`http` for https,
//! `websocket` for wss, `tls`) through `tls_client::handshake`.
//!
//! Each sentence says what is wrong from the monitor's point of view ("the certificate has
//! expired", "the server's answer is not TLS"); the rustls text follows in parentheses for
//! whoever needs the detail. Self-signed certificates are told apart from other unknown issuers
//! by [`SelfSigned`], which the verifying configuration returns in place of rustls's
//! `UnknownIssuer` when the leaf issued itself.

use std::io;

use rustls::{AlertDescription, CertificateError, Error, InvalidMessage, PeerIncompatible};

use crate::step::error_chain;

/// The verifier's finding that the leaf is self-issued and not trusted: rustls only knows
/// "unknown issuer", which is right but does not help whoever reads the failure.
#[derive(Debug, thiserror::Error)]
#[error("the certificate is self-signed")]
pub(crate) struct SelfSigned;

/// The reason of a failed handshake, from the error tokio-rustls returned.
pub(crate) fn handshake_error(e: &io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(tls) => format!("{} ({tls})", plain(tls)),
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof => format!(
                "the server closed the connection during the handshake; it may not speak TLS \
                 on this port ({})",
                error_chain(e)
            ),
            io::ErrorKind::ConnectionReset => format!(
                "the server reset the connection during the handshake ({})",
                error_chain(e)
            ),
            _ => error_chain(e),
        },
    }
}

/// What a rustls error means, without the rustls detail.
pub(crate) fn plain(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(cert) => certificate(cert),
        Error::InvalidMessage(InvalidMessage::InvalidContentType) => {
            "the server's answer is not TLS (plain HTTP on this port?)".into()
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server sent a TLS message that is malformed or out of place".into()
        }
        Error::InappropriateHandshakeMessage { .. } => {
            "the server sent a handshake message out of order".into()
        }
        Error::AlertReceived(alert) => alert_received(*alert),
        Error::PeerIncompatible(why) => incompatible(why),
        Error::PeerMisbehaved(_) => "the server broke the TLS protocol".into(),
        Error::NoCertificatesPresented => "the server presented no certificate".into(),
        Error::DecryptError => {
            "the handshake could not be decrypted (the server's key may not match its \
             certificate)"
                .into()
        }
        Error::PeerSentOversizedRecord => "the server sent an oversized TLS record".into(),
        Error::NoApplicationProtocol => {
            "the server accepts none of the application protocols offered (ALPN)".into()
        }
        Error::HandshakeNotComplete => "the handshake did not complete".into(),
        Error::General(text) => text.clone(),
        _ => "the handshake failed".into(),
    }
}

fn certificate(e: &CertificateError) -> String {
    use CertificateError as C;
    match e {
        C::UnknownIssuer => "the certificate's issuer is unknown: no trusted CA signed it".into(),
        C::Expired => "the certificate has expired".into(),
        C::ExpiredContext { not_after, .. } => {
            format!("the certificate expired on {}", date(not_after.as_secs()))
        }
        C::NotValidYet => "the certificate is not valid yet".into(),
        C::NotValidYetContext { not_before, .. } => format!(
            "the certificate is not valid yet (only from {})",
            date(not_before.as_secs())
        ),
        C::NotValidForName => "the certificate is not valid for this name".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the certificate is for {}, not {}",
            if presented.is_empty() {
                "no name at all".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| bare_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        C::Revoked => "the certificate has been revoked".into(),
        C::BadSignature => "the certificate's signature is not valid".into(),
        // rustls still reports the deprecated variant for some webpki errors.
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the certificate is signed with an unsupported algorithm".into()
        }
        C::BadEncoding => "the certificate is malformed".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the certificate is not meant for TLS servers (extended key usage)".into()
        }
        C::UnhandledCriticalExtension => {
            "the certificate has a critical extension this client does not know".into()
        }
        C::Other(other) => other_certificate(other.0.as_ref()),
        _ => "the certificate was rejected".into(),
    }
}

/// The reasons rustls passes through from webpki (or from our verifier) as `Other`.
fn other_certificate(e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(self_signed) = e.downcast_ref::<SelfSigned>() {
        return format!("{self_signed}, and not trusted");
    }
    let Some(webpki) = e.downcast_ref::<webpki::Error>() else {
        return "the certificate was rejected".into();
    };
    match webpki {
        webpki::Error::CaUsedAsEndEntity => {
            "the certificate is a CA certificate used as a server certificate".into()
        }
        webpki::Error::EndEntityUsedAsCa => {
            "the chain uses a server certificate as a CA certificate".into()
        }
        webpki::Error::PathLenConstraintViolated => {
            "the chain is longer than its CA allows (path length constraint)".into()
        }
        webpki::Error::NameConstraintViolation => {
            "the certificate's name is outside what its CA may sign (name constraints)".into()
        }
        webpki::Error::CertDistrusted => "the certificate's key is distrusted".into(),
        #[allow(deprecated)]
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not meant for TLS servers (extended key usage)".into()
        }
        webpki::Error::MaximumPathBuildCallsExceeded
        | webpki::Error::MaximumPathDepthExceeded
        | webpki::Error::MaximumSignatureChecksExceeded => {
            "the chain is too long or too tangled to verify".into()
        }
        _ => "the certificate was rejected".into(),
    }
}

fn alert_received(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let meaning = match alert {
        A::HandshakeFailure => "no TLS version or cipher suite in common",
        A::ProtocolVersion => "it does not accept the TLS versions offered (1.2, 1.3)",
        A::InsufficientSecurity => "it wants stronger ciphers than offered",
        A::UnrecognisedName => "it does not serve this name (SNI)",
        A::CertificateRequired | A::NoCertificate => "it requires a client certificate",
        A::AccessDenied => "access denied",
        A::NoApplicationProtocol => "it accepts none of the application protocols offered",
        A::InternalError => "an internal error on the server",
        A::DecodeError | A::IllegalParameter | A::UnexpectedMessage => {
            "it did not understand the client's message"
        }
        _ => "",
    };
    let name = format!("{alert:?}");
    if meaning.is_empty() {
        format!("the server aborted the handshake with the alert `{name}`")
    } else {
        format!("the server aborted the handshake: {meaning} (alert `{name}`)")
    }
}

fn incompatible(why: &PeerIncompatible) -> String {
    use PeerIncompatible as P;
    match why {
        P::ServerDoesNotSupportTls12Or13
        | P::ServerTlsVersionIsDisabledByOurConfig
        | P::Tls12NotOffered
        | P::Tls12NotOfferedOrEnabled
        | P::SupportedVersionsExtensionRequired => {
            "the server speaks only a TLS version this client does not (older than 1.2?)".into()
        }
        P::NoCipherSuitesInCommon => "no cipher suite in common with the server".into(),
        P::NoKxGroupsInCommon => "no key exchange group in common with the server".into(),
        P::NoSignatureSchemesInCommon | P::NoCertificateRequestSignatureSchemesInCommon => {
            "no signature scheme in common with the server".into()
        }
        _ => "the server's TLS is incompatible with this client".into(),
    }
}

/// webpki describes presented names as `DnsName("shop.test")` or `IpAddress(127.0.0.1)`: the
/// name alone is what a reader wants.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

/// A certificate time as a UTC date and time.
fn date(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("{unix_secs} (Unix time)"),
            crate::format::timestamp,
        )
}
