//! Alerting: turns runs and anomaly episodes into incidents, and incidents into notifications
//! that are delivered once, reliably.
//!
//! - [`engine`] owns the incident state machine (pure: time comes in with every call).
//! - [`route`] picks the channels of an incident; [`maintenance`] mutes them for a while.
//! - The store commits an incident change together with the notifications it causes (the
//!   outbox); `service::outbox` delivers them afterwards, retrying with backoff ([`retry`]),
//!   recording attempts.
//! - `crate::channels` turns one [`Notification`] into bytes on a wire: one file per kind.
//!   They come after this module in the layer order, so they are named, not linked.
//!
//! Everything a notification says is in the [`Notification`] stored in the outbox; channel
//! credentials (routing keys, webhook URLs, secrets, SMTP passwords) are not: notifiers add
//! them at send time, so they never reach the database, the API or the logs.

#![deny(clippy::disallowed_methods)]

mod change;
pub mod engine;
pub mod maintenance;
pub mod retry;
pub mod route;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use change::{IncidentChange, IncidentEvent};

crate::words::words! {
    /// How bad an incident is. Ordered: an incident only ever escalates.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    #[derive(Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Severity {
        /// Slower than its baseline or a `degraded_when` condition holds: tell the team.
        Degraded,
        /// Runs fail: page on-call.
        Failure,
    }
}

crate::words::words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum IncidentState {
        Open,
        Acknowledged,
        Resolved,
    }
}

/// The evidence behind an incident, as of its latest change: what every notification shows.
/// Values come from stored run results, which are already redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cause {
    /// The run that confirmed (or last changed) the incident.
    pub run_id: Option<uuid::Uuid>,
    pub trace_id: Option<String>,
    /// Where that run ran.
    pub location: Option<String>,
    /// Locations failing when the incident opened or escalated (several with K-of-M rules).
    #[serde(default)]
    pub failing_locations: Vec<String>,
    pub step: Option<String>,
    /// The step's `dependency` label, when it has one.
    pub dependency: Option<String>,
    /// Failure class (`timeout`, `condition`, `http_status`…).
    pub failure_class: Option<String>,
    /// The first condition that did not hold (or the `degraded_when` condition that did).
    pub condition: Option<String>,
    /// Its left side's actual value.
    pub actual: Option<String>,
    /// The failure's message.
    pub error: Option<String>,
    /// The anomaly episode behind a degradation.
    pub anomaly: Option<AnomalyCause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyCause {
    pub episode_id: i64,
    pub step: String,
    pub location: String,
    /// `latency` or `failure_rate`.
    pub detector: String,
    /// What the baseline expected (ms, or a failure rate).
    pub baseline: f64,
    /// What was observed at the episode's peak.
    pub value: f64,
}

/// Who resolved an incident. Serialized as one string, `auto` or the user's name, as the API,
/// the stored incidents and the notifications have always carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ResolvedBy {
    /// Good runs resolved it.
    Auto,
    /// Someone resolved it through the API or the dashboard.
    User(String),
}

impl ResolvedBy {
    pub fn as_str(&self) -> &str {
        match self {
            ResolvedBy::Auto => "auto",
            ResolvedBy::User(name) => name,
        }
    }
}

impl From<String> for ResolvedBy {
    fn from(s: String) -> Self {
        match s.as_str() {
            "auto" => ResolvedBy::Auto,
            _ => ResolvedBy::User(s),
        }
    }
}

impl From<ResolvedBy> for String {
    fn from(by: ResolvedBy) -> Self {
        match by {
            ResolvedBy::Auto => "auto".to_string(),
            ResolvedBy::User(name) => name,
        }
    }
}

impl std::fmt::Display for ResolvedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incident of one journey. `id` is 0 until the store has assigned one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: i64,
    pub journey: String,
    pub severity: Severity,
    pub state: IncidentState,
    /// Stable for the incident's whole life (reopenings included): PagerDuty's `dedup_key`.
    pub dedup_key: String,
    /// Start of the first bad run: what time-to-detect is measured from.
    pub started_at: DateTime<Utc>,
    /// When the rule held and the incident opened.
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Good runs (`auto`), or who resolved it through the API.
    #[schema(value_type = Option<String>)]
    pub resolved_by: Option<ResolvedBy>,
    /// Times it reopened within the reopen window instead of becoming a new incident.
    pub reopened: u32,
    /// Set while the journey flips state too often; cleared once it settles.
    pub flapping: bool,
    pub cause: Cause,
    /// The channels told about it so far; later notifications go to the same ones.
    pub channels: Vec<String>,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Incident {
    /// A new open incident: not stored yet (`id` 0), never acknowledged, resolved or reopened,
    /// with an empty cause and no channels, owner, runbook or tags.
    pub(crate) fn opened(
        journey: String,
        severity: Severity,
        dedup_key: String,
        started_at: DateTime<Utc>,
        opened_at: DateTime<Utc>,
    ) -> Incident {
        Incident {
            id: 0,
            journey,
            severity,
            state: IncidentState::Open,
            dedup_key,
            started_at,
            opened_at,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            reopened: 0,
            flapping: false,
            cause: Cause::default(),
            channels: vec![],
            owner: None,
            runbook: None,
            tags: vec![],
        }
    }

    /// How long it has lasted, up to its resolution (or `now`).
    pub fn duration(&self, now: DateTime<Utc>) -> Duration {
        let end = self.resolved_at.unwrap_or(now);
        (end - self.started_at).to_std().unwrap_or_default()
    }
}

/// Declares [`NotificationKind`] and [`EventKind`] from one list: every reason to notify is
/// also what a timeline entry can record, which has one more (`Muted`).
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident,)+) => {
        crate::words::words! {
            /// Why a notification is sent.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
            #[serde(rename_all = "snake_case")]
            pub enum NotificationKind {
                $($(#[$doc])* $kind,)+
            }
        }

        crate::words::words! {
            /// What an entry of an incident's timeline records: the change that caused a
            /// notification, or that notifications were held back. Serialized (and stored) as
            /// its snake_case name.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
            #[serde(rename_all = "snake_case")]
            pub enum EventKind {
                $($kind,)+
                /// The change's notifications were not sent (maintenance, or its alert was never
                /// sent).
                Muted,
            }
        }

        impl From<NotificationKind> for EventKind {
            fn from(kind: NotificationKind) -> Self {
                match kind {
                    $(NotificationKind::$kind => EventKind::$kind,)+
                }
            }
        }
    };
}

kinds! {
    Triggered,
    /// Degraded became failure: same incident, new severity.
    Escalated,
    /// Resolved recently and failing again: same incident, same dedup key.
    Reopened,
    Acknowledged,
    Resolved,
    /// Still open after the channel's reminder interval.
    Reminder,
    /// The journey flips state too often; further changes are not notified until it settles.
    Flapping,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NotificationKind {
    /// Whether it (re)asserts a problem, as opposed to acknowledging or ending one.
    pub fn is_alerting(self) -> bool {
        !matches!(
            self,
            NotificationKind::Acknowledged | NotificationKind::Resolved
        )
    }
}

/// Dashboard and trace links, absolute when `alerting.dashboard_url` / `trace_url` are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    pub incident: Option<String>,
    pub run: Option<String>,
    pub trace: Option<String>,
    pub runbook: Option<String>,
}

/// One message to one channel: exactly what is stored in the outbox and handed to the
/// channel's `Notifier` (`crate::channels`). `id` makes deliveries idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: uuid::Uuid,
    pub channel: String,
    pub kind: NotificationKind,
    pub created_at: DateTime<Utc>,
    /// The incident as of this notification.
    pub incident: Incident,
    pub links: Links,
}

impl Notification {
    /// The runbook link, else the runbook as the journey names it.
    pub fn runbook(&self) -> Option<&str> {
        self.links
            .runbook
            .as_deref()
            .or(self.incident.runbook.as_deref())
    }

    /// One line for titles and subjects: `[FAILURE] shop-checkout: step "pay" failed`.
    pub fn summary(&self) -> String {
        let i = &self.incident;
        let what = match self.kind {
            NotificationKind::Resolved => "resolved".to_string(),
            NotificationKind::Acknowledged => "acknowledged".to_string(),
            NotificationKind::Flapping => "is flapping".to_string(),
            _ => i.cause.headline(i.severity),
        };
        let tag = match self.kind {
            NotificationKind::Resolved => "RESOLVED",
            NotificationKind::Acknowledged => "ACK",
            _ => match i.severity {
                Severity::Failure => "FAILURE",
                Severity::Degraded => "DEGRADED",
            },
        };
        format!("[{tag}] {}: {what}", i.journey)
    }
}

impl Cause {
    /// Where it fails: the failing locations, else the location of the run.
    pub fn locations(&self) -> Vec<&str> {
        if self.failing_locations.is_empty() {
            self.location.iter().map(String::as_str).collect()
        } else {
            self.failing_locations.iter().map(String::as_str).collect()
        }
    }

    /// What is wrong, in a few words.
    pub fn headline(&self, severity: Severity) -> String {
        if let Some(a) = &self.anomaly {
            return match a.detector.as_str() {
                "latency" => format!(
                    "step \"{}\" is slower than its baseline ({:.0} ms, usually {:.0} ms)",
                    a.step, a.value, a.baseline
                ),
                _ => format!(
                    "step \"{}\" fails more often than usual ({:.0}%, usually {:.1}%)",
                    a.step,
                    a.value * 100.0,
                    a.baseline * 100.0
                ),
            };
        }
        let step = self.step.as_deref().unwrap_or("the journey");
        match (severity, &self.condition, &self.actual) {
            (Severity::Degraded, Some(c), Some(a)) => {
                format!("step \"{step}\" is degraded: {c} (actual {a})")
            }
            (Severity::Failure, Some(c), Some(a)) => {
                format!("step \"{step}\" failed: {c} (actual {a})")
            }
            (Severity::Failure, _, _) => match &self.error {
                Some(e) => format!("step \"{step}\" failed: {e}"),
                None => format!("step \"{step}\" failed"),
            },
            (Severity::Degraded, _, _) => format!("step \"{step}\" is degraded"),
        }
    }
}

#[cfg(test)]
impl Incident {
    /// An open incident of `journey` with nothing else set, for tests to adjust.
    pub(crate) fn open_for_test(
        journey: &str,
        severity: Severity,
        started: DateTime<Utc>,
    ) -> Incident {
        Incident::opened(
            journey.into(),
            severity,
            format!("test/{journey}"),
            started,
            started,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_summaries_read_well() {
        assert!(Severity::Failure > Severity::Degraded);
        let cause = Cause {
            step: Some("pay".into()),
            condition: Some("[STATUS] == 200".into()),
            actual: Some("503".into()),
            ..Cause::default()
        };
        assert_eq!(
            cause.headline(Severity::Failure),
            "step \"pay\" failed: [STATUS] == 200 (actual 503)"
        );
        let slow = Cause {
            anomaly: Some(AnomalyCause {
                episode_id: 3,
                step: "search".into(),
                location: "local".into(),
                detector: "latency".into(),
                baseline: 80.0,
                value: 412.4,
            }),
            ..Cause::default()
        };
        assert_eq!(
            slow.headline(Severity::Degraded),
            "step \"search\" is slower than its baseline (412 ms, usually 80 ms)"
        );
    }
}
