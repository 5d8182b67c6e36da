//! The store's queries, written once and instantiated per dialect (`dialect!` in `sqlite.rs`
//! and `postgres.rs`): both accept `$N` placeholders, `ON CONFLICT` and row-value `IN`, so
//! only how a write transaction starts and how a rollup row is locked differ.

macro_rules! dialect {
    ($db:ty, begin = $begin:literal, lock = $lock:literal) => {
        use std::collections::BTreeMap;

        use sqlx::types::Json;
        use sqlx::{Pool, Row};

        use crate::run::{RunResult, StepResult};
        use crate::step::{Failure, Timings};
        use crate::store::{JourneyVersion, Result, Rollup, RollupDelta, RunRecord, RunSummary, StepDetail, StoreError, StoredRun, add_to_rollups, from_ms, from_ns, json, name_of, parse_name, to_ms, to_ns};
use crate::baseline::sketch::Sketch;

        type Db = $db;

        pub(in crate::store) async fn record_journey_version(
            pool: &Pool<Db>,
            name: &str,
            sha: &str,
            definition: Option<&str>,
            seen_ns: i64,
        ) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO journeys (name, content_sha256, definition, first_seen_ns) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, content_sha256) DO NOTHING",
            )
            .bind(name)
            .bind(sha)
            .bind(definition)
            .bind(seen_ns)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn journeys(pool: &Pool<Db>) -> Result<Vec<JourneyVersion>> {
            let rows = sqlx::query(
                "SELECT name, content_sha256, definition, first_seen_ns FROM journeys \
                 ORDER BY name, first_seen_ns, content_sha256",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(JourneyVersion {
                        name: row.try_get("name")?,
                        content_sha256: row.try_get("content_sha256")?,
                        definition: row.try_get("definition")?,
                        first_seen: from_ns(row.try_get("first_seen_ns")?),
                    })
                })
                .collect()
        }

        pub(in crate::store) async fn record_runs(
            pool: &Pool<Db>,
            records: &[RunRecord],
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
                .bind(name_of(&r.outcome))
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
                    .bind(to_ns(chrono::Utc::now())?)
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
                    .bind(name_of(&s.status))
                    .bind(i64::from(s.attempts))
                    .bind(s.offset_ms)
                    .bind(s.failure.as_ref().map(|f| name_of(&f.class)))
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
                let row = sqlx::query(concat!(
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
                delta.absorb(
                    row.try_get("count")?,
                    row.try_get("failures")?,
                    row.try_get("sum_ms")?,
                    row.try_get("min_ms")?,
                    row.try_get("max_ms")?,
                    row.try_get::<&str, _>("sketch")?,
                )?;
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

        const RUN_COLUMNS: &str = "run_id, journey, location, journey_sha256, planned_at_ns, \
            started_at_ns, finished_at_ns, duration_ms, outcome, trace_id, scheduling_lag_ms";

        fn summary(row: &<Db as sqlx::Database>::Row) -> Result<RunSummary> {
            Ok(RunSummary {
                run_id: row.try_get("run_id")?,
                journey: row.try_get("journey")?,
                location: row.try_get("location")?,
                journey_sha256: row.try_get("journey_sha256")?,
                planned_at: from_ns(row.try_get("planned_at_ns")?),
                started_at: from_ns(row.try_get("started_at_ns")?),
                finished_at: from_ns(row.try_get("finished_at_ns")?),
                duration_ms: row.try_get("duration_ms")?,
                outcome: parse_name(row.try_get("outcome")?)?,
                trace_id: row.try_get("trace_id")?,
                scheduling_lag: from_ms(row.try_get("scheduling_lag_ms")?),
            })
        }

        pub(in crate::store) async fn recent_runs(
            pool: &Pool<Db>,
            journey: &str,
            limit: i64,
        ) -> Result<Vec<RunSummary>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE journey = $1 \
                 ORDER BY started_at_ns DESC, run_id LIMIT $2"
            )))
            .bind(journey)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(summary).collect()
        }

        /// The newest run of `journey` from each location.
        pub(in crate::store) async fn latest_run_per_location(
            pool: &Pool<Db>,
            journey: &str,
        ) -> Result<Vec<RunSummary>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN \
                 (SELECT location AS l, MAX(started_at_ns) AS m FROM runs WHERE journey = $1 \
                  GROUP BY location) latest ON r.location = latest.l AND r.started_at_ns = latest.m \
                 WHERE r.journey = $1 ORDER BY r.location"
            )))
            .bind(journey)
            .fetch_all(pool)
            .await?;
            rows.iter().map(summary).collect()
        }

        fn step(row: &<Db as sqlx::Database>::Row) -> Result<StepResult> {
            let ms = |col: &str| -> Result<Option<std::time::Duration>> {
                Ok(row.try_get::<Option<f64>, _>(col)?.map(from_ms))
            };
            let failure = match row.try_get::<Option<&str>, _>("failure_class")? {
                Some(class) => Some(Failure {
                    class: parse_name(class)?,
                    message: row
                        .try_get::<Option<String>, _>("failure_message")?
                        .unwrap_or_default(),
                }),
                None => None,
            };
            let Json(conditions) = row.try_get::<Json<serde_json::Value>, _>("conditions")?;
            let Json(detail) = row.try_get::<Json<serde_json::Value>, _>("detail")?;
            let detail: StepDetail = json(detail)?;
            Ok(StepResult {
                name: row.try_get("name")?,
                kind: row.try_get("kind")?,
                dependency: row.try_get("dependency")?,
                status: parse_name(row.try_get("status")?)?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                offset_ms: row.try_get("offset_ms")?,
                failure,
                conditions: json(conditions)?,
                degraded: detail.degraded,
                timings: Timings {
                    dns: ms("dns_ms")?,
                    connect: ms("connect_ms")?,
                    tls: ms("tls_ms")?,
                    handshake: ms("handshake_ms")?,
                    ttfb: ms("ttfb_ms")?,
                    download: ms("download_ms")?,
                    total: ms("total_ms")?,
                },
                request: detail.request,
                response: detail.response,
                actions: detail.actions,
                extracted: detail.extracted,
                skip_reason: detail.skip_reason,
                span_id: detail.span_id,
                attempt_span_ids: detail.attempt_span_ids,
            })
        }

        pub(in crate::store) async fn run(
            pool: &Pool<Db>,
            run_id: uuid::Uuid,
        ) -> Result<Option<StoredRun>> {
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"
            )))
            .bind(run_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let steps = sqlx::query(
                "SELECT * FROM step_results WHERE run_id = $1 ORDER BY step_index",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(step)
            .collect::<Result<Vec<_>>>()?;
            Ok(Some(record(summary(&row)?, steps)))
        }

        /// The stored runs of the feed entries with `after < seq <= last`, by run id: two
        /// statements for a page of the feed instead of two per run.
        pub(in crate::store) async fn fed_runs(
            pool: &Pool<Db>,
            after: i64,
            last: i64,
        ) -> Result<std::collections::HashMap<uuid::Uuid, StoredRun>> {
            const FED: &str = "SELECT run_id FROM run_feed WHERE seq > $1 AND seq <= $2";
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ({FED})"
            )))
            .bind(after)
            .bind(last)
            .fetch_all(pool)
            .await?;
            let mut steps: std::collections::HashMap<uuid::Uuid, Vec<StepResult>> =
                std::collections::HashMap::new();
            let step_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM step_results WHERE run_id IN ({FED}) ORDER BY run_id, step_index"
            )))
            .bind(after)
            .bind(last)
            .fetch_all(pool)
            .await?;
            for row in &step_rows {
                let run_id: uuid::Uuid = row.try_get("run_id")?;
                steps.entry(run_id).or_default().push(step(row)?);
            }
            rows.iter()
                .map(|row| {
                    let s = summary(row)?;
                    let own = steps.remove(&s.run_id).unwrap_or_default();
                    Ok((s.run_id, record(s, own)))
                })
                .collect()
        }

        fn record(s: RunSummary, steps: Vec<StepResult>) -> StoredRun {
            RunRecord {
                result: RunResult {
                    run_id: s.run_id,
                    journey: s.journey,
                    location: s.location,
                    outcome: s.outcome,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    duration_ms: s.duration_ms,
                    trace_id: s.trace_id,
                    steps,
                },
                planned_at: s.planned_at,
                scheduling_lag: s.scheduling_lag,
                journey_sha256: s.journey_sha256,
            }
        }

        pub(in crate::store) async fn rollups(
            pool: &Pool<Db>,
            journey: &str,
            from_s: i64,
            to_s: i64,
        ) -> Result<Vec<Rollup>> {
            let rows = sqlx::query(
                "SELECT journey, step, location, hour_s, count, failures, sum_ms, min_ms, max_ms, \
                 sketch FROM rollups WHERE journey = $1 AND hour_s >= $2 AND hour_s < $3 \
                 ORDER BY hour_s, step, location",
            )
            .bind(journey)
            .bind(from_s)
            .bind(to_s)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let step: String = row.try_get("step")?;
                    let hour: i64 = row.try_get("hour_s")?;
                    Ok(Rollup {
                        journey: row.try_get("journey")?,
                        step: (!step.is_empty()).then_some(step),
                        location: row.try_get("location")?,
                        hour: chrono::DateTime::from_timestamp(hour, 0)
                            .ok_or_else(|| StoreError::Corrupt(format!("hour {hour}")))?,
                        count: row.try_get::<i64, _>("count")? as u64,
                        failures: row.try_get::<i64, _>("failures")? as u64,
                        sum_ms: row.try_get("sum_ms")?,
                        min_ms: row.try_get("min_ms")?,
                        max_ms: row.try_get("max_ms")?,
                        sketch: Sketch::from_json(row.try_get("sketch")?)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    })
                })
                .collect()
        }

        pub(in crate::store) async fn prune_runs(
            pool: &Pool<Db>,
            before_ns: i64,
            batch: i64,
        ) -> Result<u64> {
            let done = sqlx::query(
                "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs \
                 WHERE started_at_ns < $1 ORDER BY started_at_ns LIMIT $2)",
            )
            .bind(before_ns)
            .bind(batch)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }

        pub(in crate::store) async fn prune_rollups(
            pool: &Pool<Db>,
            before_s: i64,
            batch: i64,
        ) -> Result<u64> {
            let done = sqlx::query(
                "DELETE FROM rollups WHERE (journey, step, location, hour_s) IN \
                 (SELECT journey, step, location, hour_s FROM rollups WHERE hour_s < $1 \
                 ORDER BY hour_s LIMIT $2)",
            )
            .bind(before_s)
            .bind(batch)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }
    };
}

pub(crate) use dialect;
