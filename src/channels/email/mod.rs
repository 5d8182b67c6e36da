//! Email over SMTP (lettre): one `multipart/alternative` message per notification, to every
//! configured recipient.
//!
//! - The plain-text part is complete (every fact and link): it is what a pager gateway or a
//!   terminal mail reader shows. The HTML part says the same with a little inline CSS (mail
//!   clients drop `<style>` and external sheets); every value in it is HTML-escaped, since
//!   errors and conditions come from the monitored service.
//! - `Message-ID: <{notification id}@waymark>`: a retried notification is the same message, so
//!   relays and clients that dedupe on it show it once.
//! - TLS: STARTTLS (required, never opportunistic), implicit TLS, or none for a local relay;
//!   roots are webpki's plus the configured `ca_file`.
//! - SMTP 5xx replies are permanent, 4xx and connection, TLS and timeout failures are retried;
//!   the reply code is the error's `status`. The password goes only to the AUTH exchange.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{BoxFuture, Delivered, DeliveryError, Notifier, SEND_TIMEOUT};
use crate::alert::Notification;
use crate::channels::config::{EmailConfig, SmtpTls};
use body::message;

mod body;
#[cfg(test)]
mod tests;

pub struct Email {
    /// What sends, or why this configuration cannot: reported on every attempt as permanent,
    /// since retrying cannot fix a configuration.
    mailer: Result<Mailer, String>,
}

impl Email {
    pub fn new(config: &EmailConfig) -> Email {
        Email {
            mailer: Mailer::new(config),
        }
    }
}

impl Notifier for Email {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let mailer = self.mailer.as_ref().map_err(|e| permanent(e.clone()))?;
            let message = message(n, &mailer.from, &mailer.to).map_err(permanent)?;
            mailer.send(message).await
        })
    }
}

/// The configuration's problem, if it has one (addresses, CA file), for checking at load.
pub fn check(config: &EmailConfig) -> Result<(), String> {
    Mailer::new(config).map(drop)
}

/// An email channel's SMTP transport and addresses; also what sends feedback digests.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub(crate) from: Mailbox,
    pub(crate) to: Vec<Mailbox>,
}

impl Mailer {
    pub(crate) fn new(config: &EmailConfig) -> Result<Mailer, String> {
        let parse = |address: &String| {
            address
                .parse::<Mailbox>()
                .map_err(|e| format!("invalid address {address:?}: {e}"))
        };
        Ok(Mailer {
            transport: transport(config)?,
            from: parse(&config.from)?,
            to: config.to.iter().map(parse).collect::<Result<_, _>>()?,
        })
    }

    /// One attempt, classified: SMTP 5xx permanent, anything else retryable.
    pub(crate) async fn send(&self, message: lettre::Message) -> Result<Delivered, DeliveryError> {
        // lettre's timeout bounds each step; this bounds the whole attempt.
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(response)) => Ok(Delivered {
                status: Some(response.code().into()),
            }),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(DeliveryError::Retry {
                status: None,
                message: format!("SMTP delivery timed out after {SEND_TIMEOUT:?}"),
                retry_after: None,
            }),
        }
    }
}

fn transport(config: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
        .port(config.port())
        .timeout(Some(SEND_TIMEOUT))
        .tls(tls(config)?);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

fn tls(config: &EmailConfig) -> Result<Tls, String> {
    let wrap = match config.tls {
        SmtpTls::None => return Ok(Tls::None),
        SmtpTls::Starttls => Tls::Required,
        SmtpTls::Implicit => Tls::Wrapper,
    };
    let mut params = TlsParameters::builder(config.smtp_host.clone())
        .certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = &config.ca_file {
        for cert in ca_certificates(path)? {
            params = params.add_root_certificate(cert);
        }
    }
    let params = params
        .build()
        .map_err(|e| format!("TLS settings for {}: {e}", config.smtp_host))?;
    Ok(wrap(params))
}

/// Every certificate of a PEM file; a file without one is a mistake worth naming.
fn ca_certificates(path: &std::path::Path) -> Result<Vec<Certificate>, String> {
    let what = || format!("ca_file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", what()))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", what()))?;
    if ders.is_empty() {
        return Err(format!("{} holds no certificate", what()));
    }
    ders.into_iter()
        .map(|der| Certificate::from_der(der.to_vec()).map_err(|e| format!("{}: {e}", what())))
        .collect()
}

fn permanent(message: String) -> DeliveryError {
    DeliveryError::Permanent {
        status: None,
        message,
    }
}

/// 5xx replies are permanent; everything else (4xx, connection, TLS, timeouts, garbled
/// replies) may pass on a later attempt.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let status = e.status().map(u16::from);
    let message = format!("SMTP: {e}");
    if e.is_permanent() {
        DeliveryError::Permanent { status, message }
    } else {
        DeliveryError::Retry {
            status,
            message,
            retry_after: None,
        }
    }
}
