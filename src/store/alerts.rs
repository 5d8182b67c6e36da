//! Incidents, their timeline, and the notification outbox (see `crate::alert`).
//!
//! [`Incidents::save_incident`] is the outbox's half of "durable before external": an incident's
//! new state, its timeline entries and the notifications it causes are committed in one
//! transaction, so a crash either loses all of them (the change is recomputed from the next
//! run) or none. Delivery attempts are recorded one transaction each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert_rows::{AttemptRow, ChangeRows, IncidentListing, incident_of};
use super::{Result, Store, to_ns};
use crate::alert::{Incident, IncidentChange, IncidentEvent, IncidentState, Notification};

crate::words::words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum NotificationStatus {
        Pending,
        Delivered,
        /// Given up on: permanent error, or still failing after `give_up_after`.
        Failed,
        Muted,
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

crate::words::words! {
    /// How one delivery attempt ended (stored and serialized as its snake_case name).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DeliveryOutcome {
        Delivered,
        /// Not delivered; it will be tried again.
        Retry,
        /// Not delivered, and given up on.
        Failed,
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    pub duration_ms: f64,
    /// HTTP status or SMTP reply code, when the receiver answered.
    pub status_code: Option<u16>,
    pub outcome: DeliveryOutcome,
    pub error: Option<String>,
}

/// What becomes of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// Which incidents [`Incidents::incidents`] lists.
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

/// Incidents, their timelines, notifications and delivery attempts (the outbox).
///
/// Borrowed from the store by [`Store::incidents`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Incidents<'a>(pub(super) &'a Store);

impl Incidents<'_> {
    /// Inserts or updates the incident, appends its events and queues its notifications, in
    /// one transaction. Returns the incident's id. Notifications are stored with the
    /// incident's final id in their snapshot.
    pub async fn save_incident(self, change: &IncidentChange) -> Result<i64> {
        let rows = ChangeRows::new(change)?;
        dispatch!(self.0, alerts::save(&rows))
    }

    /// Incidents, most recently opened first.
    pub async fn incidents(self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut states: Vec<IncidentState> = Vec::new();
        for &state in &filter.states {
            if !states.contains(&state) {
                states.push(state);
            }
        }
        let listing = IncidentListing {
            states,
            journey: filter.journey.as_deref(),
            since_ns: filter.since.map(to_ns).transpose()?,
            limit: match filter.limit {
                0 => i64::MAX,
                n => i64::from(n),
            },
        };
        dispatch!(self.0, alerts::incidents(&listing))
    }

    pub async fn incident(self, id: i64) -> Result<Option<Incident>> {
        let body = dispatch!(self.0, alerts::incident(id))?;
        body.as_deref().map(incident_of).transpose()
    }

    /// The incident's timeline, oldest first.
    pub async fn incident_events(self, id: i64) -> Result<Vec<IncidentEvent>> {
        dispatch!(self.0, alerts::events(id))
    }

    /// The incident's notifications, in the order they were queued.
    pub async fn incident_notifications(self, id: i64) -> Result<Vec<NotificationRecord>> {
        dispatch!(self.0, alerts::notifications_of(id))
    }

    /// Pending notifications in the order they were queued (due or not), at most `limit`.
    pub async fn pending_notifications(self, limit: u32) -> Result<Vec<NotificationRecord>> {
        let limit = i64::from(limit.max(1));
        dispatch!(self.0, alerts::pending(limit))
    }

    /// Records an attempt and the notification's new state, in one transaction.
    pub async fn record_attempt(
        self,
        id: uuid::Uuid,
        attempt: &DeliveryAttempt,
        after: AfterAttempt,
    ) -> Result<()> {
        let row = AttemptRow::new(id, attempt, after)?;
        dispatch!(self.0, alerts::record_attempt(&row))
    }

    /// Attempts of one notification, oldest first.
    pub async fn delivery_attempts(self, id: uuid::Uuid) -> Result<Vec<DeliveryAttempt>> {
        let id = id.to_string();
        dispatch!(self.0, alerts::attempts(&id))
    }

    /// Number of notifications per channel and status (for `/metrics`).
    pub async fn notification_counts(self) -> Result<Vec<(String, NotificationStatus, u64)>> {
        dispatch!(self.0, alerts::counts())
    }
}

macro_rules! dialect {
    (begin = $begin:literal) => {
        use crate::alert::{Incident, IncidentEvent};
        use crate::store::alert_rows::{
            AttemptReadRow, AttemptRow, ChangeRows, CountRow, EventRow, IncidentListing,
            RecordRow, incident_of,
        };
        use crate::store::alerts::{DeliveryAttempt, NotificationRecord, NotificationStatus};
        use crate::store::StoreError;

        pub(in crate::store) async fn save(pool: &Pool<Db>, change: &ChangeRows<'_>) -> Result<i64> {
            let mut tx = pool.begin_with($begin).await?;
            // A new incident gets its id first, from a row holding only its dedup key (which
            // must be new); then one statement writes the columns and the body that carries
            // that id, for new and existing incidents alike, in the same transaction.
            let id: i64 = match change.incident.id {
                0 => {
                    sqlx::query_scalar(
                        "INSERT INTO incidents (journey, severity, state, dedup_key, \
                         started_at_ns, opened_at_ns, updated_at_ns, body) \
                         VALUES ('', '', '', $1, 0, 0, 0, '') RETURNING id",
                    )
                    .bind(&change.incident.dedup_key)
                    .fetch_one(&mut *tx)
                    .await?
                }
                id => id,
            };
            let updated = sqlx::query(
                "UPDATE incidents SET journey = $2, severity = $3, state = $4, dedup_key = $5, \
                 started_at_ns = $6, opened_at_ns = $7, resolved_at_ns = $8, updated_at_ns = $9, \
                 body = $10 WHERE id = $1",
            )
            .bind(id)
            .bind(&change.incident.journey)
            .bind(change.severity)
            .bind(change.state)
            .bind(&change.incident.dedup_key)
            .bind(change.started_ns)
            .bind(change.opened_ns)
            .bind(change.resolved_ns)
            .bind(change.updated_ns)
            .bind(change.body(id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Corrupt(format!(
                    "incident {id} is not in the store"
                )));
            }
            for (at_ns, event) in &change.events {
                sqlx::query(
                    "INSERT INTO incident_events (incident_id, at_ns, kind, detail) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(*at_ns)
                .bind(event.kind)
                .bind(&event.detail)
                .execute(&mut *tx)
                .await?;
            }
            for n in &change.notifications {
                sqlx::query(
                    "INSERT INTO notifications (id, incident_id, channel, kind, status, \
                     created_at_ns, next_attempt_at_ns, attempts, payload) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
                )
                .bind(&n.id)
                .bind(id)
                .bind(&n.notification.channel)
                .bind(n.kind)
                .bind(n.status)
                .bind(n.created_ns)
                .bind(n.next_ns)
                .bind(n.payload(id))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(id)
        }

        pub(in crate::store) async fn incidents(
            pool: &Pool<Db>,
            listing: &IncidentListing<'_>,
        ) -> Result<Vec<Incident>> {
            let mut sql = sqlx::QueryBuilder::<Db>::new("SELECT body FROM incidents WHERE 1 = 1");
            if !listing.states.is_empty() {
                sql.push(" AND state IN (");
                let mut states = sql.separated(", ");
                for &state in &listing.states {
                    states.push_bind(state);
                }
                sql.push(")");
            }
            if let Some(journey) = listing.journey {
                sql.push(" AND journey = ").push_bind(journey);
            }
            if let Some(since) = listing.since_ns {
                sql.push(" AND (resolved_at_ns IS NULL OR resolved_at_ns >= ")
                    .push_bind(since)
                    .push(")");
            }
            sql.push(" ORDER BY opened_at_ns DESC, id DESC LIMIT ")
                .push_bind(listing.limit);
            let bodies: Vec<String> = sql.build_query_scalar().fetch_all(pool).await?;
            bodies.iter().map(|body| incident_of(body)).collect()
        }

        #[rustfmt::skip]
        queries! {
            fn incident(id: i64) -> Option<String> = optional_scalar:
                "SELECT body FROM incidents WHERE id = $1";

            fn events(incident_id: i64) -> Vec<IncidentEvent> = all EventRow:
                "SELECT at_ns, kind, detail FROM incident_events WHERE incident_id = $1 \
                 ORDER BY id";

            fn notifications_of(incident_id: i64) -> Vec<NotificationRecord> = all RecordRow:
                "SELECT * FROM notifications WHERE incident_id = $1 ORDER BY seq";

            fn pending(limit: i64) -> Vec<NotificationRecord> = all RecordRow:
                "SELECT * FROM notifications WHERE status = $1 ORDER BY seq LIMIT $2",
                NotificationStatus::Pending, limit;

            fn attempts(notification_id: &str) -> Vec<DeliveryAttempt> = all AttemptReadRow:
                "SELECT at_ns, duration_ms, status_code, outcome, error FROM delivery_attempts \
                 WHERE notification_id = $1 ORDER BY id";

            fn counts() -> Vec<(String, NotificationStatus, u64)> = all CountRow:
                "SELECT channel, status, COUNT(*) AS n FROM notifications \
                 GROUP BY channel, status ORDER BY channel, status";
        }

        pub(in crate::store) async fn record_attempt(
            pool: &Pool<Db>,
            row: &AttemptRow<'_>,
        ) -> Result<()> {
            let a = row.attempt;
            let mut tx = pool.begin_with($begin).await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (notification_id, at_ns, duration_ms, \
                 status_code, outcome, error) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&row.notification_id)
            .bind(row.at_ns)
            .bind(a.duration_ms)
            .bind(a.status_code.map(i64::from))
            .bind(a.outcome)
            .bind(a.error.as_deref())
            .execute(&mut *tx)
            .await?;
            // Only a pending notification changes: an attempt recorded again after a crash,
            // or late, never undoes a delivery or a give-up.
            sqlx::query(
                "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
                 status = $3, next_attempt_at_ns = $4, delivered_at_ns = $5 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&row.notification_id)
            .bind(a.error.as_deref())
            .bind(row.status)
            .bind(row.next_ns)
            .bind(row.delivered_ns)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
    };
}
pub(super) use dialect;
