//! Incidents, their timeline, and the notification outbox (see `crate::alert`).
//!
//! [`Store::save_incident`] is the outbox's half of "durable before external": an incident's
//! new state, its timeline entries and the notifications it causes are committed in one
//! transaction, so a crash either loses all of them (the change is recomputed from the next
//! run) or none. Delivery attempts are recorded one transaction each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store};
use crate::alert::{Incident, IncidentState, Notification};

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub at: DateTime<Utc>,
    /// `opened`, `escalated`, `acknowledged`, `resolved`, `reopened`, `flapping`, `settled`,
    /// `muted`…
    pub kind: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Pending,
    Delivered,
    /// Given up on: permanent error, or still failing after `give_up_after`.
    Failed,
    Muted,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Failed => "failed",
            NotificationStatus::Muted => "muted",
        }
    }
}

/// A notification with its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub notification: Notification,
    pub status: NotificationStatus,
    pub attempts: u32,
    /// When the delivery worker should try next (pending ones only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    pub duration_ms: f64,
    /// HTTP status or SMTP reply code, when the receiver answered.
    pub status_code: Option<u16>,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

/// What becomes of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// Which incidents [`Store::incidents`] lists.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub journey: Option<String>,
    /// Only these states; empty = all.
    pub states: Vec<IncidentState>,
    /// Incidents not resolved before this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many; 0 means no limit.
    pub limit: u32,
}

impl Store {
    /// Inserts or updates the incident, appends its events and queues its notifications, in
    /// one transaction. Returns the incident's id. Notifications are stored with the
    /// incident's final id in their snapshot.
    pub async fn save_incident(&self, change: &IncidentChange) -> Result<i64> {
        let _ = change;
        todo!("store helper")
    }

    /// Incidents, most recently opened first.
    pub async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let _ = filter;
        todo!("store helper")
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>> {
        let _ = id;
        todo!("store helper")
    }

    /// The incident's timeline, oldest first.
    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>> {
        let _ = id;
        todo!("store helper")
    }

    /// The incident's notifications, in the order they were queued.
    pub async fn incident_notifications(&self, id: i64) -> Result<Vec<NotificationRecord>> {
        let _ = id;
        todo!("store helper")
    }

    /// Pending notifications in the order they were queued (due or not), at most `limit`.
    pub async fn pending_notifications(&self, limit: u32) -> Result<Vec<NotificationRecord>> {
        let _ = limit;
        todo!("store helper")
    }

    /// Records an attempt and the notification's new state, in one transaction.
    pub async fn record_attempt(
        &self,
        id: uuid::Uuid,
        attempt: &DeliveryAttempt,
        after: AfterAttempt,
    ) -> Result<()> {
        let _ = (id, attempt, after);
        todo!("store helper")
    }

    /// Attempts of one notification, oldest first.
    pub async fn delivery_attempts(&self, id: uuid::Uuid) -> Result<Vec<DeliveryAttempt>> {
        let _ = id;
        todo!("store helper")
    }

    /// Number of notifications per channel and status (for `/metrics`).
    pub async fn notification_counts(&self) -> Result<Vec<(String, NotificationStatus, u64)>> {
        todo!("store helper")
    }
}
