//! The `[alerting]` section of `waymark.toml`. It only gathers the settings that the alert
//! engine, the channels and the delivery worker each own, and checks across them (routes name
//! defined channels). Validated at load: unknown keys, unknown channel names in routes, bad
//! cron or timezone and unset `${VAR}` secrets are errors that stop the start.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::alert::engine::{Flapping, Settings};
use crate::alert::maintenance::MaintenanceWindow;
use crate::alert::retry::Retry;
use crate::alert::route::Route;
use crate::channels::config::{Channel, HttpUrl};

use super::problem::{ConfigProblem, KeyPath};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Base URL of the dashboard (`https://waymark.example.com`), for links in notifications.
    pub dashboard_url: Option<HttpUrl>,
    /// Trace link template, `{trace_id}` replaced: `http://jaeger:16686/trace/{trace_id}`.
    pub trace_url: Option<HttpUrl>,
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

impl AlertConfig {
    /// Resolves `${VAR}` secrets and checks what serde cannot: names, URLs, windows. Every
    /// problem is returned, each with its setting's path.
    pub fn validate(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let section = || KeyPath::from("alerting");
        for (name, channel) in &mut self.channels {
            for e in channel.validate(name, &env).err().unwrap_or_default() {
                let at = section().key("channels").key(name.as_str());
                let at = match e.field() {
                    Some(field) => at.key(field),
                    None => at,
                };
                problems.push(ConfigProblem::new(at, e));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let at = section().key("routes").index(i).key("channels");
            if route.channels.is_empty() {
                problems.push(ConfigProblem::new(
                    at.clone(),
                    format!("alerting.routes[{i}] names no channels"),
                ));
            }
            for (j, c) in route.channels.iter().enumerate() {
                if !self.channels.contains_key(c) && c != crate::alert::route::LOG_CHANNEL {
                    problems.push(ConfigProblem::new(
                        at.clone().index(j),
                        format!("alerting.routes[{i}] names channel `{c}`, which is not defined"),
                    ));
                }
            }
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            if let Err(e) = crate::alert::maintenance::Window::new(w) {
                let at = section().key("maintenance").index(i);
                let at = match e.field() {
                    Some(field) => at.key(field),
                    None => at,
                };
                problems.push(ConfigProblem::new(at, e));
            }
        }
        if self.retry.initial.is_zero() || self.retry.max < self.retry.initial {
            problems.push(ConfigProblem::new(
                "alerting.retry.initial",
                "alerting.retry: initial must be positive and at most max",
            ));
        }
        if self.flapping.changes == 0 {
            problems.push(ConfigProblem::new(
                "alerting.flapping.changes",
                "alerting.flapping.changes must be at least 1",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// What the digest cycle needs of this section: the channels, links and delivery deadline.
    pub fn digest_delivery(&self) -> crate::digest::cycle::Delivery<'_> {
        crate::digest::cycle::Delivery {
            channels: &self.channels,
            links: crate::digest::render::LinkBase {
                dashboard_url: self.dashboard_url.as_deref().map(str::to_string),
                trace_url: self.trace_url.as_deref().map(str::to_string),
            },
            give_up_after: self.give_up_after,
        }
    }

    /// What the incident engine needs of this section.
    pub fn engine_settings(&self) -> Settings {
        Settings {
            reopen_within: self.reopen_within,
            flapping: self.flapping.clone(),
            routes: self.routes.clone(),
            channels: self
                .channels
                .iter()
                .map(|(name, c)| (name.clone(), c.reminder_interval()))
                .collect(),
            maintenance: self.maintenance.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::channels::config::{ChannelKind, PAGERDUTY_EVENTS_URL};

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
            let problems = c.validate(|_| None).unwrap_err();
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            lines.join("\n")
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
