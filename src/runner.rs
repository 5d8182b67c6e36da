//! Runs one journey once: steps in order, fast retries, timeouts, conditions, extraction.
//!
//! The runner knows nothing of storage, schedules or alerting: it turns a [`Journey`] into a
//! [`RunResult`]. Every string in the result has passed through the run's [`Redactor`], so
//! whoever prints or stores it cannot leak a secret by accident.
//!
//! Every run is a trace ([`crate::telemetry`]): a root span, one span per step attempt whose
//! context goes out with the attempt's requests, and the ids in the result. The spans get
//! their content when the run is over, through the same redactor.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::Instrument;

use crate::journey::condition::{Condition, Placeholder};
use crate::journey::facts::Facts;
use crate::journey::template::{Redactor, Ref, Scope, SecretSource, Vars, value_text};
use crate::journey::{Journey, Step, StepKind};
use crate::run::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::{Attempt, Failure, FailureClass, StepContext, StepExecutor};
use crate::telemetry::{RunTrace, Telemetry};

mod isolate;
mod redaction;

use redaction::{redact, register_extracted, register_secrets};
#[cfg(test)]
mod tests;
mod variables;

/// How a run is performed: where from, with which overrides and secrets.
#[derive(Clone)]
pub struct Runner {
    pub location: String,
    pub secrets: Arc<dyn SecretSource>,
    /// `--var` overrides; they win over the journey's `variables:`.
    pub overrides: BTreeMap<String, String>,
    /// Where each run's trace goes; [`Telemetry::disabled`] still gives every run trace ids
    /// and sends `traceparent`, so a backend can correlate even without export.
    pub telemetry: Telemetry,
}

/// Steps that say nothing about `[STATUS]` still fail on an HTTP error status.
static IMPLICIT_STATUS: LazyLock<Condition> =
    LazyLock::new(|| Condition::parse("[STATUS] < 400").expect("built-in condition parses"));

/// Grace after a deadline before the runner stops waiting for an executor that overran it.
const DEADLINE_GRACE: Duration = Duration::from_millis(50);

impl Runner {
    /// Runs the journey once, as one trace. Log lines of the run carry its trace id (a `run`
    /// tracing span).
    pub async fn run(&self, journey: &Journey) -> RunResult {
        let run_id = uuid::Uuid::new_v4();
        let trace = self.telemetry.start_run(journey, run_id);
        let span = tracing::info_span!(
            "run",
            journey = %journey.name,
            run_id = %run_id,
            trace_id = %trace.trace_id(),
        );
        // Created here so that even a panic's message is redacted.
        let redactor = Redactor::default();
        let (started_at, start, trace_id) = (Utc::now(), Instant::now(), trace.trace_id());
        let run = self.run_inner(journey, run_id, trace, &redactor, started_at, start);
        match isolate::catch_panic(run.instrument(span.clone())).await {
            Ok(result) => result,
            Err(isolate::Panicked(message)) => {
                let failure = isolate::internal_failure(&redactor.redact(&message));
                span.in_scope(|| {
                    tracing::error!(error = %failure.message, "run panicked; recorded as an error")
                });
                let mut steps: Vec<StepResult> = journey
                    .steps
                    .iter()
                    .map(|s| skipped(s, "the run stopped on an internal error".to_string()))
                    .collect();
                if let Some(first) = steps.first_mut() {
                    first.status = StepStatus::Error;
                    first.skip_reason = None;
                    first.failure = Some(failure);
                }
                let result = RunResult {
                    run_id,
                    journey: journey.name.clone(),
                    location: self.location.clone(),
                    outcome: Outcome::Error,
                    started_at,
                    finished_at: Utc::now(),
                    duration_ms: ms(start.elapsed()),
                    trace_id,
                    steps,
                };
                redact(result, &redactor)
            }
        }
    }

    async fn run_inner(
        &self,
        journey: &Journey,
        run_id: uuid::Uuid,
        mut trace: RunTrace,
        redactor: &Redactor,
        started_at: DateTime<Utc>,
        start: Instant,
    ) -> RunResult {
        let deadline = start + journey.timeout;
        register_secrets(journey, self.secrets.as_ref(), redactor);
        let (mut vars, mut bad_variable) =
            variables::initial_vars(journey, &self.overrides, self.secrets.as_ref(), redactor);
        let mut steps = Vec::with_capacity(journey.steps.len());
        let mut broken = false;
        for step in &journey.steps {
            let missing = missing_var(step, &vars);
            let not_run = if let Some(reason) = bad_variable.take() {
                // A variable that cannot be rendered is the journey's problem: the first step
                // reports it, the others are skipped as after any error.
                let mut r = skipped(step, String::new());
                r.status = StepStatus::Error;
                r.skip_reason = None;
                r.failure = Some(Failure {
                    class: FailureClass::Template,
                    message: reason,
                });
                Some(r)
            } else if broken && !step.always_run {
                Some(skipped(step, "an earlier step failed".to_string()))
            } else if let (true, Some(var)) = (broken, missing) {
                Some(skipped(
                    step,
                    format!("needs `{var}`, which no earlier step extracted"),
                ))
            } else if Instant::now() >= deadline {
                Some(timed_out_run(step, journey.timeout))
            } else {
                None
            };
            let result = match not_run {
                Some(mut result) => {
                    result.span_id = trace.not_run(step, &result);
                    result
                }
                None => {
                    self.run_step(step, &mut vars, redactor, start, deadline, &mut trace)
                        .await
                }
            };
            broken |= matches!(result.status, StepStatus::Failed | StepStatus::Error);
            steps.push(result);
        }
        let outcome = if steps.iter().any(|s| s.status == StepStatus::Failed) {
            Outcome::Failed
        } else if steps.iter().any(|s| s.status == StepStatus::Error) {
            Outcome::Error
        } else {
            Outcome::Passed
        };
        let result = RunResult {
            run_id,
            journey: journey.name.clone(),
            location: self.location.clone(),
            outcome,
            started_at,
            finished_at: Utc::now(),
            duration_ms: ms(start.elapsed()),
            trace_id: trace.trace_id(),
            steps,
        };
        let result = redact(result, redactor);
        trace.finish(&result, redactor);
        tracing::debug!(outcome = ?result.outcome, duration_ms = result.duration_ms, "run finished");
        result
    }

    async fn run_step(
        &self,
        step: &Step,
        vars: &mut Vars,
        redactor: &Redactor,
        run_start: Instant,
        run_deadline: Instant,
        trace: &mut RunTrace,
    ) -> StepResult {
        let mut attempts = 0;
        let mut span_ids = Vec::new();
        loop {
            attempts += 1;
            let attempt_start = Instant::now();
            let deadline = (attempt_start + step.timeout).min(run_deadline);
            let span = trace.start_attempt(step, attempts);
            span_ids.push(span.span_id());
            let scope = Scope {
                vars,
                secrets: self.secrets.as_ref(),
                redactor,
                now: Utc::now(),
            };
            let ctx = StepContext {
                scope,
                deadline,
                propagation_headers: trace.propagation_headers(&span),
                sensitive: step.sensitive,
            };
            let log = tracing::debug_span!(
                "step",
                step = %step.name,
                attempt = attempts,
                span_id = %span_ids[span_ids.len() - 1],
            );
            let attempt = execute(step, &ctx, deadline).instrument(log.clone());
            let attempt = match isolate::catch_panic(attempt).await {
                Ok(attempt) => attempt,
                Err(isolate::Panicked(message)) => {
                    let failure = isolate::internal_failure(&redactor.redact(&message));
                    log.in_scope(|| {
                        tracing::error!(error = %failure.message, "step panicked; recorded as an error")
                    });
                    Attempt {
                        failure: Some(failure),
                        ..Attempt::default()
                    }
                }
            };
            register_extracted(step, &attempt, redactor);
            let attempt_end = SystemTime::now();
            let (mut result, facts, inner) = judge(
                step,
                attempt,
                &ctx.scope,
                attempts,
                ms(attempt_start - run_start),
            );
            let retry_at = Instant::now() + step.retries.delay;
            let done = match result.failure.as_ref().map(|f| f.class) {
                None => {
                    match extract(step, &facts, inner, vars, redactor) {
                        Ok(names) => result.extracted = names,
                        Err(failure) => {
                            result.status = StepStatus::Failed;
                            result.failure = Some(failure);
                        }
                    }
                    true
                }
                // A journey error is deterministic: retrying cannot help.
                Some(class) if class.is_error() => true,
                Some(_) => attempts > step.retries.count || retry_at >= run_deadline,
            };
            log.in_scope(|| {
                tracing::debug!(
                    status = ?result.status,
                    failure = ?result.failure.as_ref().map(|f| f.class),
                    "attempt finished"
                )
            });
            // `vars` may have changed (extraction): a fresh scope to render the target with.
            let scope = Scope {
                vars,
                secrets: self.secrets.as_ref(),
                redactor,
                now: Utc::now(),
            };
            trace.end_attempt(span, attempt_end, step, &scope, &facts, &result, done);
            if done {
                result.span_id = span_ids.last().cloned().unwrap_or_default();
                if span_ids.len() > 1 {
                    result.attempt_span_ids = span_ids;
                }
                return result;
            }
            tokio::time::sleep_until(retry_at).await;
        }
    }
}

/// Runs the executor for the step's kind, never waiting much past the deadline even if an
/// executor misbehaves.
async fn execute(step: &Step, ctx: &StepContext<'_>, deadline: Instant) -> Attempt {
    let fut = async {
        #[cfg(test)]
        if step.name == isolate::PANIC_STEP_FOR_TESTS {
            panic!("deliberate panic in step `{}`", step.name);
        }
        match &step.kind {
            StepKind::Http(s) => s.execute(ctx).await,
            StepKind::Websocket(s) => s.execute(ctx).await,
            StepKind::Tcp(s) => s.execute(ctx).await,
            StepKind::Dns(s) => s.execute(ctx).await,
            StepKind::Tls(s) => s.execute(ctx).await,
            StepKind::Wait(s) => s.execute(ctx).await,
        }
    };
    match tokio::time::timeout_at(deadline + DEADLINE_GRACE, fut).await {
        Ok(a) => a,
        Err(_) => Attempt::failed(
            FailureClass::Timeout,
            "step did not finish before its deadline",
        ),
    }
}

/// Evaluates conditions and decides the attempt's status. Returns the facts and the values the
/// executor extracted too, for extraction.
fn judge(
    step: &Step,
    attempt: Attempt,
    scope: &Scope<'_>,
    attempts: u32,
    offset_ms: f64,
) -> (StepResult, Facts, Vec<(String, serde_json::Value)>) {
    let Attempt {
        facts,
        timings,
        failure,
        request,
        response,
        extracted,
        actions,
    } = attempt;
    let mut conditions = Vec::new();
    let mut failure = failure;
    if failure.is_none() {
        let mut failed_status = None;
        let mut failed_other = None;
        for c in conditions_for(step) {
            let outcome = c.evaluate(&facts, scope);
            if !outcome.passed {
                let on_status = c.placeholders().any(|p| *p == Placeholder::Status);
                let slot = if on_status {
                    &mut failed_status
                } else {
                    &mut failed_other
                };
                slot.get_or_insert_with(|| {
                    format!("{} (actual: {})", outcome.expression, outcome.actual)
                });
            }
            conditions.push(outcome);
        }
        failure = match (failed_status, failed_other) {
            (Some(msg), _) => Some(Failure {
                class: FailureClass::HttpStatus,
                message: msg,
            }),
            (None, Some(msg)) => Some(Failure {
                class: FailureClass::Condition,
                message: msg,
            }),
            (None, None) => None,
        };
    }
    let degraded = match failure {
        None => step
            .degraded_when
            .iter()
            .map(|c| c.evaluate(&facts, scope))
            .filter(|o| o.passed)
            .collect(),
        Some(_) => Vec::new(),
    };
    let status = match &failure {
        None => StepStatus::Passed,
        Some(f) if f.class.is_error() => StepStatus::Error,
        Some(_) => StepStatus::Failed,
    };
    (
        StepResult {
            name: step.name.clone(),
            kind: step.kind.name().to_string(),
            dependency: step.dependency.clone(),
            status,
            attempts,
            offset_ms,
            failure,
            conditions,
            degraded,
            timings,
            request,
            response,
            actions,
            extracted: Vec::new(),
            skip_reason: None,
            span_id: String::new(),
            attempt_span_ids: Vec::new(),
        },
        facts,
        extracted,
    )
}

fn conditions_for(step: &Step) -> impl Iterator<Item = &Condition> {
    let has_status = step
        .conditions
        .iter()
        .any(|c| c.placeholders().any(|p| *p == Placeholder::Status));
    let implicit = match step.kind {
        StepKind::Http(_) if !has_status => Some(&*IMPLICIT_STATUS),
        _ => None,
    };
    step.conditions.iter().chain(implicit)
}

/// Stores extracted values in the run's variables: those the executor extracted during the
/// attempt, then the step's `extract:`. A value that is not there fails the step.
fn extract(
    step: &Step,
    facts: &Facts,
    inner: Vec<(String, serde_json::Value)>,
    vars: &mut Vars,
    redactor: &Redactor,
) -> Result<Vec<String>, Failure> {
    let mut values = inner;
    for (name, placeholder) in &step.extract {
        let value = placeholder.resolve(facts).ok_or_else(|| Failure {
            class: FailureClass::Extraction,
            message: match placeholder.missing_reason(facts) {
                Some(reason) => format!("cannot extract `{name}`: {reason}"),
                None => {
                    format!("cannot extract `{name}`: {placeholder} is missing from the response")
                }
            },
        })?;
        values.push((name.clone(), value));
    }
    let mut names = Vec::with_capacity(values.len());
    for (name, value) in values {
        // Already registered by `register_extracted`; a `sensitive` step's values once more,
        // should an executor have extracted one it did not report in `Attempt::extracted`.
        if step.sensitive {
            redactor.register(&value_text(&value));
        }
        vars.insert(name.clone(), value);
        names.push(name);
    }
    Ok(names)
}

/// The first variable the step uses that is not (yet) in `vars`. Validation guarantees that an
/// earlier step extracts it; it can still be missing at run time when that step failed, which
/// is why a cleanup step that needs it is skipped rather than errored.
fn missing_var<'a>(step: &'a Step, vars: &Vars) -> Option<&'a str> {
    step.templates()
        .into_iter()
        .flat_map(|t| t.refs())
        .find_map(|r| match r {
            Ref::Var(name) if !vars.contains_key(name) => Some(name.as_str()),
            _ => None,
        })
}

fn skipped(step: &Step, reason: String) -> StepResult {
    StepResult {
        dependency: step.dependency.clone(),
        skip_reason: Some(reason),
        ..StepResult::unobserved(
            step.name.clone(),
            step.kind.name().to_string(),
            StepStatus::Skipped,
        )
    }
}

fn timed_out_run(step: &Step, timeout: Duration) -> StepResult {
    let mut r = skipped(step, String::new());
    r.skip_reason = None;
    r.status = StepStatus::Failed;
    r.failure = Some(Failure {
        class: FailureClass::Timeout,
        message: format!(
            "the journey timeout ({}) passed before this step started",
            humantime::format_duration(timeout)
        ),
    });
    r
}

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
