//! Durable storage of runs, journey versions and hourly rollups, in SQLite or PostgreSQL.
//!
//! Only this module writes SQL. [`Store`] is a closed enum over the two pools; the queries are
//! written once (`queries`) and instantiated per dialect in `sqlite` and `postgres`, which
//! also hold what really differs (connection options, how a write transaction starts, row
//! locks). Migrations are embedded in the binary and applied at [`Store::connect`].
//!
//! Representation: instants are epoch nanoseconds (exact round trip of a [`RunResult`]),
//! durations milliseconds as floats, rollup hours the epoch second of the hour's start. The
//! store reads no clock: every instant comes in through the API.
//!
//! Writes from the scheduler go through [`StoreWriter`], which batches them.

pub mod alerts;
pub mod cluster;
pub mod commands;
pub mod digest;
pub mod episodes;
mod existing;
pub mod feed;
pub use existing::Unreadable;
mod postgres;
mod queries;
pub mod sessions;
mod sqlite;
pub mod status;
mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr, SqlitePool};

use crate::baseline::sketch::Sketch;
use crate::journey::Journey;
use crate::run::{RunResult, StepResult};
pub use episodes::EpisodeFilter;
pub use writer::{StoreWriter, WriterConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}` (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("the store writer has stopped")]
    WriterClosed,
    #[error("{runs} runs could not be stored: {error}")]
    WriteFailed { runs: u64, error: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether asking again later may succeed: the database is unreachable, restarting, out of
    /// connections or busy, rather than refusing this statement.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::BeginFailed => true,
            // PostgreSQL: connection exceptions (08…), shutting down or starting up (57P0…),
            // too many connections, serialization failure, deadlock; SQLite: busy, locked.
            sqlx::Error::Database(d) => d.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P0")
                    || matches!(code.as_ref(), "53300" | "40001" | "40P01" | "5" | "6")
            }),
            _ => false,
        }
    }
}

/// A connection pool to the store's database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One run as the scheduler hands it to storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub result: RunResult,
    /// When the schedule wanted the run to start.
    pub planned_at: DateTime<Utc>,
    /// How late the run started compared to `planned_at`.
    pub scheduling_lag: Duration,
    /// `content_sha256` of the journey version that ran (empty if unknown).
    pub journey_sha256: String,
}

/// A run read back from the store: exactly the [`RunRecord`] that was written.
pub type StoredRun = RunRecord;

/// A run without its steps, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: uuid::Uuid,
    pub journey: String,
    pub location: String,
    pub journey_sha256: String,
    pub planned_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub outcome: crate::run::Outcome,
    pub trace_id: String,
    pub scheduling_lag: Duration,
}

/// One version of a journey file, identified by the hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyVersion {
    pub name: String,
    pub content_sha256: String,
    pub definition: Option<String>,
    pub first_seen: DateTime<Utc>,
}

/// One hour of one step (or of whole runs: `step == None`) of a journey at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub journey: String,
    pub step: Option<String>,
    pub location: String,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Runs (or steps that ran: skipped steps are not counted).
    pub count: u64,
    /// Of those, failed or errored.
    pub failures: u64,
    /// Over the latencies observed (whole run duration, or a step's `total`).
    pub sum_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub sketch: Sketch,
}

/// Rows deleted by [`Store::prune`] (step results go with their runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub rollups: u64,
}

impl Store {
    /// Whether `url` names an in-memory SQLite database: one that lives in its one connection,
    /// so a second pool on the same URL would be another, empty database.
    pub fn is_in_memory(url: &str) -> bool {
        url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
    }

    /// Whether only one node can use this store: a SQLite file is one process's.
    pub fn is_single_node(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Opens (creating a SQLite file if missing) and migrates the database at `url`:
    /// `sqlite://waymark.db`, `sqlite::memory:`, `postgres://user@host/db`.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations not applied yet (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(pool) => migrator(sqlite::MIGRATIONS).run(pool).await?,
            Store::Postgres(pool) => migrator(postgres::MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }

    /// One trivial query: `Ok` when the database answers (readiness probes).
    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
            Store::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
        }
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check` (`"ok"` when the file is sound); PostgreSQL has no
    /// equivalent and answers `"ok"` once it responds.
    pub async fn integrity_check(&self) -> Result<String> {
        match self {
            Store::Sqlite(p) => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(p)
                    .await?;
                Ok(rows.join("\n"))
            }
            Store::Postgres(_) => self.ping().await.map(|()| "ok".to_string()),
        }
    }

    /// Records a journey version the first time its content is seen; `true` if it was new.
    /// `definition` is the file's text (whose hash is `journey.source.content_sha256`).
    pub async fn record_journey_version(
        &self,
        journey: &Journey,
        definition: Option<&str>,
        seen_at: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, sha, seen) = (
            journey.name.as_str(),
            journey.source.content_sha256.as_str(),
            to_ns(seen_at)?,
        );
        match self {
            Store::Sqlite(p) => {
                sqlite::q::record_journey_version(p, name, sha, definition, seen).await
            }
            Store::Postgres(p) => {
                postgres::q::record_journey_version(p, name, sha, definition, seen).await
            }
        }
    }

    /// Every journey version, by name then first sighting.
    pub async fn journeys(&self) -> Result<Vec<JourneyVersion>> {
        match self {
            Store::Sqlite(p) => sqlite::q::journeys(p).await,
            Store::Postgres(p) => postgres::q::journeys(p).await,
        }
    }

    /// Records one run, its steps and its rollup contributions in one transaction.
    pub async fn record_run(&self, record: &RunRecord) -> Result<()> {
        self.record_runs(std::slice::from_ref(record)).await
    }

    /// Records runs in one transaction. A run already stored (same `run_id`) is skipped, so
    /// retrying a batch never counts a run twice.
    pub async fn record_runs(&self, records: &[RunRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(p) => sqlite::q::record_runs(p, records).await,
            Store::Postgres(p) => postgres::q::record_runs(p, records).await,
        }
    }

    /// The latest `limit` runs of a journey, newest first.
    pub async fn recent_runs(&self, journey: &str, limit: u32) -> Result<Vec<RunSummary>> {
        match self {
            Store::Sqlite(p) => sqlite::q::recent_runs(p, journey, limit.into()).await,
            Store::Postgres(p) => postgres::q::recent_runs(p, journey, limit.into()).await,
        }
    }

    /// One run with its steps.
    pub async fn run(&self, run_id: uuid::Uuid) -> Result<Option<StoredRun>> {
        match self {
            Store::Sqlite(p) => sqlite::q::run(p, run_id).await,
            Store::Postgres(p) => postgres::q::run(p, run_id).await,
        }
    }

    /// Rollups of a journey for the hours starting in `[from, to)`, by hour, step, location.
    pub async fn rollups(
        &self,
        journey: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>> {
        let (from, to) = (from.timestamp(), to.timestamp());
        match self {
            Store::Sqlite(p) => sqlite::q::rollups(p, journey, from, to).await,
            Store::Postgres(p) => postgres::q::rollups(p, journey, from, to).await,
        }
    }

    /// Deletes runs (with their steps) started before `raw_before` and rollups of hours that
    /// started before `rollup_before`, `batch` rows per statement so that writers are never
    /// held up for long.
    pub async fn prune(
        &self,
        raw_before: DateTime<Utc>,
        rollup_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<Pruned> {
        let batch = i64::from(batch.max(1));
        let (raw, hour) = (to_ns(raw_before)?, rollup_before.timestamp());
        let mut pruned = Pruned::default();
        loop {
            let n = match self {
                Store::Sqlite(p) => sqlite::q::prune_runs(p, raw, batch).await?,
                Store::Postgres(p) => postgres::q::prune_runs(p, raw, batch).await?,
            };
            pruned.runs += n;
            if n < batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        loop {
            let n = match self {
                Store::Sqlite(p) => sqlite::q::prune_rollups(p, hour, batch).await?,
                Store::Postgres(p) => postgres::q::prune_rollups(p, hour, batch).await?,
            };
            pruned.rollups += n;
            if n < batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(pruned)
    }
}

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    AssertSqlSafe(sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

// --- conversions shared by both dialects ---------------------------------------------------

fn to_ns(t: DateTime<Utc>) -> Result<i64> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {t} is out of range")))
}

fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn to_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// Inverse of [`to_ms`], exact for any duration under about 100 days.
fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms.max(0.0) * 1e6).round() as u64)
}

/// The serde name of a unit enum variant (`passed`, `http_status`, …).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a unit variant: {other:?}"),
    }
}

fn parse_name<T: DeserializeOwned>(name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|e| StoreError::Corrupt(format!("`{name}`: {e}")))
}

fn json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What a step result holds beyond its columns, kept as one JSON document.
#[derive(Serialize, Deserialize)]
struct StepDetail {
    #[serde(default)]
    request: Option<crate::step::RequestSummary>,
    #[serde(default)]
    response: Option<crate::step::ResponseSummary>,
    #[serde(default)]
    actions: Vec<crate::step::ActionOutcome>,
    #[serde(default)]
    extracted: Vec<String>,
    #[serde(default)]
    skip_reason: Option<String>,
    #[serde(default)]
    span_id: String,
    #[serde(default)]
    attempt_span_ids: Vec<String>,
    #[serde(default)]
    degraded: Vec<crate::journey::condition::ConditionOutcome>,
}

impl StepDetail {
    fn of(step: &StepResult) -> serde_json::Value {
        serde_json::to_value(StepDetail {
            request: step.request.clone(),
            response: step.response.clone(),
            actions: step.actions.clone(),
            extracted: step.extracted.clone(),
            skip_reason: step.skip_reason.clone(),
            span_id: step.span_id.clone(),
            attempt_span_ids: step.attempt_span_ids.clone(),
            degraded: step.degraded.clone(),
        })
        .expect("step details serialise")
    }
}

/// Key of a rollup row: journey, step ('' = whole run), location, hour (epoch seconds).
type RollupKey = (String, String, String, i64);

/// What a batch of runs adds to the rollups, merged in memory before touching the database.
#[derive(Default)]
struct RollupDelta {
    count: i64,
    failures: i64,
    sum_ms: f64,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    sketch: Sketch,
}

impl RollupDelta {
    fn add(&mut self, failed: bool, latency_ms: Option<f64>) {
        self.count += 1;
        self.failures += i64::from(failed);
        if let Some(ms) = latency_ms {
            self.sum_ms += ms;
            self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
            self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
            self.sketch.add(ms);
        }
    }

    /// Folds an existing row's values into this delta.
    fn absorb(
        &mut self,
        count: i64,
        failures: i64,
        sum_ms: f64,
        min: Option<f64>,
        max: Option<f64>,
        sketch: &str,
    ) -> Result<()> {
        let sketch = Sketch::from_json(sketch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.count += count;
        self.failures += failures;
        self.sum_ms += sum_ms;
        self.min_ms = match (self.min_ms, min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ms = match (self.max_ms, max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sketch.merge(&sketch);
        Ok(())
    }
}

fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600) * 3600
}

/// Adds a run's contribution to the rollups of its hour (the hour its run started in).
fn add_to_rollups(
    deltas: &mut std::collections::BTreeMap<RollupKey, RollupDelta>,
    run: &RunResult,
) {
    use crate::run::{Outcome, StepStatus};
    let hour = hour_of(run.started_at);
    let key = |step: &str| {
        (
            run.journey.clone(),
            step.to_string(),
            run.location.clone(),
            hour,
        )
    };
    deltas
        .entry(key(""))
        .or_default()
        .add(run.outcome != Outcome::Passed, Some(run.duration_ms));
    for step in &run.steps {
        if step.status == StepStatus::Skipped {
            continue;
        }
        deltas.entry(key(&step.name)).or_default().add(
            matches!(step.status, StepStatus::Failed | StepStatus::Error),
            step.timings.total.map(to_ms),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_sqlite_and_unknown_urls() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        assert!(store.journeys().await.unwrap().is_empty());
        store.ping().await.unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        assert!(matches!(
            Store::connect("mysql://localhost/x").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn millisecond_columns_round_trip_durations_exactly() {
        for nanos in [0u64, 1, 999, 1_234_567, 250_123_457, 86_400_000_000_123] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(from_ms(to_ms(d)), d);
        }
        let t = DateTime::from_timestamp(1_773_482_400 + 1234, 123_456_789).unwrap();
        assert_eq!(from_ns(to_ns(t).unwrap()), t);
        assert_eq!(1_773_482_400 % 3600, 0);
        assert_eq!(hour_of(t), 1_773_482_400);
    }
}
