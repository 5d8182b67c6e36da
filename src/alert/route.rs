//! Routing: which channels hear about an incident, from the config's `routes`.

use super::Severity;
use super::config::AlertConfig;

/// The built-in channel that prints notifications to the log; always defined.
pub const LOG_CHANNEL: &str = "log";

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<super::config::Route>,
    /// Every configured channel, for configs without routes.
    all: Vec<String>,
}

impl Router {
    pub fn new(config: &AlertConfig) -> Router {
        let mut all: Vec<String> = config.channels.keys().cloned().collect();
        if all.is_empty() {
            all.push(LOG_CHANNEL.to_string());
        }
        Router {
            routes: config.routes.clone(),
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
        let r = Router::new(&config);
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
        let r = Router::new(&AlertConfig::default());
        assert_eq!(channels(&r, None, &[], Severity::Failure), [LOG_CHANNEL]);
        let config: AlertConfig =
            toml::from_str("[channels.b]\ntype = \"log\"\n[channels.a]\ntype = \"log\"\n").unwrap();
        let r = Router::new(&config);
        assert_eq!(channels(&r, None, &[], Severity::Degraded), ["a", "b"]);
    }
}
