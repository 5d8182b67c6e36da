//! The channels' settings (`[alerting.channels.<name>]`): the kind with its receiver and
//! credentials, and how often to remind. Each kind's notifier reads its own settings type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

const HOUR: Duration = Duration::from_secs(3600);

/// The configured channels by name (`[alerting.channels.<name>]`).
pub type Channels = std::collections::BTreeMap<String, Channel>;

/// One named channel: `type` and the kind's settings, plus `remind_every`.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub kind: ChannelKind,
    /// Repeat the alert this often while an incident stays open and unacknowledged
    /// (`0s` = never). Default: `4h` for email, off for the others.
    pub remind_every: Option<Duration>,
}

/// By hand: serde's `flatten` would switch off `deny_unknown_fields` in the kinds' settings.
impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let remind_every = match table.remove("remind_every") {
            Some(toml::Value::String(s)) => Some(
                humantime::parse_duration(&s)
                    .map_err(|e| D::Error::custom(format!("remind_every: {e}")))?,
            ),
            Some(_) => {
                return Err(D::Error::custom(
                    "remind_every must be a duration like \"4h\"",
                ));
            }
            None => None,
        };
        let kind = ChannelKind::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(Channel { kind, remind_every })
    }
}

impl Channel {
    pub fn reminder_interval(&self) -> Option<Duration> {
        match (&self.remind_every, &self.kind) {
            (Some(d), _) if d.is_zero() => None,
            (Some(d), _) => Some(*d),
            (None, ChannelKind::Email(_)) => Some(4 * HOUR),
            (None, _) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelKind {
    Pagerduty(PagerDutyConfig),
    Slack(SlackConfig),
    Webhook(WebhookConfig),
    Email(EmailConfig),
    /// Prints notifications to the service's log (the demo's default channel).
    Log(LogConfig),
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Pagerduty(_) => "pagerduty",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Email(_) => "email",
            ChannelKind::Log(_) => "log",
        }
    }
}

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key (Events API v2).
    pub routing_key: Secret,
    /// Events API endpoint; the default is PagerDuty's.
    #[serde(default = "pagerduty_url")]
    pub url: String,
}

fn pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_string()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (it is a credential: `${SLACK_WEBHOOK_URL}`).
    pub webhook_url: Secret,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Secret,
    /// Shared secret of the `Waymark-Signature` HMAC-SHA256 header.
    pub secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte, port 465 by default.
    Implicit,
    /// No TLS at all (a local relay), port 25 by default.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: String,
    /// Default by `tls`: 587, 465 or 25.
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file of extra CA certificates to trust (a private relay's).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Waymark <alerts@example.com>`.
    pub from: String,
    pub to: Vec<String>,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {}

impl Channel {
    /// Resolves the channel's `${VAR}` secrets and checks what serde cannot (addresses,
    /// URLs), naming fields as `alerting.channels.<name>.<field>`. Every problem is returned,
    /// not only the first.
    pub fn validate(
        &mut self,
        name: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), Vec<ChannelError>> {
        let channel = || name.to_string();
        let mut problems = Vec::new();
        let mut secrets: Vec<(&'static str, &mut Secret)> = match &mut self.kind {
            ChannelKind::Pagerduty(c) => {
                if HttpUrl::parse(&c.url).is_err() {
                    problems.push(ChannelError::NotHttpUrl {
                        channel: channel(),
                        field: "url",
                    });
                }
                vec![("routing_key", &mut c.routing_key)]
            }
            ChannelKind::Slack(c) => vec![("webhook_url", &mut c.webhook_url)],
            ChannelKind::Webhook(c) => vec![("url", &mut c.url), ("secret", &mut c.secret)],
            ChannelKind::Email(c) => {
                if c.to.is_empty() {
                    problems.push(ChannelError::NoRecipients { channel: channel() });
                } else if let Err(message) = super::email::check(c) {
                    problems.push(ChannelError::Email {
                        channel: channel(),
                        message,
                    });
                }
                c.password.iter_mut().map(|p| ("password", p)).collect()
            }
            ChannelKind::Log(_) => vec![],
        };
        let mut unresolved = Vec::new();
        for (field, secret) in &mut secrets {
            if let Err(source) = secret.resolve(env) {
                unresolved.push(*field);
                problems.push(ChannelError::Secret {
                    channel: channel(),
                    field,
                    source,
                });
            }
        }
        let url = match &self.kind {
            ChannelKind::Slack(c) => Some(("webhook_url", &c.webhook_url)),
            ChannelKind::Webhook(c) => Some(("url", &c.url)),
            _ => None,
        };
        if let Some((field, url)) = url
            && !unresolved.contains(&field)
            && HttpUrl::parse(url.expose()).is_err()
        {
            problems.push(ChannelError::NotHttpUrl {
                channel: channel(),
                field,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A channel's setting that is wrong, naming it as `alerting.channels.<name>.<field>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    // The value may be a credential: never echo it.
    #[error("alerting.channels.{channel}.{field} is not an http(s) URL")]
    NotHttpUrl {
        channel: String,
        field: &'static str,
    },
    #[error("alerting.channels.{channel}.to must list at least one address")]
    NoRecipients { channel: String },
    /// What the mailer could not be built from (addresses, CA file, TLS settings).
    #[error("alerting.channels.{channel}: {message}")]
    Email { channel: String, message: String },
    #[error("alerting.channels.{channel}.{field}: {source}")]
    Secret {
        channel: String,
        field: &'static str,
        source: SecretError,
    },
}

impl ChannelError {
    /// The channel's field at fault, when one is (the email checks name the channel only).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ChannelError::NotHttpUrl { field, .. } | ChannelError::Secret { field, .. } => {
                Some(field)
            }
            ChannelError::NoRecipients { .. } => Some("to"),
            ChannelError::Email { .. } => None,
        }
    }
}

/// Why a [`Secret`] has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("is empty")]
    Empty,
}

/// A credential from the config: written literally or as `${ENV_VAR}` (read at load). Never
/// printed: `Debug` shows `***`.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces a `${NAME}` value with the variable's value.
    fn resolve(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), SecretError> {
        if let Some(name) = self.0.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
            self.0 = env(name).ok_or_else(|| SecretError::Unset(name.to_string()))?;
        }
        if self.0.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// An `http://` or `https://` URL, checked when the configuration is read (the dashboard and
/// trace links) by [`HttpUrl::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl(String);

/// The value is not an `http(s)://` URL. It may be a credential, so it is not echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an http(s) URL")]
pub struct NotHttpUrl;

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, NotHttpUrl> {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(HttpUrl(url.to_string())),
            _ => Err(NotHttpUrl),
        }
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = NotHttpUrl;

    fn try_from(url: String) -> Result<HttpUrl, NotHttpUrl> {
        HttpUrl::parse(&url)
    }
}

/// The URL as written in the configuration.
impl std::ops::Deref for HttpUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
