//! tls step executor. STUB: being implemented.

use super::{Attempt, FailureClass, StepContext, StepExecutor};
use crate::journey::TlsStep;

impl StepExecutor for TlsStep {
    async fn execute(&self, _ctx: &StepContext<'_>) -> Attempt {
        Attempt::failed(FailureClass::Template, "tls steps are not implemented yet")
    }
}
