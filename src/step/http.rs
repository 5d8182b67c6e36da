//! HTTP step executor. STUB: being implemented.

use super::{Attempt, StepContext, StepExecutor};
use crate::journey::HttpStep;

impl StepExecutor for HttpStep {
    async fn execute(&self, _ctx: &StepContext<'_>) -> Attempt {
        todo!()
    }
}
