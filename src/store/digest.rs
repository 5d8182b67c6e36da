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

/// A stored digest without its figures: whose and which period it is, when it was made and
/// sent. The API lists digests by it, so it is the one description of a digest's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DigestMeta {
    pub id: i64,
    pub owner: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When delivery ended (every channel delivered or given up on).
    pub sent_at: Option<DateTime<Utc>>,
}

/// A digest as stored: its figures (`body`, the `crate::digest::Digest` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDigest {
    #[serde(flatten)]
    pub meta: DigestMeta,
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
        let (from, to) = (to_ns(from)?, to_ns(to)?);
        let row = (owner, from, to, to_ns(created_at)?, body.to_string());
        if let Some(id) = dispatch!(self.0, digest::inserted(row))? {
            return Ok((id, true));
        }
        let id = dispatch!(self.0, digest::existing(owner, from, to))?;
        Ok((id, false))
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
        out.sort_by(|a, b| {
            let (a, b) = (&a.meta, &b.meta);
            (a.from, a.to, &a.owner, a.id).cmp(&(b.from, b.to, &b.owner, b.id))
        });
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

impl TryFrom<DigestRow> for StoredDigest {
    type Error = StoreError;

    fn try_from(row: DigestRow) -> Result<StoredDigest> {
        Ok(StoredDigest {
            meta: DigestMeta {
                id: row.id,
                owner: row.owner,
                from: from_ns(row.from_ns),
                to: from_ns(row.to_ns),
                created_at: from_ns(row.created_at_ns),
                sent_at: row.sent_at_ns.map(from_ns),
            },
            body: serde_json::from_str(&row.body)
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

/// The `step_stats` aggregate: one row per step of `$1` over runs that started in `[$2, $3)`.
pub(super) fn step_stats_sql() -> String {
    const RAN: &str = "s.status <> 'skipped'";
    let avg = |c: &str| format!("AVG(CASE WHEN {RAN} THEN s.{c}_ms END) AS {c}");
    let phases = [
        "dns",
        "connect",
        "tls",
        "handshake",
        "ttfb",
        "download",
        "total",
    ]
    .map(avg)
    .join(", ");
    format!(
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
    )
}

/// The queries, once for both dialects (`$N` placeholders, window functions and `ON CONFLICT`
/// work in both). Counts are cast to BIGINT: PostgreSQL's `SUM` of an integer is `bigint` or
/// `numeric` depending on the column, and sqlx decodes exact types.
macro_rules! dialect {
    () => {
        use crate::store::digest::{
            DeliveryRow, DigestDelivery, DigestRow, FailureGroup, GroupRow, StatsRow, StepStats,
            StoredDigest, step_stats_sql,
        };

        #[rustfmt::skip]
        queries! {
            fn step_stats(journey: &str, from: i64, to: i64) -> Vec<StepStats> = all StatsRow:
                sqlx::AssertSqlSafe(step_stats_sql());

            fn failure_groups(journey: &str, from: i64, to: i64) -> Vec<FailureGroup> =
                all GroupRow:
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
         ) groups WHERE newest = 1 ORDER BY n DESC, last_ns DESC, step, message";

            fn step_sample(
                (journey, step, from, to, at_least): (&str, &str, i64, i64, f64),
            ) -> Option<(uuid::Uuid, String, f64)> = optional (uuid::Uuid, String, f64):
                "SELECT r.run_id, r.trace_id, s.total_ms FROM runs r \
         JOIN step_results s ON s.run_id = r.run_id \
         WHERE r.journey = $1 AND r.started_at_ns >= $2 AND r.started_at_ns < $3 \
         AND s.name = $4 AND s.status = 'passed' AND s.total_ms >= $5 \
         ORDER BY s.total_ms, r.started_at_ns LIMIT 1",
                journey, from, to, step, at_least;

            fn inserted(
                (owner, from, to, created, body): (&str, i64, i64, i64, String),
            ) -> Option<i64> = optional_scalar:
                "INSERT INTO digests (owner, from_ns, to_ns, created_at_ns, body) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, from_ns, to_ns) DO NOTHING \
         RETURNING id",
                owner, from, to, created, body;

            fn existing(owner: &str, from: i64, to: i64) -> i64 = scalar:
                "SELECT id FROM digests WHERE owner = $1 AND from_ns = $2 AND to_ns = $3";

            fn mark_sent(id: i64, at: i64) -> () = execute:
                "UPDATE digests SET sent_at_ns = COALESCE(sent_at_ns, $2) WHERE id = $1";

            fn record_delivery(id: i64, d: &DigestDelivery, at: i64) -> () = execute:
                "INSERT INTO digest_deliveries (digest_id, channel, status, at_ns, error) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest_id, channel) DO NOTHING",
                id, &d.channel, &d.status, at, &d.error;

            fn deliveries(id: i64) -> Vec<DigestDelivery> = all DeliveryRow:
                "SELECT channel, status, at_ns, error FROM digest_deliveries \
         WHERE digest_id = $1 ORDER BY channel";

            fn one(id: i64) -> Option<StoredDigest> = optional DigestRow:
                "SELECT * FROM digests WHERE id = $1";

            fn list(owner: Option<&str>, unsent_only: bool, limit: i64) -> Vec<StoredDigest> =
                all DigestRow:
                "SELECT * FROM digests WHERE ($1 IS NULL OR owner = $1) \
         AND (NOT $2 OR sent_at_ns IS NULL) \
         ORDER BY from_ns DESC, to_ns DESC, owner, id DESC LIMIT $3";
        }
    };
}
pub(super) use dialect;
