//! Runs, their steps, journey versions and hourly rollups: what the scheduler writes and the
//! API, the analysis and the digests read. The queries are written once (`dialect!`, below)
//! and instantiated per dialect: both accept `$N` placeholders, `ON CONFLICT` and row-value
//! `IN`, so only how a write transaction starts and how a rollup row is locked differ.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::run_rows::record;
use super::{
    JourneyVersion, Pruned, Result, Rollup, RunRecord, RunSummary, Store, StoredRun, to_ns,
};
use crate::journey::Journey;
use crate::run::StepResult;

/// Runs, their steps, journey versions and hourly rollups.
///
/// Borrowed from the store by [`Store::runs`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a>(pub(super) &'a Store);

impl Runs<'_> {
    /// Records a journey version the first time its content is seen; `true` if it was new.
    /// `definition` is the file's text (whose hash is `journey.source.content_sha256`).
    pub async fn record_journey_version(
        self,
        journey: &Journey,
        definition: Option<&str>,
        seen_at: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, sha, seen) = (
            journey.name.as_str(),
            journey.source.content_sha256.as_str(),
            to_ns(seen_at)?,
        );
        dispatch!(
            self.0,
            queries::record_journey_version(name, sha, definition, seen)
        )
    }

    /// Every journey version, by name then first sighting.
    pub async fn journeys(self) -> Result<Vec<JourneyVersion>> {
        dispatch!(self.0, queries::journeys())
    }

    /// Records one run, its steps and its rollup contributions in one transaction, as
    /// recorded at `now` (the run feed's time, which pruning reads).
    pub async fn record_run(self, record: &RunRecord, now: DateTime<Utc>) -> Result<()> {
        self.record_runs(std::slice::from_ref(record), now).await
    }

    /// Records runs as of the wall clock: tests' shorthand for [`Self::record_runs`].
    #[cfg(test)]
    #[allow(clippy::disallowed_methods)]
    pub async fn record_now(self, records: &[RunRecord]) {
        self.record_runs(records, Utc::now()).await.unwrap();
    }

    /// Records runs in one transaction, at `now`. A run already stored (same `run_id`) is
    /// skipped, so retrying a batch never counts a run twice.
    pub async fn record_runs(self, records: &[RunRecord], now: DateTime<Utc>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        dispatch!(self.0, queries::record_runs(records, now))
    }

    /// The latest `limit` runs of a journey, newest first.
    pub async fn recent_runs(self, journey: &str, limit: u32) -> Result<Vec<RunSummary>> {
        dispatch!(self.0, queries::recent_runs(journey, limit.into()))
    }

    /// One run with its steps.
    pub async fn run(self, run_id: uuid::Uuid) -> Result<Option<StoredRun>> {
        let Some(run) = dispatch!(self.0, queries::run(run_id))? else {
            return Ok(None);
        };
        let steps = dispatch!(self.0, queries::steps(run_id))?;
        Ok(Some(record(run, steps)))
    }

    /// The stored runs of the feed entries with `after < seq <= last`, by run id: two
    /// statements for a page of the feed instead of two per run.
    pub(super) async fn fed(self, after: i64, last: i64) -> Result<HashMap<uuid::Uuid, StoredRun>> {
        let mut steps: HashMap<uuid::Uuid, Vec<StepResult>> = HashMap::new();
        let runs = dispatch!(self.0, queries::fed_runs(after, last))?;
        for row in dispatch!(self.0, queries::fed_steps(after, last))? {
            let run_id = row.run_id;
            steps.entry(run_id).or_default().push(row.try_into()?);
        }
        Ok(runs
            .into_iter()
            .map(|s| {
                let own = steps.remove(&s.run_id).unwrap_or_default();
                (s.run_id, record(s, own))
            })
            .collect())
    }

    /// Rollups of a journey for the hours starting in `[from, to)`, by hour, step, location.
    pub async fn rollups(
        self,
        journey: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>> {
        let (from, to) = (from.timestamp(), to.timestamp());
        dispatch!(self.0, queries::rollups(journey, from, to))
    }

    /// Deletes runs (with their steps) started before `raw_before` and rollups of hours that
    /// started before `rollup_before`, `batch` rows per statement so that writers are never
    /// held up for long.
    pub async fn prune(
        self,
        raw_before: DateTime<Utc>,
        rollup_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<Pruned> {
        let batch = i64::from(batch.max(1));
        let (raw, hour) = (to_ns(raw_before)?, rollup_before.timestamp());
        Ok(Pruned {
            runs: self.in_batches(PRUNE_RUNS, raw, batch).await?,
            rollups: self.in_batches(PRUNE_ROLLUPS, hour, batch).await?,
        })
    }

    /// Runs `statement` (which deletes at most `$2` rows older than `$1`) until it deletes
    /// fewer than `batch`, letting other tasks run between statements; how many in all.
    async fn in_batches(self, statement: &'static str, before: i64, batch: i64) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let n = dispatch!(self.0, queries::prune(statement, before, batch))?;
            deleted += n;
            if n < batch as u64 {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Runs started before `$1` (with their steps), at most `$2`.
const PRUNE_RUNS: &str = "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs \
     WHERE started_at_ns < $1 ORDER BY started_at_ns LIMIT $2)";

/// Rollups of hours that started before `$1`, at most `$2`.
const PRUNE_ROLLUPS: &str = "DELETE FROM rollups WHERE (journey, step, location, hour_s) IN \
     (SELECT journey, step, location, hour_s FROM rollups WHERE hour_s < $1 \
     ORDER BY hour_s LIMIT $2)";

macro_rules! dialect {
    (begin = $begin:literal, lock = $lock:literal) => {
        use std::collections::BTreeMap;

        use sqlx::types::Json;

        use crate::run::StepResult;
        use crate::store::run_rows::{
            JourneyRow, RollupDelta, RollupRow, RollupTotals, RunRow, StepDetail, StepRow,
            add_to_rollups,
        };
        use crate::store::{JourneyVersion, Rollup, RunRecord, RunSummary, to_ms, to_ns};

        #[rustfmt::skip]
        queries! {
            fn ping() -> () = execute: "SELECT 1";

            /// Migrations applied successfully; an error when the table is missing (not a
            /// Waymark database).
            fn applied_migrations() -> i64 = scalar:
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";

            fn first_run() -> Option<i32> = optional_scalar: "SELECT 1 FROM runs LIMIT 1";

            fn record_journey_version(
                name: &str,
                sha: &str,
                definition: Option<&str>,
                seen_ns: i64,
            ) -> bool = execute:
                "INSERT INTO journeys (name, content_sha256, definition, first_seen_ns) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, content_sha256) DO NOTHING";

            fn journeys() -> Vec<JourneyVersion> = all JourneyRow:
                "SELECT name, content_sha256, definition, first_seen_ns FROM journeys \
                 ORDER BY name, first_seen_ns, content_sha256";

            fn recent_runs(journey: &str, limit: i64) -> Vec<RunSummary> = all RunRow:
                sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE journey = $1 \
                     ORDER BY started_at_ns DESC, run_id LIMIT $2"
                ));

            /// The newest run of `journey` from each location.
            fn latest_run_per_location(journey: &str) -> Vec<RunSummary> = all RunRow:
                sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs r JOIN \
                     (SELECT location AS l, MAX(started_at_ns) AS m FROM runs WHERE journey = $1 \
                      GROUP BY location) latest ON r.location = latest.l AND r.started_at_ns = latest.m \
                     WHERE r.journey = $1 ORDER BY r.location"
                ));

            fn run(run_id: uuid::Uuid) -> Option<RunSummary> = optional RunRow:
                sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"));

            fn steps(run_id: uuid::Uuid) -> Vec<StepResult> = all StepRow:
                "SELECT * FROM step_results WHERE run_id = $1 ORDER BY step_index";

            /// The runs of the feed entries with `after < seq <= last`.
            fn fed_runs(after: i64, last: i64) -> Vec<RunSummary> = all RunRow:
                sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ({FED})"));

            /// Their steps, by run.
            fn fed_steps(after: i64, last: i64) -> Vec<StepRow> = all StepRow:
                sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM step_results WHERE run_id IN ({FED}) ORDER BY run_id, step_index"
                ));

            fn rollups(journey: &str, from_s: i64, to_s: i64) -> Vec<Rollup> = all RollupRow:
                "SELECT journey, step, location, hour_s, count, failures, sum_ms, min_ms, max_ms, \
                 sketch FROM rollups WHERE journey = $1 AND hour_s >= $2 AND hour_s < $3 \
                 ORDER BY hour_s, step, location";

            fn prune(statement: &'static str, before: i64, batch: i64) -> u64 = execute:
                statement, before, batch;
        }

        pub(in crate::store) async fn close(pool: &Pool<Db>) {
            pool.close().await
        }

        pub(in crate::store) async fn migrate(
            pool: &Pool<Db>,
            migrator: &sqlx::migrate::Migrator,
        ) -> Result<()> {
            migrator.run(pool).await?;
            Ok(())
        }

        pub(in crate::store) async fn record_runs(
            pool: &Pool<Db>,
            records: &[RunRecord],
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<()> {
            let mut tx = pool.begin_with($begin).await?;
            let mut deltas = BTreeMap::new();
            for record in records {
                let r = &record.result;
                let inserted = sqlx::query(
                    "INSERT INTO runs (run_id, journey, location, journey_sha256, planned_at_ns, \
                     started_at_ns, finished_at_ns, duration_ms, outcome, trace_id, \
                     scheduling_lag_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (run_id) DO NOTHING",
                )
                .bind(r.run_id)
                .bind(&r.journey)
                .bind(&r.location)
                .bind(&record.journey_sha256)
                .bind(to_ns(record.planned_at)?)
                .bind(to_ns(r.started_at)?)
                .bind(to_ns(r.finished_at)?)
                .bind(r.duration_ms)
                .bind(r.outcome)
                .bind(&r.trace_id)
                .bind(to_ms(record.scheduling_lag))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    continue;
                }
                sqlx::query("INSERT INTO run_feed (run_id, recorded_at_ns) VALUES ($1, $2)")
                    .bind(r.run_id)
                    .bind(to_ns(now)?)
                    .execute(&mut *tx)
                    .await?;
                for (index, s) in r.steps.iter().enumerate() {
                    let t = &s.timings;
                    sqlx::query(
                        "INSERT INTO step_results (run_id, step_index, name, kind, dependency, \
                         status, attempts, offset_ms, failure_class, failure_message, dns_ms, \
                         connect_ms, tls_ms, handshake_ms, ttfb_ms, download_ms, total_ms, \
                         conditions, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                         $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                    )
                    .bind(r.run_id)
                    .bind(index as i64)
                    .bind(&s.name)
                    .bind(&s.kind)
                    .bind(s.dependency.as_deref())
                    .bind(s.status)
                    .bind(i64::from(s.attempts))
                    .bind(s.offset_ms)
                    .bind(s.failure.as_ref().map(|f| f.class))
                    .bind(s.failure.as_ref().map(|f| f.message.as_str()))
                    .bind(t.dns.map(to_ms))
                    .bind(t.connect.map(to_ms))
                    .bind(t.tls.map(to_ms))
                    .bind(t.handshake.map(to_ms))
                    .bind(t.ttfb.map(to_ms))
                    .bind(t.download.map(to_ms))
                    .bind(t.total.map(to_ms))
                    .bind(Json(
                        serde_json::to_value(&s.conditions).expect("conditions serialise"),
                    ))
                    .bind(Json(StepDetail::of(s)))
                    .execute(&mut *tx)
                    .await?;
                }
                add_to_rollups(&mut deltas, r);
            }
            for ((journey, step, location, hour), delta) in deltas {
                let mut delta: RollupDelta = delta;
                sqlx::query(
                    "INSERT INTO rollups (journey, step, location, hour_s, count, failures, \
                     sum_ms, min_ms, max_ms, sketch) VALUES ($1, $2, $3, $4, 0, 0, 0, NULL, NULL, \
                     '{\"n\":0}') ON CONFLICT (journey, step, location, hour_s) DO NOTHING",
                )
                .bind(&journey)
                .bind(&step)
                .bind(&location)
                .bind(hour)
                .execute(&mut *tx)
                .await?;
                let row: RollupTotals = sqlx::query_as(concat!(
                    "SELECT count, failures, sum_ms, min_ms, max_ms, sketch FROM rollups \
                     WHERE journey = $1 AND step = $2 AND location = $3 AND hour_s = $4",
                    $lock
                ))
                .bind(&journey)
                .bind(&step)
                .bind(&location)
                .bind(hour)
                .fetch_one(&mut *tx)
                .await?;
                delta.absorb(&row)?;
                sqlx::query(
                    "UPDATE rollups SET count = $5, failures = $6, sum_ms = $7, min_ms = $8, \
                     max_ms = $9, sketch = $10 \
                     WHERE journey = $1 AND step = $2 AND location = $3 AND hour_s = $4",
                )
                .bind(&journey)
                .bind(&step)
                .bind(&location)
                .bind(hour)
                .bind(delta.count)
                .bind(delta.failures)
                .bind(delta.sum_ms)
                .bind(delta.min_ms)
                .bind(delta.max_ms)
                .bind(delta.sketch.to_json())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// The feed entries with `after < seq <= last`.
        const FED: &str = "SELECT run_id FROM run_feed WHERE seq > $1 AND seq <= $2";

        const RUN_COLUMNS: &str = "run_id, journey, location, journey_sha256, planned_at_ns, \
            started_at_ns, finished_at_ns, duration_ms, outcome, trace_id, scheduling_lag_ms";
    };
}
pub(super) use dialect;
