//! The plain-words mapping of TLS errors, one rustls error at a time (the handshakes behind
//! them are tested against real servers in `tls/tests.rs`, `http/tests/tls.rs` and the
//! WebSocket tests).

use std::sync::Arc;

use rustls::pki_types::{ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, Error, InvalidMessage, OtherError, PeerIncompatible,
};

use super::reason::{SelfSigned, plain};

fn other(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Issue #19: each common rustls error gets a sentence, not its variant name.
#[test]
fn common_tls_errors_are_said_in_plain_words() {
    let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let cert = Error::InvalidCertificate;
    let cases = [
        (
            other(webpki::Error::CaUsedAsEndEntity),
            "the certificate is a CA certificate used as a server certificate",
        ),
        (
            Error::InvalidMessage(InvalidMessage::InvalidContentType),
            "the server's answer is not TLS (plain HTTP on this port?)",
        ),
        (
            cert(CertificateError::ExpiredContext {
                time: at(1_800_000_000),
                not_after: at(1_700_000_000),
            }),
            "the certificate expired on 2023-11-14 22:13:20 UTC",
        ),
        (
            cert(CertificateError::Expired),
            "the certificate has expired",
        ),
        (
            cert(CertificateError::NotValidYetContext {
                time: at(1_600_000_000),
                not_before: at(1_700_000_000),
            }),
            "the certificate is not valid yet (only from 2023-11-14 22:13:20 UTC)",
        ),
        (
            cert(CertificateError::UnknownIssuer),
            "the certificate's issuer is unknown: no trusted CA signed it",
        ),
        (
            other(SelfSigned),
            "the certificate is self-signed, and not trusted",
        ),
        (
            cert(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("shop.test").unwrap(),
                presented: vec![
                    r#"DnsName("*.other.test")"#.into(),
                    "IpAddress(10.0.0.1)".into(),
                ],
            }),
            "the certificate is for *.other.test, 10.0.0.1, not shop.test",
        ),
        (
            cert(CertificateError::BadSignature),
            "the certificate's signature is not valid",
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13),
            "the server speaks only a TLS version this client does not (older than 1.2?)",
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            "no cipher suite in common with the server",
        ),
        (
            Error::AlertReceived(AlertDescription::HandshakeFailure),
            "the server aborted the handshake: no TLS version or cipher suite in common \
             (alert `HandshakeFailure`)",
        ),
        (
            Error::AlertReceived(AlertDescription::ProtocolVersion),
            "the server aborted the handshake: it does not accept the TLS versions offered \
             (1.2, 1.3) (alert `ProtocolVersion`)",
        ),
        (
            Error::AlertReceived(AlertDescription::BadRecordMac),
            "the server aborted the handshake with the alert `BadRecordMac`",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(plain(&error), want, "{error:?}");
    }
}
