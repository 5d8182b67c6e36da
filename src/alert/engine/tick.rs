//! What changes with time alone: flapping that settles, maintenance windows that end with
//! the incident still active, reminders.

use chrono::{DateTime, Utc};

use super::{Audience, Engine};
use crate::alert::maintenance;
use crate::alert::{IncidentState, NotificationKind};
use crate::store::alerts::IncidentChange;

impl Engine {
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
