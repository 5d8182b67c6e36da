//! tcp step executor. STUB: being implemented.

use super::{Attempt, FailureClass, StepContext, StepExecutor};
use crate::journey::TcpStep;

impl StepExecutor for TcpStep {
    async fn execute(&self, _ctx: &StepContext<'_>) -> Attempt {
        Attempt::failed(FailureClass::Template, "tcp steps are not implemented yet")
    }
}
