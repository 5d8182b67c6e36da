//! What the incident engine decides: an incident's new state with its timeline entries and the
//! notifications it causes, which the store commits in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventKind, Incident, Notification};

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
