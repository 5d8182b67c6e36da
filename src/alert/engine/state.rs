//! What the engine remembers of each journey: its runs' streaks per location, open anomaly
//! episodes, its latest incident, and what was sent about it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::alert::{AnomalyCause, Cause, Incident, IncidentState, Severity};
use crate::journey::AlertRules;

#[derive(Debug, Clone, Default)]
pub(super) struct JourneyState {
    pub(super) name: String,
    pub(super) tags: Vec<String>,
    pub(super) owner: Option<String>,
    pub(super) runbook: Option<String>,
    pub(super) rules: AlertRules,
    pub(super) locations: BTreeMap<String, LocationState>,
    /// A location with no run for this long has stopped reporting (its nodes are gone).
    pub(super) silent_after: chrono::Duration,
    /// Open anomaly episodes on the journey's steps, by episode id.
    pub(super) anomalies: BTreeMap<i64, AnomalyCause>,
    /// The latest incident: active, or resolved (and perhaps reopened).
    pub(super) incident: Option<Incident>,
    /// When the incident opened or resolved, within the flapping window.
    pub(super) changes: VecDeque<DateTime<Utc>>,
    /// When each channel was last alerted about the incident (for reminders).
    pub(super) last_alerted: HashMap<String, DateTime<Utc>>,
    /// An alerting notification of the incident was queued (so its resolve must be too).
    pub(super) announced: bool,
    /// An alerting notification was muted by maintenance while the incident stays active.
    pub(super) muted_alert: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct LocationState {
    pub(super) failed: u32,
    pub(super) degraded: u32,
    pub(super) good: u32,
    /// Start of the first run of the current bad streak (time-to-detect starts there).
    pub(super) bad_since: Option<DateTime<Utc>>,
    /// Evidence from the latest bad run.
    pub(super) cause: Cause,
    /// Start of the latest run seen from the location.
    pub(super) last_run: Option<DateTime<Utc>>,
}

impl LocationState {
    /// A bad run that started at `at`: the good streak ends, the bad one may begin.
    pub(super) fn bad(&mut self, cause: Cause, at: DateTime<Utc>) {
        self.good = 0;
        self.bad_since.get_or_insert(at);
        self.cause = cause;
    }
}

impl JourneyState {
    pub(super) fn active(&self) -> Option<&Incident> {
        self.incident
            .as_ref()
            .filter(|i| i.state != IncidentState::Resolved)
    }

    /// What the journey's health calls for now.
    pub(super) fn target(&self) -> Option<(Severity, Cause)> {
        let rules = self.rules;
        let failing: Vec<(&String, &LocationState)> = self
            .locations
            .iter()
            .filter(|(_, l)| l.failed >= rules.failure_after)
            .collect();
        let needed = (rules.locations as usize).clamp(1, self.locations.len().max(1));
        if let Some((_, first)) = failing.first() {
            let cause = Cause {
                failing_locations: failing.iter().map(|(name, _)| (*name).clone()).collect(),
                ..first.cause.clone()
            };
            let severity = if failing.len() >= needed {
                Severity::Failure
            } else {
                Severity::Degraded
            };
            return Some((severity, cause));
        }
        if let Some(l) = self
            .locations
            .values()
            .find(|l| l.degraded >= rules.failure_after)
        {
            return Some((Severity::Degraded, l.cause.clone()));
        }
        self.anomalies.values().next().map(|a| {
            let cause = Cause {
                step: Some(a.step.clone()),
                location: Some(a.location.clone()),
                anomaly: Some(a.clone()),
                ..Cause::default()
            };
            (Severity::Degraded, cause)
        })
    }

    pub(super) fn all_good(&self) -> bool {
        self.anomalies.is_empty()
            && self
                .locations
                .values()
                .all(|l| l.good >= self.rules.resolve_after)
    }

    pub(super) fn bad_since(&self) -> Option<DateTime<Utc>> {
        self.locations.values().filter_map(|l| l.bad_since).min()
    }
}
