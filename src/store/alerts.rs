//! Incidents, their timeline, and the notification outbox (see `crate::alert`).
//!
//! [`Store::save_incident`] is the outbox's half of "durable before external": an incident's
//! new state, its timeline entries and the notifications it causes are committed in one
//! transaction, so a crash either loses all of them (the change is recomputed from the next
//! run) or none. Delivery attempts are recorded one transaction each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, from_ns, parse_name, to_ns};
use crate::alert::{Incident, IncidentChange, IncidentEvent, IncidentState, Notification};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        let rows = ChangeRows::new(change)?;
        match self {
            Store::Sqlite(p) => super::sqlite::a::save(p, &rows).await,
            Store::Postgres(p) => super::postgres::a::save(p, &rows).await,
        }
    }

    /// Incidents, most recently opened first.
    pub async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut states: Vec<&str> = Vec::new();
        for state in &filter.states {
            if !states.contains(&state.as_str()) {
                states.push(state.as_str());
            }
        }
        let rows = IncidentListing {
            all_states: states.is_empty(),
            // The statement has one slot per state; unused slots repeat a wanted one.
            states: std::array::from_fn(|i| {
                states
                    .get(i)
                    .or(states.first())
                    .copied()
                    .unwrap_or_default()
            }),
            journey: filter.journey.as_deref(),
            since_ns: filter.since.map(to_ns).transpose()?,
            limit: match filter.limit {
                0 => i64::MAX,
                n => i64::from(n),
            },
        };
        match self {
            Store::Sqlite(p) => super::sqlite::a::incidents(p, &rows).await,
            Store::Postgres(p) => super::postgres::a::incidents(p, &rows).await,
        }
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>> {
        match self {
            Store::Sqlite(p) => super::sqlite::a::incident(p, id).await,
            Store::Postgres(p) => super::postgres::a::incident(p, id).await,
        }
    }

    /// The incident's timeline, oldest first.
    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>> {
        match self {
            Store::Sqlite(p) => super::sqlite::a::events(p, id).await,
            Store::Postgres(p) => super::postgres::a::events(p, id).await,
        }
    }

    /// The incident's notifications, in the order they were queued.
    pub async fn incident_notifications(&self, id: i64) -> Result<Vec<NotificationRecord>> {
        match self {
            Store::Sqlite(p) => super::sqlite::a::notifications_of(p, id).await,
            Store::Postgres(p) => super::postgres::a::notifications_of(p, id).await,
        }
    }

    /// Pending notifications in the order they were queued (due or not), at most `limit`.
    pub async fn pending_notifications(&self, limit: u32) -> Result<Vec<NotificationRecord>> {
        let limit = i64::from(limit.max(1));
        match self {
            Store::Sqlite(p) => super::sqlite::a::pending(p, limit).await,
            Store::Postgres(p) => super::postgres::a::pending(p, limit).await,
        }
    }

    /// Records an attempt and the notification's new state, in one transaction.
    pub async fn record_attempt(
        &self,
        id: uuid::Uuid,
        attempt: &DeliveryAttempt,
        after: AfterAttempt,
    ) -> Result<()> {
        let row = AttemptRow::new(id, attempt, after)?;
        match self {
            Store::Sqlite(p) => super::sqlite::a::record_attempt(p, &row).await,
            Store::Postgres(p) => super::postgres::a::record_attempt(p, &row).await,
        }
    }

    /// Attempts of one notification, oldest first.
    pub async fn delivery_attempts(&self, id: uuid::Uuid) -> Result<Vec<DeliveryAttempt>> {
        let id = id.to_string();
        match self {
            Store::Sqlite(p) => super::sqlite::a::attempts(p, &id).await,
            Store::Postgres(p) => super::postgres::a::attempts(p, &id).await,
        }
    }

    /// Number of notifications per channel and status (for `/metrics`).
    pub async fn notification_counts(&self) -> Result<Vec<(String, NotificationStatus, u64)>> {
        match self {
            Store::Sqlite(p) => super::sqlite::a::counts(p).await,
            Store::Postgres(p) => super::postgres::a::counts(p).await,
        }
    }
}

/// An [`IncidentChange`] converted to columns before the transaction starts, so that nothing
/// but the database can fail once it has.
pub(super) struct ChangeRows<'a> {
    pub(super) incident: &'a Incident,
    pub(super) severity: &'static str,
    pub(super) state: &'static str,
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
    pub(super) kind: &'static str,
    pub(super) status: &'static str,
    pub(super) created_ns: i64,
    pub(super) next_ns: Option<i64>,
}

impl<'a> ChangeRows<'a> {
    fn new(change: &'a IncidentChange) -> Result<Self> {
        let i = &change.incident;
        let queued = |list: &'a [Notification], status: NotificationStatus| {
            list.iter().map(move |n| {
                let created_ns = to_ns(n.created_at)?;
                Ok(NotificationRow {
                    notification: n,
                    id: n.id.to_string(),
                    kind: n.kind.as_str(),
                    status: status.as_str(),
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
            severity: i.severity.as_str(),
            state: i.state.as_str(),
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

/// What [`Store::incidents`] binds.
pub(super) struct IncidentListing<'a> {
    pub(super) all_states: bool,
    pub(super) states: [&'static str; 3],
    pub(super) journey: Option<&'a str>,
    pub(super) since_ns: Option<i64>,
    pub(super) limit: i64,
}

/// One attempt and the notification's state after it, as bound to statements.
pub(super) struct AttemptRow<'a> {
    pub(super) notification_id: String,
    pub(super) attempt: &'a DeliveryAttempt,
    pub(super) at_ns: i64,
    pub(super) status: &'static str,
    pub(super) next_ns: Option<i64>,
    pub(super) delivered_ns: Option<i64>,
}

impl<'a> AttemptRow<'a> {
    fn new(id: uuid::Uuid, attempt: &'a DeliveryAttempt, after: AfterAttempt) -> Result<Self> {
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
            status: status.as_str(),
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

pub(super) fn incident_from_row<R: sqlx::Row>(row: &R) -> Result<Incident>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    from_json(&row.try_get::<String, _>("body")?)
}

pub(super) fn event_from_row<R: sqlx::Row>(row: &R) -> Result<IncidentEvent>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(IncidentEvent {
        at: from_ns(row.try_get("at_ns")?),
        kind: row.try_get("kind")?,
        detail: row.try_get("detail")?,
    })
}

pub(super) fn record_from_row<R: sqlx::Row>(row: &R) -> Result<NotificationRecord>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(NotificationRecord {
        notification: from_json(&row.try_get::<String, _>("payload")?)?,
        status: parse_name(&row.try_get::<String, _>("status")?)?,
        attempts: narrow(row.try_get("attempts")?, "attempts")?,
        next_attempt_at: row
            .try_get::<Option<i64>, _>("next_attempt_at_ns")?
            .map(from_ns),
        last_error: row.try_get("last_error")?,
        delivered_at: row
            .try_get::<Option<i64>, _>("delivered_at_ns")?
            .map(from_ns),
    })
}

pub(super) fn attempt_from_row<R: sqlx::Row>(row: &R) -> Result<DeliveryAttempt>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(DeliveryAttempt {
        at: from_ns(row.try_get("at_ns")?),
        duration_ms: row.try_get("duration_ms")?,
        status_code: row
            .try_get::<Option<i64>, _>("status_code")?
            .map(|code| narrow(code, "status code"))
            .transpose()?,
        outcome: row.try_get("outcome")?,
        error: row.try_get("error")?,
    })
}

pub(super) fn count_from_row<R: sqlx::Row>(row: &R) -> Result<(String, NotificationStatus, u64)>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok((
        row.try_get("channel")?,
        parse_name(&row.try_get::<String, _>("status")?)?,
        narrow(row.try_get("n")?, "count")?,
    ))
}

macro_rules! dialect {
    ($db:ty, begin = $begin:literal) => {
        use sqlx::Pool;

        use crate::alert::Incident;
        use crate::store::alerts::{AttemptRow, ChangeRows, DeliveryAttempt, IncidentListing, NotificationRecord, NotificationStatus, attempt_from_row, count_from_row, event_from_row, incident_from_row, record_from_row};
use crate::alert::IncidentEvent;
        use crate::store::{Result, StoreError};

        type Db = $db;

        pub(in crate::store) async fn save(pool: &Pool<Db>, change: &ChangeRows<'_>) -> Result<i64> {
            let mut tx = pool.begin_with($begin).await?;
            // A new incident gets its id first; then one statement writes the columns and the
            // body that carries that id, for new and existing incidents alike.
            let id: i64 = match change.incident.id {
                0 => {
                    sqlx::query_scalar(
                        "INSERT INTO incidents (journey, severity, state, dedup_key, \
                         started_at_ns, opened_at_ns, resolved_at_ns, updated_at_ns, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '') RETURNING id",
                    )
                    .bind(&change.incident.journey)
                    .bind(change.severity)
                    .bind(change.state)
                    .bind(&change.incident.dedup_key)
                    .bind(change.started_ns)
                    .bind(change.opened_ns)
                    .bind(change.resolved_ns)
                    .bind(change.updated_ns)
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
                .bind(&event.kind)
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
            let rows = sqlx::query(
                "SELECT body FROM incidents \
                 WHERE ($1 OR state IN ($2, $3, $4)) AND ($5 IS NULL OR journey = $5) \
                 AND ($6 IS NULL OR resolved_at_ns IS NULL OR resolved_at_ns >= $6) \
                 ORDER BY opened_at_ns DESC, id DESC LIMIT $7",
            )
            .bind(listing.all_states)
            .bind(listing.states[0])
            .bind(listing.states[1])
            .bind(listing.states[2])
            .bind(listing.journey)
            .bind(listing.since_ns)
            .bind(listing.limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(incident_from_row).collect()
        }

        pub(in crate::store) async fn incident(pool: &Pool<Db>, id: i64) -> Result<Option<Incident>> {
            let row = sqlx::query("SELECT body FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(incident_from_row).transpose()
        }

        pub(in crate::store) async fn events(
            pool: &Pool<Db>,
            incident_id: i64,
        ) -> Result<Vec<IncidentEvent>> {
            let rows = sqlx::query(
                "SELECT at_ns, kind, detail FROM incident_events WHERE incident_id = $1 \
                 ORDER BY id",
            )
            .bind(incident_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(event_from_row).collect()
        }

        pub(in crate::store) async fn notifications_of(
            pool: &Pool<Db>,
            incident_id: i64,
        ) -> Result<Vec<NotificationRecord>> {
            let rows =
                sqlx::query("SELECT * FROM notifications WHERE incident_id = $1 ORDER BY seq")
                    .bind(incident_id)
                    .fetch_all(pool)
                    .await?;
            rows.iter().map(record_from_row).collect()
        }

        pub(in crate::store) async fn pending(
            pool: &Pool<Db>,
            limit: i64,
        ) -> Result<Vec<NotificationRecord>> {
            let rows = sqlx::query(
                "SELECT * FROM notifications WHERE status = 'pending' ORDER BY seq LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(record_from_row).collect()
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
            .bind(&a.outcome)
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

        pub(in crate::store) async fn attempts(
            pool: &Pool<Db>,
            notification_id: &str,
        ) -> Result<Vec<DeliveryAttempt>> {
            let rows = sqlx::query(
                "SELECT at_ns, duration_ms, status_code, outcome, error FROM delivery_attempts \
                 WHERE notification_id = $1 ORDER BY id",
            )
            .bind(notification_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(attempt_from_row).collect()
        }

        pub(in crate::store) async fn counts(
            pool: &Pool<Db>,
        ) -> Result<Vec<(String, NotificationStatus, u64)>> {
            let rows = sqlx::query(
                "SELECT channel, status, COUNT(*) AS n FROM notifications \
                 GROUP BY channel, status ORDER BY channel, status",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(count_from_row).collect()
        }
    };
}
pub(super) use dialect;
