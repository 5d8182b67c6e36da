//! What one run of a journey produced: the [`RunResult`] with a [`StepResult`] per step.
//!
//! These are the pipeline's currency: the runner makes them; telemetry, the store, baselines,
//! alerting, digests, reports and the API read them. They live here, below all of those, so
//! that none of the readers depends on the runner (what an attempt measured, its `Timings`
//! and `Failure`, belongs to [`crate::step`], which produces it).
//!
//! `testkit` builds them, and journeys, for tests and benchmarks.

#![deny(clippy::disallowed_methods)]

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::journey::condition::ConditionOutcome;
use crate::step::{ActionOutcome, Failure, RequestSummary, ResponseSummary, Timings};

/// Builders of test data (runs, steps, journeys) for unit tests, `tests/it/` and benchmarks.
#[doc(hidden)]
pub mod testkit;

crate::words::words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Outcome {
        Passed,
        Failed,
        /// The journey itself is broken (a template could not be rendered), or Waymark failed
        /// while running it (a panic: "internal error: …").
        Error,
    }
}

crate::words::words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum StepStatus {
        Passed,
        Failed,
        Skipped,
        Error,
    }
}

/// One run of one journey. Field names are a stable interface (`waymark run --format json`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunResult {
    pub run_id: uuid::Uuid,
    pub journey: String,
    pub location: String,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// The run's OpenTelemetry trace id, 32 hex digits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    pub steps: Vec<StepResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepResult {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dependency: Option<String>,
    pub status: StepStatus,
    /// Attempts made; more than 1 means fast retries happened (only the last one counts).
    pub attempts: u32,
    /// Milliseconds from the start of the run to the start of this step's last attempt.
    pub offset_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure: Option<Failure>,
    pub conditions: Vec<ConditionOutcome>,
    /// The step's `degraded_when` conditions that held (a passing step only).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub degraded: Vec<ConditionOutcome>,
    pub timings: Timings,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request: Option<RequestSummary>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response: Option<ResponseSummary>,
    /// Scripted actions (WebSocket), in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub actions: Vec<ActionOutcome>,
    /// Names of the variables this step extracted (never their values).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub extracted: Vec<String>,
    /// Why a `skipped` step did not run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skip_reason: Option<String>,
    /// Span id (16 hex digits) of the attempt this result describes, the last one; for a step
    /// that did not run, of its (empty) span.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// Span ids of every attempt in order, when the step was retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_span_ids: Vec<String>,
}

impl StepResult {
    /// A result with `status` and nothing observed: no attempt, timings, conditions, request,
    /// response, actions, extracted names or spans. Results that do not come from running the
    /// step (a skipped one, the demo's made-up history, tests) start from it.
    pub fn unobserved(name: String, kind: String, status: StepStatus) -> StepResult {
        StepResult {
            name,
            kind,
            dependency: None,
            status,
            attempts: 0,
            offset_ms: 0.0,
            failure: None,
            conditions: Vec::new(),
            degraded: Vec::new(),
            timings: Timings::default(),
            request: None,
            response: None,
            actions: Vec::new(),
            extracted: Vec::new(),
            skip_reason: None,
            span_id: String::new(),
            attempt_span_ids: Vec::new(),
        }
    }
}
