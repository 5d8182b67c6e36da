//! websocket step executor. STUB: being implemented.

use super::{Attempt, FailureClass, StepContext, StepExecutor};
use crate::journey::WebsocketStep;

impl StepExecutor for WebsocketStep {
    async fn execute(&self, _ctx: &StepContext<'_>) -> Attempt {
        Attempt::failed(
            FailureClass::Template,
            "websocket steps are not implemented yet",
        )
    }
}
