//! What a run becomes as rows and back: the columns of runs, steps, journey versions and
//! rollups as `sqlx::FromRow` structs, a step's details kept as one JSON document, and what a
//! batch of runs adds to the rollups (merged in memory before the database is touched).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{
    JourneyVersion, Result, Rollup, RunRecord, RunSummary, StoreError, StoredRun, from_ms, from_ns,
    json, to_ms,
};
use crate::baseline::sketch::Sketch;
use crate::run::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::{Failure, FailureClass, Timings};

/// What a step result holds beyond its columns, kept as one JSON document.
#[derive(Serialize, Deserialize)]
pub(super) struct StepDetail {
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
    pub(super) fn of(step: &StepResult) -> serde_json::Value {
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
pub(super) type RollupKey = (String, String, String, i64);

/// What a batch of runs adds to the rollups, merged in memory before touching the database.
#[derive(Default)]
pub(super) struct RollupDelta {
    pub(super) count: i64,
    pub(super) failures: i64,
    pub(super) sum_ms: f64,
    pub(super) min_ms: Option<f64>,
    pub(super) max_ms: Option<f64>,
    pub(super) sketch: Sketch,
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
    pub(super) fn absorb(&mut self, row: &RollupTotals) -> Result<()> {
        let (min, max) = (row.min_ms, row.max_ms);
        let sketch = sketch(&row.sketch)?;
        self.count += row.count;
        self.failures += row.failures;
        self.sum_ms += row.sum_ms;
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

pub(super) fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600) * 3600
}

/// Adds a run's contribution to the rollups of its hour (the hour its run started in).
pub(super) fn add_to_rollups(
    deltas: &mut std::collections::BTreeMap<RollupKey, RollupDelta>,
    run: &RunResult,
) {
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

/// A sketch column, back to its sketch.
pub(super) fn sketch(json: &str) -> Result<Sketch> {
    Sketch::from_json(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A `journeys` row.
#[derive(sqlx::FromRow)]
pub(super) struct JourneyRow {
    name: String,
    content_sha256: String,
    definition: Option<String>,
    first_seen_ns: i64,
}

impl From<JourneyRow> for JourneyVersion {
    fn from(row: JourneyRow) -> Self {
        JourneyVersion {
            name: row.name,
            content_sha256: row.content_sha256,
            definition: row.definition,
            first_seen: from_ns(row.first_seen_ns),
        }
    }
}

/// The columns of `runs` (`RUN_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    run_id: uuid::Uuid,
    journey: String,
    location: String,
    journey_sha256: String,
    planned_at_ns: i64,
    started_at_ns: i64,
    finished_at_ns: i64,
    duration_ms: f64,
    outcome: Outcome,
    trace_id: String,
    scheduling_lag_ms: f64,
}

impl From<RunRow> for RunSummary {
    fn from(row: RunRow) -> Self {
        RunSummary {
            run_id: row.run_id,
            journey: row.journey,
            location: row.location,
            journey_sha256: row.journey_sha256,
            planned_at: from_ns(row.planned_at_ns),
            started_at: from_ns(row.started_at_ns),
            finished_at: from_ns(row.finished_at_ns),
            duration_ms: row.duration_ms,
            outcome: row.outcome,
            trace_id: row.trace_id,
            scheduling_lag: from_ms(row.scheduling_lag_ms),
        }
    }
}

/// A `step_results` row.
#[derive(sqlx::FromRow)]
pub(super) struct StepRow {
    pub(super) run_id: uuid::Uuid,
    name: String,
    kind: String,
    dependency: Option<String>,
    status: StepStatus,
    attempts: i64,
    offset_ms: f64,
    failure_class: Option<FailureClass>,
    failure_message: Option<String>,
    dns_ms: Option<f64>,
    connect_ms: Option<f64>,
    tls_ms: Option<f64>,
    handshake_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    download_ms: Option<f64>,
    total_ms: Option<f64>,
    conditions: Json<serde_json::Value>,
    detail: Json<serde_json::Value>,
}

impl TryFrom<StepRow> for StepResult {
    type Error = StoreError;

    fn try_from(row: StepRow) -> Result<StepResult> {
        let detail: StepDetail = json(row.detail.0)?;
        Ok(StepResult {
            name: row.name,
            kind: row.kind,
            dependency: row.dependency,
            status: row.status,
            attempts: u32::try_from(row.attempts)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            offset_ms: row.offset_ms,
            failure: row.failure_class.map(|class| Failure {
                class,
                message: row.failure_message.unwrap_or_default(),
            }),
            conditions: json(row.conditions.0)?,
            degraded: detail.degraded,
            timings: Timings {
                dns: row.dns_ms.map(from_ms),
                connect: row.connect_ms.map(from_ms),
                tls: row.tls_ms.map(from_ms),
                handshake: row.handshake_ms.map(from_ms),
                ttfb: row.ttfb_ms.map(from_ms),
                download: row.download_ms.map(from_ms),
                total: row.total_ms.map(from_ms),
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
}

/// A run read back: its summary and its steps.
pub(super) fn record(s: RunSummary, steps: Vec<StepResult>) -> StoredRun {
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

/// What a rollup row has counted so far.
#[derive(sqlx::FromRow)]
pub(super) struct RollupTotals {
    count: i64,
    failures: i64,
    sum_ms: f64,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    sketch: String,
}

/// A `rollups` row.
#[derive(sqlx::FromRow)]
pub(super) struct RollupRow {
    journey: String,
    step: String,
    location: String,
    hour_s: i64,
    #[sqlx(flatten)]
    totals: RollupTotals,
}

impl TryFrom<RollupRow> for Rollup {
    type Error = StoreError;

    fn try_from(row: RollupRow) -> Result<Rollup> {
        let RollupRow {
            journey,
            step,
            location,
            hour_s,
            totals: t,
        } = row;
        Ok(Rollup {
            journey,
            step: (!step.is_empty()).then_some(step),
            location,
            hour: DateTime::from_timestamp(hour_s, 0)
                .ok_or_else(|| StoreError::Corrupt(format!("hour {hour_s}")))?,
            count: t.count.max(0) as u64,
            failures: t.failures.max(0) as u64,
            sum_ms: t.sum_ms,
            min_ms: t.min_ms,
            max_ms: t.max_ms,
            sketch: sketch(&t.sketch)?,
        })
    }
}
