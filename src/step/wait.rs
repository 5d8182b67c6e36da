//! `wait` steps: pause the journey, bounded by the step's deadline.

use super::{Attempt, FailureClass, StepContext, StepExecutor};
use crate::journey::WaitStep;

impl StepExecutor for WaitStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let started = tokio::time::Instant::now();
        let until = started + self.duration;
        let mut attempt = if until > ctx.deadline {
            tokio::time::sleep_until(ctx.deadline).await;
            Attempt::failed(
                FailureClass::Timeout,
                format!(
                    "waiting {} would pass the step's deadline",
                    humantime::format_duration(self.duration)
                ),
            )
        } else {
            tokio::time::sleep_until(until).await;
            Attempt::default()
        };
        attempt.timings.total = Some(started.elapsed());
        attempt.facts.response_time = attempt.timings.total;
        attempt
    }
}
