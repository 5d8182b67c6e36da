//! Notifiers: each turns a [`Notification`] into one request to one kind of receiver, and says
//! whether a failure is worth retrying. One file per kind; [`build`] is the registry.
//!
//! Notifiers hold the channel's credentials and add them at send time. They never log them,
//! and error messages they return (stored with each attempt) must not contain them either.

pub mod config;
pub(crate) mod email;
mod log;
mod pagerduty;
pub(crate) mod slack;
#[cfg(test)]
pub(crate) mod test_support;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::alert::Notification;
use config::{Channel, ChannelKind};

pub use webhook::{SCHEMA as WEBHOOK_SCHEMA, sign as webhook_signature};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the receiver said when it accepted a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// HTTP status (or SMTP reply code) of the accepting answer.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later: network errors, timeouts, 429, 5xx, SMTP 4xx.
    #[error("{message}")]
    Retry {
        status: Option<u16>,
        message: String,
        /// The receiver's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: 400 (bad event), 401/403/404 (bad key or URL), SMTP 5xx.
    #[error("{message}")]
    Permanent {
        status: Option<u16>,
        message: String,
    },
}

impl DeliveryError {
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Retry { status, .. } | DeliveryError::Permanent { status, .. } => {
                *status
            }
        }
    }
}

/// Sends notifications to one channel.
pub trait Notifier: Send + Sync {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>>;
}

/// A channel that posts one JSON request per notification (PagerDuty, Slack, webhook): its
/// settings, which say what to post (`Post`), and the client it posts with.
pub struct Http<C> {
    config: C,
    client: reqwest::Client,
}

impl<C: Clone> Http<C> {
    pub fn new(config: &C, client: reqwest::Client) -> Self {
        Http {
            config: config.clone(),
            client,
        }
    }
}

/// One request of an HTTP channel.
pub(crate) struct Request<'a> {
    pub(crate) url: &'a str,
    /// Besides `Content-Type`.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// JSON.
    pub(crate) body: Vec<u8>,
}

/// What an HTTP channel's settings post for a notification.
pub(crate) trait Post: Send + Sync {
    fn request<'a>(&'a self, n: &Notification) -> Request<'a>;
}

impl<C: Post> Notifier for Http<C> {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let request = self.config.request(n);
            post_json(&self.client, request.url, &request.headers, request.body).await
        })
    }
}

/// Longest a single delivery attempt may take before it counts as a (retryable) failure.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The notifier of a configured channel.
pub fn build(channel: &Channel) -> Box<dyn Notifier> {
    match &channel.kind {
        ChannelKind::Pagerduty(c) => Box::new(pagerduty::PagerDuty::new(c, http_client())),
        ChannelKind::Slack(c) => Box::new(slack::Slack::new(c, http_client())),
        ChannelKind::Webhook(c) => Box::new(webhook::Webhook::new(c, http_client())),
        ChannelKind::Email(c) => Box::new(email::Email::new(c)),
        ChannelKind::Log(_) => Box::new(log::Log),
    }
}

/// The built-in `log` channel's notifier.
pub fn log_notifier() -> Box<dyn Notifier> {
    Box::new(log::Log)
}

/// One client per channel: no redirects (a redirected webhook is a misconfiguration to report,
/// not to follow with the payload), a bounded time per attempt, TLS with the process's rustls
/// provider (ring).
pub(crate) fn http_client() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("waymark/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with default TLS settings builds")
}

/// Classifies an HTTP answer the way the HTTP receivers document theirs: 2xx accepted;
/// 408, 429 and 5xx worth retrying (honouring `Retry-After` in seconds); other 4xx and
/// 3xx permanent. `body` is shortened into the message.
pub(crate) fn classify_http(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<Delivered, DeliveryError> {
    if (200..300).contains(&status) {
        return Ok(Delivered {
            status: Some(status),
        });
    }
    let mut text: String = body.trim().chars().take(300).collect();
    if text.is_empty() {
        text = "(empty body)".into();
    }
    let message = format!("HTTP {status}: {text}");
    if status == 408 || status == 429 || status >= 500 {
        Err(DeliveryError::Retry {
            status: Some(status),
            message,
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        })
    } else {
        Err(DeliveryError::Permanent {
            status: Some(status),
            message,
        })
    }
}

/// Whether a value can be a link (a runbook may be written as prose instead).
pub(crate) fn is_web_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// Posts a JSON body and classifies the answer; transport errors are retryable. Errors never
/// include the URL (it may be a credential, like a Slack webhook's).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Delivered, DeliveryError> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.map_err(|e| DeliveryError::Retry {
        status: None,
        message: transport_error(&e),
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.text().await.unwrap_or_default();
    classify_http(status, retry_after.as_deref(), &body)
}

fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL; the source chain does not.
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_classified_as_receivers_document_them() {
        assert_eq!(
            classify_http(202, None, "{}"),
            Ok(Delivered { status: Some(202) })
        );
        let retry = classify_http(429, Some("2"), "slow down").unwrap_err();
        assert_eq!(
            retry,
            DeliveryError::Retry {
                status: Some(429),
                message: "HTTP 429: slow down".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert!(matches!(
            classify_http(503, None, ""),
            Err(DeliveryError::Retry {
                retry_after: None,
                ..
            })
        ));
        let bad = classify_http(400, None, "{\"status\":\"invalid event\"}").unwrap_err();
        assert!(matches!(bad, DeliveryError::Permanent { .. }), "{bad:?}");
        assert!(bad.to_string().contains("invalid event"));
        assert!(matches!(
            classify_http(302, None, ""),
            Err(DeliveryError::Permanent { .. })
        ));
    }
}
