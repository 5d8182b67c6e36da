//! Test data for the pipeline: [`RunResult`]s and [`StepResult`]s built in a line, and journeys
//! parsed from YAML through the real parser. For unit tests, `tests/it/` and the benchmarks
//! alike, so it is compiled into the library (hidden from the documentation); it uses only
//! [`crate::journey`], [`crate::step`] and this module, like the rest of `run`.
//!
//! ```
//! use waymark::run::testkit::{run, step};
//! use waymark::run::{Outcome, StepStatus};
//!
//! let r = run("checkout")
//!     .location("eu")
//!     .step(step("home").ms(250.0))
//!     .step(step("pay").dependency("payments").failed())
//!     .build();
//! assert_eq!(r.outcome, Outcome::Failed, "a failed step fails the run");
//! assert_eq!(r.duration_ms, 250.0, "the steps' totals");
//! assert_eq!(r.steps[1].status, StepStatus::Failed);
//! ```
//!
//! What a test does not set is a plain default: a run of a fresh id from location `test`,
//! started at 2026-01-01 00:00 UTC (no clock is read), whose outcome follows its steps, whose
//! duration is the sum of its steps' totals and which finished that long after it started; a
//! passed `http` step of one attempt at offset 0 with no timings.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Outcome, RunResult, StepResult, StepStatus};
use crate::journey::Journey;
use crate::journey::condition::ConditionOutcome;
use crate::journey::parse::{ParseOptions, parse_journey};
use crate::step::{Failure, FailureClass, RequestSummary, Timings};

/// When a run starts unless the test says: 2026-01-01 00:00:00 UTC.
pub const START: i64 = 1_767_225_600;

/// A run of `journey`; see the module doc for the defaults.
pub fn run(journey: &str) -> RunBuilder {
    RunBuilder {
        result: RunResult {
            run_id: uuid::Uuid::new_v4(),
            journey: journey.to_owned(),
            location: "test".to_owned(),
            outcome: Outcome::Passed,
            started_at: DateTime::from_timestamp(START, 0).expect("in range"),
            finished_at: DateTime::from_timestamp(START, 0).expect("in range"),
            duration_ms: 0.0,
            trace_id: String::new(),
            steps: Vec::new(),
        },
        outcome: None,
        duration_ms: None,
        finished_at: None,
    }
}

/// A step called `name`; see the module doc for the defaults.
pub fn step(name: &str) -> StepBuilder {
    StepBuilder(StepResult {
        attempts: 1,
        ..StepResult::unobserved(name.to_owned(), "http".to_owned(), StepStatus::Passed)
    })
}

/// A [`RunResult`] under construction: [`run`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RunBuilder {
    result: RunResult,
    outcome: Option<Outcome>,
    duration_ms: Option<f64>,
    finished_at: Option<DateTime<Utc>>,
}

impl RunBuilder {
    pub fn id(mut self, run_id: uuid::Uuid) -> Self {
        self.result.run_id = run_id;
        self
    }

    pub fn location(mut self, location: &str) -> Self {
        self.result.location = location.to_owned();
        self
    }

    /// When the run started.
    pub fn at(mut self, started_at: DateTime<Utc>) -> Self {
        self.result.started_at = started_at;
        self
    }

    /// When the run finished (by default: its duration after it started).
    pub fn finished_at(mut self, finished_at: DateTime<Utc>) -> Self {
        self.finished_at = Some(finished_at);
        self
    }

    /// The outcome, whatever the steps say.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// `failed`, whatever the steps say.
    pub fn failed(self) -> Self {
        self.outcome(Outcome::Failed)
    }

    /// `failed` if `failed`, else `passed`, whatever the steps say.
    pub fn failed_if(self, failed: bool) -> Self {
        self.outcome(if failed {
            Outcome::Failed
        } else {
            Outcome::Passed
        })
    }

    /// The duration, whatever the steps' totals add up to.
    pub fn duration_ms(mut self, ms: f64) -> Self {
        self.duration_ms = Some(ms);
        self
    }

    pub fn trace_id(mut self, trace_id: &str) -> Self {
        self.result.trace_id = trace_id.to_owned();
        self
    }

    /// Adds a step after the ones already there.
    pub fn step(mut self, step: impl Into<StepResult>) -> Self {
        self.result.steps.push(step.into());
        self
    }

    /// Adds steps after the ones already there.
    pub fn steps<S: Into<StepResult>>(mut self, steps: impl IntoIterator<Item = S>) -> Self {
        self.result.steps.extend(steps.into_iter().map(Into::into));
        self
    }

    pub fn build(self) -> RunResult {
        let mut r = self.result;
        r.outcome = self.outcome.unwrap_or_else(|| outcome_of(&r.steps));
        r.duration_ms = self.duration_ms.unwrap_or_else(|| {
            r.steps
                .iter()
                .filter_map(|s| s.timings.total)
                .map(|d| d.as_secs_f64() * 1e3)
                .sum()
        });
        r.finished_at = self.finished_at.unwrap_or_else(|| {
            r.started_at + chrono::Duration::microseconds((r.duration_ms * 1e3).round() as i64)
        });
        r
    }
}

/// An error step makes the run's outcome `error`, else a failed one `failed`.
fn outcome_of(steps: &[StepResult]) -> Outcome {
    let has = |status| steps.iter().any(|s| s.status == status);
    if has(StepStatus::Error) {
        Outcome::Error
    } else if has(StepStatus::Failed) {
        Outcome::Failed
    } else {
        Outcome::Passed
    }
}

impl From<RunBuilder> for RunResult {
    fn from(b: RunBuilder) -> RunResult {
        b.build()
    }
}

/// A [`StepResult`] under construction: [`step`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StepBuilder(StepResult);

impl StepBuilder {
    /// The step kind's name (`http` unless said).
    pub fn kind(mut self, kind: &str) -> Self {
        self.0.kind = kind.to_owned();
        self
    }

    pub fn dependency(mut self, dependency: &str) -> Self {
        self.0.dependency = Some(dependency.to_owned());
        self
    }

    pub fn status(mut self, status: StepStatus) -> Self {
        self.0.status = status;
        self
    }

    pub fn passed(self) -> Self {
        self.status(StepStatus::Passed)
    }

    pub fn failed(self) -> Self {
        self.status(StepStatus::Failed)
    }

    /// `failed` if `failed`, else `passed`.
    pub fn failed_if(self, failed: bool) -> Self {
        self.status(if failed {
            StepStatus::Failed
        } else {
            StepStatus::Passed
        })
    }

    pub fn skipped(self) -> Self {
        self.status(StepStatus::Skipped)
    }

    pub fn attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts;
        self
    }

    /// Milliseconds from the start of the run to the start of the step.
    pub fn offset_ms(mut self, ms: f64) -> Self {
        self.0.offset_ms = ms;
        self
    }

    /// The step's total time, in milliseconds (read as `waymark run --format json` is).
    pub fn ms(self, ms: f64) -> Self {
        self.total(Duration::from_secs_f64(ms / 1000.0))
    }

    /// The step's total time.
    pub fn total(mut self, total: Duration) -> Self {
        self.0.timings.total = Some(total);
        self
    }

    /// All the timings at once.
    pub fn timings(mut self, timings: Timings) -> Self {
        self.0.timings = timings;
        self
    }

    /// Failed, of `class`, saying `message`.
    pub fn failure(mut self, class: FailureClass, message: &str) -> Self {
        self.0.failure = Some(Failure {
            class,
            message: message.to_owned(),
        });
        self.failed()
    }

    /// A condition evaluated, `passed` or not, on `actual`.
    pub fn condition(mut self, expression: &str, passed: bool, actual: &str) -> Self {
        self.0.conditions.push(ConditionOutcome {
            expression: expression.to_owned(),
            passed,
            actual: actual.to_owned(),
        });
        self
    }

    /// A `degraded_when` condition that held on `actual`.
    pub fn degraded(mut self, expression: &str, actual: &str) -> Self {
        self.0.degraded.push(ConditionOutcome {
            expression: expression.to_owned(),
            passed: true,
            actual: actual.to_owned(),
        });
        self
    }

    /// The request sent: `method` to `url`, no headers, no body.
    pub fn request(mut self, method: &str, url: &str) -> Self {
        self.0.request = Some(RequestSummary {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body_bytes: 0,
        });
        self
    }

    /// Why the step did not run.
    pub fn skip_reason(mut self, reason: &str) -> Self {
        self.0.skip_reason = Some(reason.to_owned());
        self
    }

    pub fn build(self) -> StepResult {
        self.0
    }
}

impl From<StepBuilder> for StepResult {
    fn from(b: StepBuilder) -> StepResult {
        b.0
    }
}

/// The journey `yaml` describes (file `j.yaml`, default options); panics with the
/// diagnostics if it does not parse.
pub fn journey(yaml: &str) -> Journey {
    journey_from(yaml, "j.yaml", &ParseOptions::default())
}

/// A journey called `name` with the `steps` (the YAML list under `steps:`, indented).
pub fn journey_named(name: &str, steps: &str) -> Journey {
    journey(&format!("name: {name}\nsteps:\n{steps}"))
}

/// The journey `yaml` describes, read as the file `file` with `options`; panics with the
/// diagnostics if it does not parse.
pub fn journey_from(yaml: &str, file: &str, options: &ParseOptions) -> Journey {
    parse_journey(yaml, Path::new(file), options).unwrap_or_else(|diagnostics| {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        panic!(
            "the test journey does not parse:\n{}\n---\n{yaml}",
            lines.join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_steps() {
        let r = run("j")
            .step(step("a").ms(100.0))
            .step(step("b").ms(50.5).failed())
            .build();
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.duration_ms, 150.5);
        assert_eq!(
            r.finished_at - r.started_at,
            chrono::Duration::microseconds(150_500)
        );
        assert_eq!(r.location, "test");
        assert_eq!(run("j").build().outcome, Outcome::Passed);
        let explicit = run("j")
            .step(step("a").failed())
            .outcome(Outcome::Passed)
            .duration_ms(7.0)
            .build();
        assert_eq!(
            (explicit.outcome, explicit.duration_ms),
            (Outcome::Passed, 7.0)
        );
    }

    #[test]
    #[should_panic(expected = "does not parse")]
    fn a_broken_journey_panics_with_its_diagnostics() {
        journey("name: x\nsteps: 3\n");
    }

    #[test]
    fn journeys_go_through_the_parser() {
        let j = journey_named("shop", "  - name: a\n    wait: 1ms\n");
        assert_eq!((j.name.as_str(), j.steps.len()), ("shop", 1));
    }
}
