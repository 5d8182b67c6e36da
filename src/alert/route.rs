//! Routing: which channels hear about an incident, from the config's `routes`.

use serde::Deserialize;

use super::Severity;

/// The built-in channel that prints notifications to the log; always defined.
pub const LOG_CHANNEL: &str = "log";

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

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// Every configured channel, for configs without routes.
    all: Vec<String>,
}

impl Router {
    /// `channels`: every configured channel's name, in order.
    pub fn new(routes: &[Route], channels: &[String]) -> Router {
        let mut all = channels.to_vec();
        if all.is_empty() {
            all.push(LOG_CHANNEL.to_string());
        }
        Router {
            routes: routes.to_vec(),
            all,
        }
    }

    /// The channels for an incident of `journey` at `severity`: the union of every matching
    /// route's, in the order routes name them; with no routes, every channel (or `log` when
    /// none is configured).
    pub fn channels(
        &self,
        journey: &str,
        tags: &[String],
        owner: Option<&str>,
        severity: Severity,
    ) -> Vec<String> {
        if self.routes.is_empty() {
            return self.all.clone();
        }
        let mut out: Vec<String> = Vec::new();
        for route in &self.routes {
            let matches = (route.severity.is_empty() || route.severity.contains(&severity))
                && (route.journeys.is_empty() || route.journeys.iter().any(|j| j == journey))
                && (route.owners.is_empty()
                    || owner.is_some_and(|o| route.owners.iter().any(|r| r == o)))
                && (route.tags.is_empty() || tags.iter().any(|t| route.tags.contains(t)));
            if matches {
                for c in &route.channels {
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::AlertConfig;

    fn router(config: &AlertConfig) -> Router {
        let names: Vec<String> = config.channels.keys().cloned().collect();
        Router::new(&config.routes, &names)
    }

    /// The channels of journey `checkout` with `owner` and `tags`.
    fn channels(r: &Router, owner: Option<&str>, tags: &[&str], s: Severity) -> Vec<String> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        r.channels("checkout", &tags, owner, s)
    }

    #[test]
    fn severity_tag_owner_and_journey_routes_combine() {
        let config: AlertConfig = toml::from_str(
            r#"
            [channels.pager]
            type = "log"
            [channels.chat]
            type = "log"
            [channels.payments]
            type = "log"
            [[routes]]
            severity = ["failure"]
            tags = ["critical"]
            channels = ["pager"]
            [[routes]]
            channels = ["chat"]
            [[routes]]
            owners = ["payments-team"]
            journeys = ["checkout"]
            channels = ["payments", "chat"]
            "#,
        )
        .unwrap();
        let r = router(&config);
        let critical = (Some("shop-team"), &["critical"][..]);
        assert_eq!(
            channels(&r, critical.0, critical.1, Severity::Failure),
            ["pager", "chat"]
        );
        assert_eq!(
            channels(&r, critical.0, critical.1, Severity::Degraded),
            ["chat"]
        );
        assert_eq!(
            channels(&r, Some("payments-team"), &[], Severity::Failure),
            ["chat", "payments"]
        );
    }

    #[test]
    fn without_routes_every_channel_hears_everything() {
        let r = router(&AlertConfig::default());
        assert_eq!(channels(&r, None, &[], Severity::Failure), [LOG_CHANNEL]);
        let config: AlertConfig =
            toml::from_str("[channels.b]\ntype = \"log\"\n[channels.a]\ntype = \"log\"\n").unwrap();
        let r = router(&config);
        assert_eq!(channels(&r, None, &[], Severity::Degraded), ["a", "b"]);
    }
}
