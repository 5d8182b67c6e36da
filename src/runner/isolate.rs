//! Panic isolation for runs: a bug that panics while one journey runs becomes that run's
//! `error` result ("internal error: …"), logged, and whatever ran it (the scheduler, the CLI)
//! carries on. Stack overflows cannot be caught; the parser's depth limit is what keeps every
//! walk over a journey shallow.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::step::{Failure, FailureClass};

/// A future panicked; the message it carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Panicked(pub String);

/// Runs `fut` to completion, or returns the message of the panic that stopped it.
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| Panicked(panic_message(p.as_ref())))
}

/// The text a panic carried (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The failure recorded for a step (or run) that panicked.
pub(crate) fn internal_failure(message: &str) -> Failure {
    Failure {
        class: FailureClass::Internal,
        message: format!("internal error: {message} (a bug in Waymark; the service carries on)"),
    }
}

/// Tests only: a step with this name panics inside its execution, so tests can prove the
/// isolation without a real bug. Not compiled into any other build.
#[cfg(test)]
pub(crate) const PANIC_STEP_FOR_TESTS: &str = "panic-for-tests";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catch_panic_returns_the_message_of_str_and_string_panics() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
        let r: Result<(), Panicked> = catch_panic(async { panic!("boom") }).await;
        assert_eq!(r, Err(Panicked("boom".to_string())));
        let n = 3;
        let r: Result<(), Panicked> = catch_panic(async move { panic!("boom {n}") }).await;
        assert_eq!(r, Err(Panicked("boom 3".to_string())));
        let r: Result<(), Panicked> = catch_panic(async { std::panic::panic_any(42u8) }).await;
        assert_eq!(r, Err(Panicked("a panic without a message".to_string())));
    }

    #[test]
    fn internal_failures_are_errors_not_target_failures() {
        let f = internal_failure("index out of bounds");
        assert_eq!(f.class, FailureClass::Internal);
        assert!(f.class.is_error());
        assert!(f.message.starts_with("internal error: index out of bounds"));
    }
}
