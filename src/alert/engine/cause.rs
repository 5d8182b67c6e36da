//! What a run says about its journey's health, and the evidence notifications quote.

use crate::alert::{AnomalyCause, Cause};
use crate::baseline::EpisodeEvent;
use crate::baseline::Transition;
use crate::run::{Outcome, RunResult, StepStatus};

/// A run, as the incident rules see it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Health {
    Good,
    /// Passed, but a `degraded_when` condition held.
    Degraded(Cause),
    Failed(Cause),
}

pub(super) fn health(run: &RunResult) -> Health {
    let base = Cause {
        run_id: Some(run.run_id),
        trace_id: (!run.trace_id.is_empty()).then(|| run.trace_id.clone()),
        location: Some(run.location.clone()),
        ..Cause::default()
    };
    if run.outcome != Outcome::Passed {
        let step = run
            .steps
            .iter()
            .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error));
        let Some(step) = step else {
            return Health::Failed(base);
        };
        let failed = step.conditions.iter().find(|c| !c.passed);
        return Health::Failed(Cause {
            step: Some(step.name.clone()),
            dependency: step.dependency.clone(),
            failure_class: step.failure.as_ref().map(|f| f.class.as_str().to_string()),
            condition: failed.map(|c| c.expression.clone()),
            actual: failed.map(|c| c.actual.clone()),
            error: step.failure.as_ref().map(|f| f.message.clone()),
            ..base
        });
    }
    match run
        .steps
        .iter()
        .find_map(|s| s.degraded.first().map(|c| (s, c)))
    {
        Some((step, condition)) => Health::Degraded(Cause {
            step: Some(step.name.clone()),
            dependency: step.dependency.clone(),
            condition: Some(condition.expression.clone()),
            actual: Some(condition.actual.clone()),
            ..base
        }),
        None => Health::Good,
    }
}

/// The cause of a degradation an anomaly episode started.
pub(super) fn anomaly(event: &EpisodeEvent) -> (i64, AnomalyCause) {
    let e = match &event.transition {
        Transition::Started(e) | Transition::Ended(e) => e,
    };
    (
        event.id,
        AnomalyCause {
            episode_id: event.id,
            step: event.series.step.clone(),
            location: event.series.location.clone(),
            detector: e.detector.as_str().to_string(),
            baseline: e.baseline,
            value: e.peak_value,
        },
    )
}
