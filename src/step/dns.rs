//! dns step executor. STUB: being implemented.

use super::{Attempt, FailureClass, StepContext, StepExecutor};
use crate::journey::DnsStep;

impl StepExecutor for DnsStep {
    async fn execute(&self, _ctx: &StepContext<'_>) -> Attempt {
        Attempt::failed(FailureClass::Template, "dns steps are not implemented yet")
    }
}
