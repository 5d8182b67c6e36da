//! What changes with time alone: locations that stop reporting, flapping that settles,
//! maintenance windows that end with the incident still active, reminders.

use chrono::{DateTime, Utc};

use super::{Audience, Engine};
use crate::alert::IncidentChange;
use crate::alert::maintenance;
use crate::alert::{IncidentState, NotificationKind};
use crate::journey::{Journey, Schedule};

/// How long a location may go without a run before it counts as gone: three periods of the
/// schedule plus the journey's timeout, at least a minute.
/// A cron schedule's period is measured between its next two instants after `now`.
pub(super) fn silent_after(journey: &Journey, now: DateTime<Utc>) -> chrono::Duration {
    let period = match &journey.schedule {
        Schedule::Every(p) => chrono::Duration::from_std(*p).unwrap_or(chrono::Duration::MAX),
        Schedule::Cron(_) => {
            let next =
                |after| crate::scheduler::plan::next_fire(&journey.schedule, &journey.name, after);
            match next(now).and_then(|a| Some((a, next(a)?))) {
                Some((a, b)) => b - a,
                None => chrono::Duration::MAX,
            }
        }
    };
    let timeout = chrono::Duration::from_std(journey.timeout).unwrap_or_default();
    period
        .checked_mul(3)
        .and_then(|p| p.checked_add(&timeout))
        .unwrap_or(chrono::Duration::MAX)
        .max(chrono::Duration::minutes(1))
}

impl Engine {
    /// Locations that stopped reporting leave the journey's rules, so an incident does not
    /// stay open (or a K-of-M count stay met) on the word of a location nobody probes now.
    pub(super) fn forget_silent(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Option<IncidentChange> {
        let js = self.journeys.get(name)?;
        let silent: Vec<String> = js
            .locations
            .iter()
            .filter(|(_, l)| l.last_run.is_some_and(|t| now - t > js.silent_after))
            .map(|(location, _)| location.clone())
            .collect();
        // All silent: nothing left to judge by, so the last word stands.
        if silent.is_empty() || silent.len() == js.locations.len() {
            return None;
        }
        tracing::warn!(journey = name, locations = ?silent, "locations stopped reporting: left out of the incident rules");
        self.stash(name);
        let js = self.journeys.get_mut(name)?;
        js.locations
            .retain(|location, _| !silent.contains(location));
        self.evaluate(name, now)
    }

    /// A flapping incident that has not changed state for a whole window settles.
    pub(super) fn settle(&mut self, name: &str, now: DateTime<Utc>) -> Option<IncidentChange> {
        let window = self.flap_window;
        let js = self.journeys.get(name)?;
        let i = js.incident.as_ref().filter(|i| i.flapping)?;
        if js.changes.back().is_some_and(|t| now - *t <= window) {
            return None;
        }
        let resolved = i.state == IncidentState::Resolved;
        self.stash(name);
        let js = self.journeys.get_mut(name)?;
        js.changes.clear();
        js.incident.as_mut()?.flapping = false;
        let (kind, detail) = if resolved {
            (NotificationKind::Resolved, "settled: resolved")
        } else {
            (NotificationKind::Reminder, "settled: still open")
        };
        Some(self.change(name, kind, detail.to_string(), now))
    }

    /// A maintenance window that muted an alert ended while the incident is still active.
    pub(super) fn unmute(&mut self, name: &str, now: DateTime<Utc>) -> Option<IncidentChange> {
        let js = self.journeys.get(name)?;
        if !js.muted_alert
            || js.active().is_none()
            || !maintenance::muting(&self.windows, &js.name, &js.tags, now).is_empty()
        {
            return None;
        }
        self.stash(name);
        let detail = "maintenance over and still active".to_string();
        Some(self.change(name, NotificationKind::Triggered, detail, now))
    }

    /// Channels with a reminder interval hear again about an open, unacknowledged incident.
    pub(super) fn remind(&mut self, name: &str, now: DateTime<Utc>) -> Option<IncidentChange> {
        let js = self.journeys.get(name)?;
        let i = js
            .active()
            .filter(|i| i.state == IncidentState::Open && !i.flapping)?;
        if !maintenance::muting(&self.windows, &js.name, &js.tags, now).is_empty() {
            return None;
        }
        let due: Vec<String> = i
            .channels
            .iter()
            .filter(|c| {
                self.reminders.get(*c).is_some_and(|every| {
                    let last = js.last_alerted.get(*c).copied().unwrap_or(i.opened_at);
                    now - last >= *every
                })
            })
            .cloned()
            .collect();
        if due.is_empty() {
            return None;
        }
        let open_for = std::time::Duration::from_secs(i.duration(now).as_secs());
        let detail = format!(
            "reminder to {}: open for {}",
            due.join(", "),
            humantime::format_duration(open_for)
        );
        self.stash(name);
        Some(self.change_to(
            name,
            NotificationKind::Reminder,
            detail,
            now,
            Audience::Only(&due),
        ))
    }
}
