//! The `[alerting]` section of `waymark.toml`: channels, routes, maintenance windows and the
//! engine's global knobs. Validated at load (unknown keys, unknown channel names in routes,
//! bad cron or timezone, unset `${VAR}` secrets are errors that stop the start).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::Severity;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Base URL of the dashboard (`https://waymark.example.com`), for links in notifications.
    pub dashboard_url: Option<String>,
    /// Trace link template, `{trace_id}` replaced: `http://jaeger:16686/trace/{trace_id}`.
    pub trace_url: Option<String>,
    /// A resolved incident that fails again within this long reopens instead of a new one.
    #[serde(with = "humantime_serde")]
    pub reopen_within: Duration,
    pub flapping: Flapping,
    /// A notification still undelivered this long after it was created is marked failed.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    pub retry: Retry,
    pub channels: BTreeMap<String, Channel>,
    /// Which channels hear about which incidents; none = every channel hears everything.
    pub routes: Vec<Route>,
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            dashboard_url: None,
            trace_url: None,
            reopen_within: 30 * MINUTE,
            flapping: Flapping::default(),
            give_up_after: 24 * HOUR,
            retry: Retry::default(),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

/// A journey whose incidents open or resolve more than `changes` times within `window` is
/// flapping: notified once, then quiet until it has settled for a whole `window`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flapping {
    pub changes: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            changes: 6,
            window: HOUR,
        }
    }
}

/// Backoff between delivery attempts: `initial`, doubling up to `max`, with jitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_secs(1),
            max: 5 * MINUTE,
        }
    }
}

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

/// Incidents matching every given criterion go to `channels`. Empty criteria match all.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub journeys: Vec<String>,
    pub channels: Vec<String>,
}

/// A period during which notifications are muted (runs and incidents are still recorded).
/// One-off (`start` + `end`) or recurring (`cron` + `duration`, in `timezone`). Applies to
/// the listed journeys and tags, or to everything when both are empty.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub name: String,
    #[serde(default)]
    pub journeys: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Five fields (`0 2 * * SUN`), when each occurrence starts.
    pub cron: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// IANA name; default UTC.
    pub timezone: Option<String>,
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
    fn resolve(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(name) = self.0.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
            self.0 = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        }
        if self.0.is_empty() {
            return Err("is empty".into());
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

impl AlertConfig {
    /// Resolves `${VAR}` secrets and checks what serde cannot: names, URLs, windows.
    pub fn validate(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        for (name, channel) in &mut self.channels {
            let what = |field: &str| format!("alerting.channels.{name}.{field}");
            let mut secrets: Vec<(&str, &mut Secret)> = match &mut channel.kind {
                ChannelKind::Pagerduty(c) => {
                    check_url(&c.url, &what("url"))?;
                    vec![("routing_key", &mut c.routing_key)]
                }
                ChannelKind::Slack(c) => vec![("webhook_url", &mut c.webhook_url)],
                ChannelKind::Webhook(c) => vec![("url", &mut c.url), ("secret", &mut c.secret)],
                ChannelKind::Email(c) => {
                    if c.to.is_empty() {
                        return Err(format!("{} must list at least one address", what("to")));
                    }
                    super::notify::email::check(c)
                        .map_err(|e| format!("alerting.channels.{name}: {e}"))?;
                    c.password.iter_mut().map(|p| ("password", p)).collect()
                }
                ChannelKind::Log(_) => vec![],
            };
            for (field, secret) in &mut secrets {
                secret
                    .resolve(&env)
                    .map_err(|e| format!("{}: {e}", what(field)))?;
            }
            match &channel.kind {
                ChannelKind::Slack(c) => check_url(c.webhook_url.expose(), &what("webhook_url"))?,
                ChannelKind::Webhook(c) => check_url(c.url.expose(), &what("url"))?,
                _ => {}
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.channels.is_empty() {
                return Err(format!("alerting.routes[{i}] names no channels"));
            }
            for c in &route.channels {
                if !self.channels.contains_key(c) && c != super::route::LOG_CHANNEL {
                    return Err(format!(
                        "alerting.routes[{i}] names channel `{c}`, which is not defined"
                    ));
                }
            }
        }
        for w in &self.maintenance {
            super::maintenance::Window::new(w)?;
        }
        for (field, url) in [
            ("dashboard_url", &self.dashboard_url),
            ("trace_url", &self.trace_url),
        ] {
            if let Some(url) = url {
                check_url(url, &format!("alerting.{field}"))?;
            }
        }
        if self.retry.initial.is_zero() || self.retry.max < self.retry.initial {
            return Err("alerting.retry: initial must be positive and at most max".into());
        }
        if self.flapping.changes == 0 {
            return Err("alerting.flapping.changes must be at least 1".into());
        }
        Ok(())
    }
}

fn check_url(url: &str, what: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        // The value may be a credential: never echo it.
        _ => Err(format!("{what} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn channels_of_every_kind_with_secrets_from_the_environment() {
        let mut c = parse(
            r#"
            dashboard_url = "https://waymark.example.com"
            [channels.pager]
            type = "pagerduty"
            routing_key = "${PD_KEY}"
            [channels.chat]
            type = "slack"
            webhook_url = "https://hooks.slack.com/services/T/B/X"
            [channels.hook]
            type = "webhook"
            url = "https://example.com/hook"
            secret = "${HOOK_SECRET}"
            [channels.mail]
            type = "email"
            smtp_host = "smtp.example.com"
            tls = "implicit"
            username = "alerts"
            password = "${SMTP_PASSWORD}"
            from = "Waymark <alerts@example.com>"
            to = ["oncall@example.com"]
            [[routes]]
            severity = ["failure"]
            channels = ["pager", "mail"]
            [[routes]]
            channels = ["chat", "hook", "log"]
            "#,
        )
        .unwrap();
        let env = |k: &str| Some(format!("value-of-{k}"));
        c.validate(env).unwrap();
        let ChannelKind::Pagerduty(pd) = &c.channels["pager"].kind else {
            panic!()
        };
        assert_eq!(pd.routing_key.expose(), "value-of-PD_KEY");
        assert_eq!(pd.url, PAGERDUTY_EVENTS_URL);
        assert_eq!(format!("{pd:?}").matches("value-of").count(), 0);
        let ChannelKind::Email(mail) = &c.channels["mail"].kind else {
            panic!()
        };
        assert_eq!(mail.port(), 465);
        assert_eq!(c.channels["mail"].reminder_interval(), Some(4 * HOUR));
        assert_eq!(c.channels["chat"].reminder_interval(), None);
        assert_eq!(c.routes[0].severity, vec![Severity::Failure]);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("[channels.x]\ntype = \"pager\"\n").unwrap_err();
        assert!(e.contains("unknown variant `pager`"), "{e}");
        let e = parse("[channels.x]\ntype = \"slack\"\nwebhook = \"https://x\"\n").unwrap_err();
        assert!(e.contains("webhook"), "{e}");
        let invalid = |text: &str| {
            let mut c = parse(text).unwrap();
            c.validate(|_| None).unwrap_err()
        };
        let e = invalid("[channels.p]\ntype = \"pagerduty\"\nrouting_key = \"${PD}\"\n");
        assert_eq!(
            e,
            "alerting.channels.p.routing_key: environment variable PD is not set"
        );
        let e = invalid("[[routes]]\nchannels = [\"pager\"]\n");
        assert!(e.contains("`pager`, which is not defined"), "{e}");
        let e = invalid("[channels.s]\ntype = \"slack\"\nwebhook_url = \"hooks/secret-part\"\n");
        assert!(
            e.contains("not an http(s) URL") && !e.contains("secret-part"),
            "{e}"
        );
        let e = invalid(
            "[channels.m]\ntype = \"email\"\nsmtp_host = \"h\"\nfrom = \"not an address\"\nto = [\"a@example.com\"]\n",
        );
        assert!(e.starts_with("alerting.channels.m: invalid address"), "{e}");
        let e = invalid("[[maintenance]]\nname = \"m\"\ncron = \"0 2 * * SUN\"\n");
        assert!(e.contains("duration"), "{e}");
    }
}
