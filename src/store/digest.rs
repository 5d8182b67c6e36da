//! What the feedback digest (`crate::digest`) reads from raw runs beyond the rollups, and the
//! digests themselves (never sent twice for the same owner and period).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, from_ns, to_ns};

/// Mean duration of each phase, in milliseconds, over the attempts that had it.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct PhaseMeans {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    pub handshake: Option<f64>,
    pub ttfb: Option<f64>,
    pub download: Option<f64>,
    pub total: Option<f64>,
}

/// One step of one journey over a period (runs that started in it), all locations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub step: String,
    /// Position in the journey (the latest seen, if the journey changed).
    pub step_index: u32,
    pub dependency: Option<String>,
    /// Step results recorded (skipped ones included).
    pub results: u64,
    pub passed: u64,
    /// Failed or error.
    pub failed: u64,
    pub skipped: u64,
    /// Passed, but only after at least one fast retry (`attempts > 1`): flaky.
    pub passed_after_retry: u64,
    /// Over the steps that ran (passed or failed).
    pub phases: PhaseMeans,
}

/// Failures of one step with the same class and message, over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub step: String,
    pub class: String,
    pub message: String,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The most recent run of the group, for a link and its trace.
    pub sample_run_id: uuid::Uuid,
    pub sample_trace_id: String,
}

/// How a digest's delivery to one channel ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DigestDelivery {
    pub channel: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub at: DateTime<Utc>,
    pub error: Option<String>,
}

/// A digest as stored: its figures (`body`, the `crate::digest::Digest` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDigest {
    pub id: i64,
    pub owner: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub body: serde_json::Value,
}

/// What the digests read from raw runs, and the digests themselves.
///
/// Borrowed from the store by [`Store::digests`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Digests<'a>(pub(super) &'a Store);

impl Digests<'_> {
    /// Per step of `journey`, over runs that started in `[from, to)`, by `step_index`.
    pub async fn step_stats(
        self,
        journey: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StepStats>> {
        let (from, to) = (to_ns(from)?, to_ns(to)?);
        dispatch!(self.0, digest::step_stats(journey, from, to))
    }

    /// Failed or errored steps of `journey` in runs that started in `[from, to)`, grouped by
    /// step, failure class and message; most frequent first.
    pub async fn failure_groups(
        self,
        journey: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FailureGroup>> {
        let (from, to) = (to_ns(from)?, to_ns(to)?);
        dispatch!(self.0, digest::failure_groups(journey, from, to))
    }

    /// The passed run of `journey` in `[from, to)` whose `step` took the least time at or above
    /// `at_least_ms`: its id, trace id and the step's duration.
    pub async fn step_sample(
        self,
        journey: &str,
        step: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at_least_ms: f64,
    ) -> Result<Option<(uuid::Uuid, String, f64)>> {
        let args = (journey, step, to_ns(from)?, to_ns(to)?, at_least_ms);
        dispatch!(self.0, digest::step_sample(args))
    }

    /// Stores the digest of `owner` for `[from, to)` unless one exists; returns its id and
    /// whether it is new. A second call for the same period returns the first digest's id, so
    /// a schedule that fires twice (or a restart) never makes a second digest.
    pub async fn save_digest(
        self,
        owner: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        created_at: DateTime<Utc>,
        body: &serde_json::Value,
    ) -> Result<(i64, bool)> {
        let row = (
            owner,
            to_ns(from)?,
            to_ns(to)?,
            to_ns(created_at)?,
            body.to_string(),
        );
        dispatch!(self.0, digest::save(row))
    }

    /// Records how delivery to one channel ended (the first record is kept).
    pub async fn record_digest_delivery(self, id: i64, d: &DigestDelivery) -> Result<()> {
        let at = to_ns(d.at)?;
        dispatch!(self.0, digest::record_delivery(id, d, at))
    }

    /// The channels a digest's delivery ended for, by channel.
    pub async fn digest_deliveries(self, id: i64) -> Result<Vec<DigestDelivery>> {
        dispatch!(self.0, digest::deliveries(id))
    }

    /// Records that the digest is done: every channel delivered or given up (idempotent: the
    /// first time is kept).
    pub async fn mark_digest_sent(self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let at = to_ns(at)?;
        dispatch!(self.0, digest::mark_sent(id, at))
    }

    pub async fn digest(self, id: i64) -> Result<Option<StoredDigest>> {
        dispatch!(self.0, digest::one(id))
    }

    /// Digests, newest period first, optionally of one owner; at most `limit` (0 = all).
    pub async fn digests(self, owner: Option<&str>, limit: u32) -> Result<Vec<StoredDigest>> {
        let limit = match limit {
            0 => i64::MAX,
            n => i64::from(n),
        };
        dispatch!(self.0, digest::list(owner, false, limit))
    }

    /// Digests saved but not sent yet (a crash between the two), oldest period first.
    pub async fn unsent_digests(self) -> Result<Vec<StoredDigest>> {
        let mut out = dispatch!(self.0, digest::list(None, true, i64::MAX))?;
        out.sort_by(|a, b| (a.from, a.to, &a.owner, a.id).cmp(&(b.from, b.to, &b.owner, b.id)));
        Ok(out)
    }
}

/// A `digests` row.
#[derive(sqlx::FromRow)]
pub(super) struct DigestRow {
    id: i64,
    owner: String,
    from_ns: i64,
    to_ns: i64,
    created_at_ns: i64,
    sent_at_ns: Option<i64>,
    body: String,
}

impl DigestRow {
    pub(super) fn into_digest(self) -> Result<StoredDigest> {
        Ok(StoredDigest {
            id: self.id,
            owner: self.owner,
            from: from_ns(self.from_ns),
            to: from_ns(self.to_ns),
            created_at: from_ns(self.created_at_ns),
            sent_at: self.sent_at_ns.map(from_ns),
            body: serde_json::from_str(&self.body)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

/// A row of the `step_stats` aggregate.
#[derive(sqlx::FromRow)]
pub(super) struct StatsRow {
    step: String,
    step_index: i64,
    dependency: Option<String>,
    results: i64,
    passed: i64,
    failed: i64,
    skipped: i64,
    passed_after_retry: i64,
    #[sqlx(flatten)]
    phases: PhaseMeans,
}

impl From<StatsRow> for StepStats {
    fn from(row: StatsRow) -> Self {
        let count = |n: i64| n.max(0) as u64;
        StepStats {
            step: row.step,
            step_index: u32::try_from(row.step_index).unwrap_or(u32::MAX),
            dependency: row.dependency,
            results: count(row.results),
            passed: count(row.passed),
            failed: count(row.failed),
            skipped: count(row.skipped),
            passed_after_retry: count(row.passed_after_retry),
            phases: row.phases,
        }
    }
}

/// A row of the `failure_groups` aggregate.
#[derive(sqlx::FromRow)]
pub(super) struct GroupRow {
    step: String,
    class: String,
    message: String,
    n: i64,
    first_ns: i64,
    last_ns: i64,
    run_id: uuid::Uuid,
    trace_id: String,
}

impl From<GroupRow> for FailureGroup {
    fn from(row: GroupRow) -> Self {
        FailureGroup {
            step: row.step,
            class: row.class,
            message: row.message,
            count: row.n.max(0) as u64,
            first: from_ns(row.first_ns),
            last: from_ns(row.last_ns),
            sample_run_id: row.run_id,
            sample_trace_id: row.trace_id,
        }
    }
}

/// A `digest_deliveries` row.
#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    channel: String,
    status: String,
    at_ns: i64,
    error: Option<String>,
}

impl From<DeliveryRow> for DigestDelivery {
    fn from(row: DeliveryRow) -> Self {
        DigestDelivery {
            channel: row.channel,
            status: row.status,
            at: from_ns(row.at_ns),
            error: row.error,
        }
    }
}

/// The queries, once for both dialects (`$N` placeholders, window functions and `ON CONFLICT`
/// work in both). Counts are cast to BIGINT: PostgreSQL's `SUM` of an integer is `bigint` or
/// `numeric` depending on the column, and sqlx decodes exact types.
macro_rules! dialect {
    ($db:ty) => {
        use sqlx::Pool;

        use crate::store::Result;
        use crate::store::digest::{
            DeliveryRow, DigestDelivery, DigestRow, FailureGroup, GroupRow, StatsRow, StepStats,
            StoredDigest,
        };

        type Db = $db;

        const RAN: &str = "s.status <> 'skipped'";

        pub(in crate::store) async fn step_stats(
            pool: &Pool<Db>,
            journey: &str,
            from: i64,
            to: i64,
        ) -> Result<Vec<StepStats>> {
            let avg = |c: &str| format!("AVG(CASE WHEN {RAN} THEN s.{c}_ms END) AS {c}");
            let phases = ["dns", "connect", "tls", "handshake", "ttfb", "download", "total"]
                .map(avg)
                .join(", ");
            let sql = format!(
                "SELECT s.name AS step, CAST(MAX(s.step_index) AS BIGINT) AS step_index, \
                 MAX(s.dependency) AS dependency, CAST(COUNT(*) AS BIGINT) AS results, \
                 CAST(SUM(CASE WHEN s.status = 'passed' THEN 1 ELSE 0 END) AS BIGINT) AS passed, \
                 CAST(SUM(CASE WHEN s.status IN ('failed', 'error') THEN 1 ELSE 0 END) AS BIGINT) \
                 AS failed, \
                 CAST(SUM(CASE WHEN s.status = 'skipped' THEN 1 ELSE 0 END) AS BIGINT) AS skipped, \
                 CAST(SUM(CASE WHEN s.status = 'passed' AND s.attempts > 1 THEN 1 ELSE 0 END) \
                 AS BIGINT) AS passed_after_retry, {phases} \
                 FROM runs r JOIN step_results s ON s.run_id = r.run_id \
                 WHERE r.journey = $1 AND r.started_at_ns >= $2 AND r.started_at_ns < $3 \
                 GROUP BY s.name ORDER BY step_index, step"
            );
            let rows: Vec<StatsRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(journey)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(StepStats::from).collect())
        }

        pub(in crate::store) async fn failure_groups(
            pool: &Pool<Db>,
            journey: &str,
            from: i64,
            to: i64,
        ) -> Result<Vec<FailureGroup>> {
            let rows: Vec<GroupRow> = sqlx::query_as(
                "SELECT step, class, message, n, first_ns, last_ns, run_id, trace_id FROM ( \
                 SELECT s.name AS step, COALESCE(s.failure_class, '') AS class, \
                 COALESCE(s.failure_message, '') AS message, r.run_id, r.trace_id, \
                 CAST(COUNT(*) OVER g AS BIGINT) AS n, MIN(r.started_at_ns) OVER g AS first_ns, \
                 MAX(r.started_at_ns) OVER g AS last_ns, \
                 ROW_NUMBER() OVER (PARTITION BY s.name, s.failure_class, s.failure_message \
                 ORDER BY r.started_at_ns DESC, r.run_id DESC) AS newest \
                 FROM runs r JOIN step_results s ON s.run_id = r.run_id \
                 WHERE r.journey = $1 AND r.started_at_ns >= $2 AND r.started_at_ns < $3 \
                 AND s.status IN ('failed', 'error') \
                 WINDOW g AS (PARTITION BY s.name, s.failure_class, s.failure_message) \
                 ) groups WHERE newest = 1 ORDER BY n DESC, last_ns DESC, step, message",
            )
            .bind(journey)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(FailureGroup::from).collect())
        }

        pub(in crate::store) async fn step_sample(
            pool: &Pool<Db>,
            (journey, step, from, to, at_least): (&str, &str, i64, i64, f64),
        ) -> Result<Option<(uuid::Uuid, String, f64)>> {
            Ok(sqlx::query_as(
                "SELECT r.run_id, r.trace_id, s.total_ms FROM runs r \
                 JOIN step_results s ON s.run_id = r.run_id \
                 WHERE r.journey = $1 AND r.started_at_ns >= $2 AND r.started_at_ns < $3 \
                 AND s.name = $4 AND s.status = 'passed' AND s.total_ms >= $5 \
                 ORDER BY s.total_ms, r.started_at_ns LIMIT 1",
            )
            .bind(journey)
            .bind(from)
            .bind(to)
            .bind(step)
            .bind(at_least)
            .fetch_optional(pool)
            .await?)
        }

        pub(in crate::store) async fn save(
            pool: &Pool<Db>,
            (owner, from, to, created, body): (&str, i64, i64, i64, String),
        ) -> Result<(i64, bool)> {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO digests (owner, from_ns, to_ns, created_at_ns, body) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, from_ns, to_ns) DO NOTHING \
                 RETURNING id",
            )
            .bind(owner)
            .bind(from)
            .bind(to)
            .bind(created)
            .bind(body)
            .fetch_optional(pool)
            .await?;
            if let Some(id) = inserted {
                return Ok((id, true));
            }
            let id: i64 = sqlx::query_scalar(
                "SELECT id FROM digests WHERE owner = $1 AND from_ns = $2 AND to_ns = $3",
            )
            .bind(owner)
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?;
            Ok((id, false))
        }

        pub(in crate::store) async fn mark_sent(pool: &Pool<Db>, id: i64, at: i64) -> Result<()> {
            sqlx::query("UPDATE digests SET sent_at_ns = COALESCE(sent_at_ns, $2) WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(in crate::store) async fn record_delivery(
            pool: &Pool<Db>,
            id: i64,
            d: &DigestDelivery,
            at: i64,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO digest_deliveries (digest_id, channel, status, at_ns, error) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest_id, channel) DO NOTHING",
            )
            .bind(id)
            .bind(&d.channel)
            .bind(&d.status)
            .bind(at)
            .bind(&d.error)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn deliveries(
            pool: &Pool<Db>,
            id: i64,
        ) -> Result<Vec<DigestDelivery>> {
            let rows: Vec<DeliveryRow> = sqlx::query_as(
                "SELECT channel, status, at_ns, error FROM digest_deliveries \
                 WHERE digest_id = $1 ORDER BY channel",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(DigestDelivery::from).collect())
        }

        pub(in crate::store) async fn one(pool: &Pool<Db>, id: i64) -> Result<Option<StoredDigest>> {
            let row: Option<DigestRow> = sqlx::query_as("SELECT * FROM digests WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(DigestRow::into_digest).transpose()
        }

        pub(in crate::store) async fn list(
            pool: &Pool<Db>,
            owner: Option<&str>,
            unsent_only: bool,
            limit: i64,
        ) -> Result<Vec<StoredDigest>> {
            let rows: Vec<DigestRow> = sqlx::query_as(
                "SELECT * FROM digests WHERE ($1 IS NULL OR owner = $1) \
                 AND (NOT $2 OR sent_at_ns IS NULL) \
                 ORDER BY from_ns DESC, to_ns DESC, owner, id DESC LIMIT $3",
            )
            .bind(owner)
            .bind(unsent_only)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(DigestRow::into_digest).collect()
        }
    };
}
pub(super) use dialect;
