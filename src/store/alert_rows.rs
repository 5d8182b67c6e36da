//! What incidents, their timelines and the notification outbox are as rows: an
//! [`IncidentChange`] converted to bound columns before its transaction starts (so that
//! nothing but the database can fail once it has), and the rows read back as
//! `sqlx::FromRow` structs.

use super::alerts::{
    AfterAttempt, DeliveryAttempt, DeliveryOutcome, NotificationRecord, NotificationStatus,
};
use super::{Result, StoreError, from_ns, to_ns};
use crate::alert::{
    EventKind, Incident, IncidentChange, IncidentEvent, IncidentState, Notification,
    NotificationKind, Severity,
};

/// An [`IncidentChange`] as columns.
pub(super) struct ChangeRows<'a> {
    pub(super) incident: &'a Incident,
    pub(super) severity: Severity,
    pub(super) state: IncidentState,
    pub(super) started_ns: i64,
    pub(super) opened_ns: i64,
    pub(super) resolved_ns: Option<i64>,
    /// The latest instant the change carries: the store reads no clock.
    pub(super) updated_ns: i64,
    pub(super) events: Vec<(i64, &'a IncidentEvent)>,
    /// Pending ones, then muted ones: their queue order.
    pub(super) notifications: Vec<NotificationRow<'a>>,
}

/// One notification as bound to its insert; the payload is written once the id is known.
pub(super) struct NotificationRow<'a> {
    pub(super) notification: &'a Notification,
    pub(super) id: String,
    pub(super) kind: NotificationKind,
    pub(super) status: NotificationStatus,
    pub(super) created_ns: i64,
    pub(super) next_ns: Option<i64>,
}

impl<'a> ChangeRows<'a> {
    pub(super) fn new(change: &'a IncidentChange) -> Result<Self> {
        let i = &change.incident;
        let queued = |list: &'a [Notification], status: NotificationStatus| {
            list.iter().map(move |n| {
                let created_ns = to_ns(n.created_at)?;
                Ok(NotificationRow {
                    notification: n,
                    id: n.id.to_string(),
                    kind: n.kind,
                    status,
                    created_ns,
                    // Pending ones are due at once; muted ones never.
                    next_ns: (status == NotificationStatus::Pending).then_some(created_ns),
                })
            })
        };
        let notifications = queued(&change.notifications, NotificationStatus::Pending)
            .chain(queued(&change.muted, NotificationStatus::Muted))
            .collect::<Result<Vec<_>>>()?;
        let updated = [i.acknowledged_at, i.resolved_at]
            .into_iter()
            .flatten()
            .chain(change.events.iter().map(|e| e.at))
            .chain(change.notifications.iter().map(|n| n.created_at))
            .chain(change.muted.iter().map(|n| n.created_at))
            .fold(i.opened_at, std::cmp::max);
        Ok(ChangeRows {
            incident: i,
            severity: i.severity,
            state: i.state,
            started_ns: to_ns(i.started_at)?,
            opened_ns: to_ns(i.opened_at)?,
            resolved_ns: i.resolved_at.map(to_ns).transpose()?,
            updated_ns: to_ns(updated)?,
            events: change
                .events
                .iter()
                .map(|e| Ok((to_ns(e.at)?, e)))
                .collect::<Result<_>>()?,
            notifications,
        })
    }

    /// The incident as stored: with its final id.
    pub(super) fn body(&self, id: i64) -> String {
        let mut incident = self.incident.clone();
        incident.id = id;
        serde_json::to_string(&incident).expect("incidents serialise")
    }
}

impl NotificationRow<'_> {
    /// The notification as stored: its incident snapshot with the incident's final id.
    pub(super) fn payload(&self, incident_id: i64) -> String {
        let mut notification = self.notification.clone();
        notification.incident.id = incident_id;
        serde_json::to_string(&notification).expect("notifications serialise")
    }
}

/// What `Incidents::incidents` filters on; the statement is built for it (`QueryBuilder`), one
/// bound value per wanted state.
pub(super) struct IncidentListing<'a> {
    /// Distinct; empty = all.
    pub(super) states: Vec<IncidentState>,
    pub(super) journey: Option<&'a str>,
    pub(super) since_ns: Option<i64>,
    pub(super) limit: i64,
}

/// One attempt and the notification's state after it, as bound to statements.
pub(super) struct AttemptRow<'a> {
    pub(super) notification_id: String,
    pub(super) attempt: &'a DeliveryAttempt,
    pub(super) at_ns: i64,
    pub(super) status: NotificationStatus,
    pub(super) next_ns: Option<i64>,
    pub(super) delivered_ns: Option<i64>,
}

impl<'a> AttemptRow<'a> {
    pub(super) fn new(
        id: uuid::Uuid,
        attempt: &'a DeliveryAttempt,
        after: AfterAttempt,
    ) -> Result<Self> {
        let at_ns = to_ns(attempt.at)?;
        let (status, next_ns, delivered_ns) = match after {
            AfterAttempt::Delivered => (NotificationStatus::Delivered, None, Some(at_ns)),
            AfterAttempt::RetryAt(t) => (NotificationStatus::Pending, Some(to_ns(t)?), None),
            AfterAttempt::Failed => (NotificationStatus::Failed, None, None),
        };
        Ok(AttemptRow {
            notification_id: id.to_string(),
            attempt,
            at_ns,
            status,
            next_ns,
            delivered_ns,
        })
    }
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A counter or code stored as a signed 64-bit integer, back to its type.
fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value} is out of range")))
}

/// The stored incident (`incidents.body`), back to an [`Incident`].
pub(super) fn incident_of(body: &str) -> Result<Incident> {
    from_json(body)
}

/// An `incident_events` row.
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    at_ns: i64,
    kind: EventKind,
    detail: String,
}

impl From<EventRow> for IncidentEvent {
    fn from(row: EventRow) -> Self {
        IncidentEvent {
            at: from_ns(row.at_ns),
            kind: row.kind,
            detail: row.detail,
        }
    }
}

/// A `notifications` row.
#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    payload: String,
    status: NotificationStatus,
    attempts: i64,
    next_attempt_at_ns: Option<i64>,
    last_error: Option<String>,
    delivered_at_ns: Option<i64>,
}

impl TryFrom<RecordRow> for NotificationRecord {
    type Error = StoreError;

    fn try_from(row: RecordRow) -> Result<NotificationRecord> {
        Ok(NotificationRecord {
            notification: from_json(&row.payload)?,
            status: row.status,
            attempts: narrow(row.attempts, "attempts")?,
            next_attempt_at: row.next_attempt_at_ns.map(from_ns),
            last_error: row.last_error,
            delivered_at: row.delivered_at_ns.map(from_ns),
        })
    }
}

/// A `delivery_attempts` row.
#[derive(sqlx::FromRow)]
pub(super) struct AttemptReadRow {
    at_ns: i64,
    duration_ms: f64,
    status_code: Option<i64>,
    outcome: DeliveryOutcome,
    error: Option<String>,
}

impl TryFrom<AttemptReadRow> for DeliveryAttempt {
    type Error = StoreError;

    fn try_from(row: AttemptReadRow) -> Result<DeliveryAttempt> {
        Ok(DeliveryAttempt {
            at: from_ns(row.at_ns),
            duration_ms: row.duration_ms,
            status_code: row
                .status_code
                .map(|code| narrow(code, "status code"))
                .transpose()?,
            outcome: row.outcome,
            error: row.error,
        })
    }
}

/// Notifications of one channel in one status.
#[derive(sqlx::FromRow)]
pub(super) struct CountRow {
    channel: String,
    status: NotificationStatus,
    n: i64,
}

impl TryFrom<CountRow> for (String, NotificationStatus, u64) {
    type Error = StoreError;

    fn try_from(row: CountRow) -> Result<(String, NotificationStatus, u64)> {
        Ok((row.channel, row.status, narrow(row.n, "count")?))
    }
}
