//! What the incident engine decides: an incident's new state with its timeline entries and the
//! notifications it causes, which the store commits in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Incident, Notification, NotificationKind};

crate::words::words! {
    /// What an entry of an incident's timeline records: the change that caused a notification, or
    /// that notifications were held back. Serialized (and stored) as its snake_case name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum EventKind {
        Triggered,
        Escalated,
        Reopened,
        Acknowledged,
        Resolved,
        Reminder,
        Flapping,
        /// The change's notifications were not sent (maintenance, or its alert was never sent).
        Muted,
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<NotificationKind> for EventKind {
    fn from(kind: NotificationKind) -> Self {
        match kind {
            NotificationKind::Triggered => EventKind::Triggered,
            NotificationKind::Escalated => EventKind::Escalated,
            NotificationKind::Reopened => EventKind::Reopened,
            NotificationKind::Acknowledged => EventKind::Acknowledged,
            NotificationKind::Resolved => EventKind::Resolved,
            NotificationKind::Reminder => EventKind::Reminder,
            NotificationKind::Flapping => EventKind::Flapping,
        }
    }
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// A human sentence: what happened and why.
    pub detail: String,
}

/// An incident's new state with what it causes, saved atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentChange {
    /// `id == 0`: a new incident (inserted; the store assigns the id).
    pub incident: Incident,
    pub events: Vec<IncidentEvent>,
    /// To deliver (status `pending`, due at once).
    pub notifications: Vec<Notification>,
    /// Not delivered because of a maintenance window (status `muted`), kept for the record.
    pub muted: Vec<Notification>,
}
