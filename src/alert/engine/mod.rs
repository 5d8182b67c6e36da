//! The incident state machine: one incident at a time per journey, fed with finished runs,
//! anomaly episodes, API commands and clock ticks; it answers with [`IncidentChange`]s (the
//! incident's new state, timeline entries, notifications) for the caller to commit.
//!
//! Pure and synchronous: no I/O, time comes in with every call, so tests run days of history
//! in microseconds. The caller commits each change to the store before anything is sent
//! (the outbox), then reports the id of a new incident back ([`Engine::saved`]), or undoes
//! the journey's state if the change could not be stored ([`Engine::rollback`]).
//!
//! Rules, per journey (`alert:` in the journey file):
//! - a location is *failing* after `failure_after` consecutive failed runs there, *degraded*
//!   after as many consecutive runs where a `degraded_when` condition held;
//! - `failure` when `locations` (K) locations are failing (K capped at the number of locations
//!   that run the journey); `degraded` when fewer are failing, a location is degraded, or an
//!   anomaly episode is open on one of its steps;
//! - resolved once no episode is open and every location's last `resolve_after` runs were good;
//! - a resolved incident that fails again within `reopen_within` reopens (same dedup key);
//! - more than `flapping.changes` opens/resolves within `flapping.window`: flapping, notified
//!   once, then silent until it has not changed state for a whole window;
//! - a location that stops reporting (no run for three periods plus the timeout, at least a
//!   minute: its nodes are gone) leaves the journey's rules until it reports again.

mod cause;
mod settings;
mod state;
#[cfg(test)]
mod tests;
mod tick;

pub use settings::{Flapping, Settings};

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::maintenance::{self, Window};
use super::route::Router;
use super::{
    AnomalyCause, Cause, Incident, IncidentState, Links, Notification, NotificationKind, Severity,
};
use crate::alert::{EventKind, IncidentChange, IncidentEvent, ResolvedBy};
use crate::baseline::EpisodeEvent;
use crate::baseline::StoredEpisode;
use crate::baseline::Transition;
use crate::journey::Journey;
use crate::run::RunResult;
use cause::Health;
use state::{JourneyState, LocationState};

/// Why an API command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("no open incident {0}")]
    NotFound(i64),
    #[error("incident {id} is already {state}")]
    Conflict { id: i64, state: &'static str },
}

pub struct Engine {
    reopen_within: Duration,
    flap_changes: usize,
    flap_window: Duration,
    router: Router,
    windows: Vec<Window>,
    /// Reminder interval per channel that has one.
    reminders: HashMap<String, Duration>,
    journeys: HashMap<String, JourneyState>,
    /// Journey states as they were before the last uncommitted change.
    undo: HashMap<String, JourneyState>,
}

/// Which of an incident's channels a change notifies.
pub(super) enum Audience<'a> {
    All,
    Only(&'a [String]),
    /// Recorded in the timeline only (flapping).
    Nobody,
}

fn event(at: DateTime<Utc>, kind: EventKind, detail: impl Into<String>) -> IncidentEvent {
    IncidentEvent {
        at,
        kind,
        detail: detail.into(),
    }
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    for c in b {
        if !a.contains(&c) {
            a.push(c);
        }
    }
    a
}

impl Engine {
    /// `settings` must have been validated (its maintenance windows parse).
    pub fn new(settings: &Settings) -> Engine {
        let std = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
        let channels: Vec<String> = settings.channels.iter().map(|(n, _)| n.clone()).collect();
        Engine {
            reopen_within: std(settings.reopen_within),
            flap_changes: settings.flapping.changes as usize,
            flap_window: std(settings.flapping.window),
            router: Router::new(&settings.routes, &channels),
            windows: settings
                .maintenance
                .iter()
                .filter_map(|w| Window::new(w).ok())
                .collect(),
            reminders: settings
                .channels
                .iter()
                .filter_map(|(name, every)| every.map(|d| (name.clone(), std(d))))
                .collect(),
            journeys: HashMap::new(),
            undo: HashMap::new(),
        }
    }

    /// Picks up where a previous process left off: the latest incident of each journey
    /// (active, or resolved recently enough to reopen) and the open anomaly episodes.
    /// Location streaks start afresh.
    pub fn resume(
        &mut self,
        incidents: Vec<Incident>,
        episodes: &[StoredEpisode],
        now: DateTime<Utc>,
    ) {
        for incident in incidents {
            let js = self.journeys.entry(incident.journey.clone()).or_default();
            if js
                .incident
                .as_ref()
                .is_some_and(|i| i.opened_at >= incident.opened_at)
            {
                continue;
            }
            js.name = incident.journey.clone();
            js.tags = incident.tags.clone();
            js.owner = incident.owner.clone();
            js.runbook = incident.runbook.clone();
            js.announced = true;
            js.last_alerted = incident.channels.iter().map(|c| (c.clone(), now)).collect();
            js.incident = Some(incident);
        }
        // Time spent not leading (runs not analysed yet) is not silence from a location.
        for l in self
            .journeys
            .values_mut()
            .flat_map(|js| js.locations.values_mut())
        {
            l.last_run = l.last_run.map(|t| t.max(now));
        }
        for e in episodes.iter().filter(|e| e.end.is_none()) {
            let js = self.journeys.entry(e.series.journey.clone()).or_default();
            js.name = e.series.journey.clone();
            js.anomalies.insert(
                e.id,
                AnomalyCause {
                    episode_id: e.id,
                    step: e.series.step.clone(),
                    location: e.series.location.clone(),
                    detector: e.detector.as_str().to_string(),
                    baseline: e.baseline,
                    value: e.peak_value,
                },
            );
        }
    }

    /// Active incidents, for the API and metrics.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.journeys.values().filter_map(JourneyState::active)
    }

    /// A finished run of `journey`.
    pub fn observe_run(
        &mut self,
        journey: &Journey,
        run: &RunResult,
        now: DateTime<Utc>,
    ) -> Option<IncidentChange> {
        let js = self.begin(journey, now);
        let rules = js.rules;
        let loc = js.locations.entry(run.location.clone()).or_default();
        loc.last_run = loc.last_run.max(Some(run.started_at));
        match cause::health(run) {
            Health::Good => {
                loc.good += 1;
                loc.failed = 0;
                loc.degraded = 0;
                if loc.good >= rules.resolve_after {
                    loc.bad_since = None;
                }
            }
            Health::Degraded(cause) => {
                loc.degraded += 1;
                loc.failed = 0;
                loc.bad(cause, run.started_at);
            }
            Health::Failed(cause) => {
                loc.failed += 1;
                loc.degraded = 0;
                loc.bad(cause, run.started_at);
            }
        }
        self.evaluate(&journey.name, now)
    }

    /// An anomaly episode of one of `journey`'s steps started or ended.
    pub fn observe_episode(
        &mut self,
        journey: &Journey,
        episode: &EpisodeEvent,
        now: DateTime<Utc>,
    ) -> Option<IncidentChange> {
        let js = self.begin(journey, now);
        let (id, anomaly) = cause::anomaly(episode);
        match episode.transition {
            Transition::Started(_) => js.anomalies.insert(id, anomaly),
            Transition::Ended(_) => js.anomalies.remove(&id),
        };
        self.evaluate(&journey.name, now)
    }

    /// Acknowledged through the API by `by`.
    pub fn acknowledge(
        &mut self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentChange, CommandError> {
        let name = self.journey_of(id)?;
        let js = self.journeys.get(&name).expect("journey_of found it");
        let state = js.active().map(|i| i.state);
        if state != Some(IncidentState::Open) {
            return Err(CommandError::Conflict {
                id,
                state: state.unwrap_or(IncidentState::Resolved).as_str(),
            });
        }
        self.stash(&name);
        let js = self.journeys.get_mut(&name).expect("journey_of found it");
        let incident = js.incident.as_mut().expect("active");
        incident.state = IncidentState::Acknowledged;
        incident.acknowledged_at = Some(now);
        incident.acknowledged_by = Some(by.to_string());
        let detail = format!("acknowledged by {by}");
        Ok(self.change(&name, NotificationKind::Acknowledged, detail, now))
    }

    /// Resolved through the API by `by`. The journey's streaks start over, and the anomaly
    /// episodes open now no longer hold the incident: only new evidence reopens it.
    pub fn resolve(
        &mut self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentChange, CommandError> {
        let name = self.journey_of(id)?;
        self.stash(&name);
        let js = self.journeys.get_mut(&name).expect("journey_of found it");
        for l in js.locations.values_mut() {
            *l = LocationState::default();
        }
        js.anomalies.clear();
        Ok(self.close(&name, ResolvedBy::from(by.to_string()), now))
    }

    /// Reminders, flapping that settled, maintenance windows that ended.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<IncidentChange> {
        let names: Vec<String> = self.journeys.keys().cloned().collect();
        let mut changes = Vec::new();
        for name in names {
            self.undo.remove(&name);
            if let Some(change) = self.forget_silent(&name, now) {
                changes.push(change);
            } else if let Some(change) = self.settle(&name, now) {
                changes.push(change);
            } else if let Some(change) = self.unmute(&name, now) {
                changes.push(change);
            } else if let Some(change) = self.remind(&name, now) {
                changes.push(change);
            }
        }
        changes
    }

    /// The store assigned `id` to the journey's new incident.
    pub fn saved(&mut self, journey: &str, id: i64) {
        self.undo.remove(journey);
        if let Some(i) = self
            .journeys
            .get_mut(journey)
            .and_then(|js| js.incident.as_mut())
            .filter(|i| i.id == 0)
        {
            i.id = id;
        }
    }

    /// The journey's last change could not be stored: forget it, so that the next run or
    /// tick computes it again.
    pub fn rollback(&mut self, journey: &str) {
        if let Some(state) = self.undo.remove(journey) {
            self.journeys.insert(journey.to_string(), state);
        }
    }

    // --- internals ----------------------------------------------------------------------

    /// The journey's state, metadata refreshed from its current definition, stashed for undo.
    fn begin(&mut self, journey: &Journey, now: DateTime<Utc>) -> &mut JourneyState {
        self.stash(&journey.name);
        let js = self.journeys.entry(journey.name.clone()).or_default();
        js.name = journey.name.clone();
        js.tags = journey.tags.clone();
        js.owner = journey.owner.clone();
        js.runbook = journey.runbook.clone();
        js.rules = journey.alert;
        js.silent_after = tick::silent_after(journey, now);
        js
    }

    pub(super) fn stash(&mut self, name: &str) {
        let state = self.journeys.get(name).cloned().unwrap_or_default();
        self.undo.insert(name.to_string(), state);
    }

    fn journey_of(&self, id: i64) -> Result<String, CommandError> {
        self.journeys
            .iter()
            .find(|(_, js)| js.active().is_some_and(|i| i.id == id))
            .map(|(name, _)| name.clone())
            .ok_or(CommandError::NotFound(id))
    }

    pub(super) fn evaluate(&mut self, name: &str, now: DateTime<Utc>) -> Option<IncidentChange> {
        let js = self.journeys.get(name)?;
        let (active, all_good) = (js.active().map(|i| i.severity), js.all_good());
        match (active, js.target()) {
            (None, Some((severity, cause))) => Some(self.open(name, severity, cause, now)),
            (Some(Severity::Degraded), Some((Severity::Failure, cause))) => {
                Some(self.escalate(name, cause, now))
            }
            (Some(_), None) if all_good => Some(self.close(name, ResolvedBy::Auto, now)),
            _ => None,
        }
    }

    fn open(
        &mut self,
        name: &str,
        severity: Severity,
        cause: Cause,
        now: DateTime<Utc>,
    ) -> IncidentChange {
        let channels = self.channels_for(name, severity);
        let reopen_within = self.reopen_within;
        let js = self.journeys.get_mut(name).expect("evaluated");
        let started_at = js.bad_since().unwrap_or(now);
        let reopen = js
            .incident
            .as_ref()
            .is_some_and(|i| i.flapping || i.resolved_at.is_some_and(|r| now - r <= reopen_within));
        let (kind, detail) = if reopen {
            let i = js.incident.as_mut().expect("checked");
            i.state = IncidentState::Open;
            i.reopened += 1;
            i.resolved_at = None;
            i.resolved_by = None;
            i.acknowledged_at = None;
            i.acknowledged_by = None;
            i.severity = severity;
            // Every channel heard the resolve; the routes decide afresh who hears this.
            i.channels = channels;
            let detail = format!(
                "reopened ({} time{}): {}",
                i.reopened,
                if i.reopened == 1 { "" } else { "s" },
                cause.headline(severity)
            );
            i.cause = cause;
            (NotificationKind::Reopened, detail)
        } else {
            let detail = format!("opened: {}", cause.headline(severity));
            let dedup_key = format!("waymark-{}", uuid::Uuid::new_v4().simple());
            js.incident = Some(Incident {
                cause,
                channels,
                owner: js.owner.clone(),
                runbook: js.runbook.clone(),
                tags: js.tags.clone(),
                ..Incident::opened(name.to_string(), severity, dedup_key, started_at, now)
            });
            js.announced = false;
            js.last_alerted.clear();
            (NotificationKind::Triggered, detail)
        };
        self.transition(name, kind, detail, now)
    }

    fn escalate(&mut self, name: &str, cause: Cause, now: DateTime<Utc>) -> IncidentChange {
        let channels = self.channels_for(name, Severity::Failure);
        let js = self.journeys.get_mut(name).expect("evaluated");
        let i = js.incident.as_mut().expect("active");
        i.severity = Severity::Failure;
        // An acknowledgement was for the degradation: a failure needs someone's attention.
        i.state = IncidentState::Open;
        i.acknowledged_at = None;
        i.acknowledged_by = None;
        i.channels = union(std::mem::take(&mut i.channels), channels);
        let detail = format!(
            "escalated to failure: {}",
            cause.headline(Severity::Failure)
        );
        i.cause = cause;
        self.change(name, NotificationKind::Escalated, detail, now)
    }

    fn close(&mut self, name: &str, by: ResolvedBy, now: DateTime<Utc>) -> IncidentChange {
        let js = self.journeys.get_mut(name).expect("evaluated");
        let i = js.incident.as_mut().expect("active");
        i.state = IncidentState::Resolved;
        i.resolved_at = Some(now);
        let detail = match &by {
            ResolvedBy::Auto => format!("resolved after {} good runs", js.rules.resolve_after),
            ResolvedBy::User(who) => format!("resolved by {who}"),
        };
        i.resolved_by = Some(by);
        self.transition(name, NotificationKind::Resolved, detail, now)
    }

    /// An open or a resolve: counted for flapping, which may replace its notification.
    fn transition(
        &mut self,
        name: &str,
        kind: NotificationKind,
        detail: String,
        now: DateTime<Utc>,
    ) -> IncidentChange {
        let (limit, window) = (self.flap_changes, self.flap_window);
        let js = self.journeys.get_mut(name).expect("evaluated");
        js.changes.push_back(now);
        while js.changes.front().is_some_and(|t| now - *t > window) {
            js.changes.pop_front();
        }
        let i = js.incident.as_mut().expect("just changed");
        if i.flapping {
            let detail = format!("{detail} (flapping: not notified)");
            return self.change_to(name, kind, detail, now, Audience::Nobody);
        }
        if js.changes.len() > limit {
            i.flapping = true;
            let flap = format!(
                "{detail}; flapping: {} changes within {}",
                js.changes.len(),
                humantime::format_duration(window.to_std().unwrap_or_default())
            );
            return self.change(name, NotificationKind::Flapping, flap, now);
        }
        self.change(name, kind, detail, now)
    }

    /// The incident's current state as a change with one timeline entry and `kind`'s
    /// notifications to its channels (muted during maintenance).
    pub(super) fn change(
        &mut self,
        name: &str,
        kind: NotificationKind,
        detail: String,
        now: DateTime<Utc>,
    ) -> IncidentChange {
        self.change_to(name, kind, detail, now, Audience::All)
    }

    pub(super) fn change_to(
        &mut self,
        name: &str,
        kind: NotificationKind,
        detail: String,
        now: DateTime<Utc>,
        audience: Audience,
    ) -> IncidentChange {
        let js = self.journeys.get_mut(name).expect("evaluated");
        let muting = maintenance::muting(&self.windows, &js.name, &js.tags, now);
        let incident = js.incident.clone().expect("changed");
        let mut events = vec![event(now, kind.into(), detail)];
        let notifications: Vec<Notification> = incident
            .channels
            .iter()
            .filter(|c| match &audience {
                Audience::All => true,
                Audience::Only(only) => only.contains(c),
                Audience::Nobody => false,
            })
            .map(|channel| Notification {
                id: uuid::Uuid::new_v4(),
                channel: channel.clone(),
                kind,
                created_at: now,
                incident: incident.clone(),
                links: Links::default(),
            })
            .collect();
        let deliver = if kind.is_alerting() {
            muting.is_empty()
        } else {
            js.announced
        };
        if kind.is_alerting() {
            js.muted_alert = !deliver && incident.state != IncidentState::Resolved;
        } else if kind == NotificationKind::Resolved {
            js.muted_alert = false;
        }
        let (notifications, muted) = if deliver {
            if kind.is_alerting() && !notifications.is_empty() {
                js.announced = true;
                for n in &notifications {
                    js.last_alerted.insert(n.channel.clone(), now);
                }
            }
            (notifications, Vec::new())
        } else {
            let why = if muting.is_empty() {
                "its alert was never sent".to_string()
            } else {
                format!("maintenance: {}", muting.join(", "))
            };
            events.push(event(
                now,
                EventKind::Muted,
                format!("{} not notified ({why})", kind.as_str()),
            ));
            (Vec::new(), notifications)
        };
        IncidentChange {
            incident,
            events,
            notifications,
            muted,
        }
    }

    fn channels_for(&self, name: &str, severity: Severity) -> Vec<String> {
        let js = &self.journeys[name];
        self.router
            .channels(&js.name, &js.tags, js.owner.as_deref(), severity)
    }
}
