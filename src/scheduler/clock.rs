//! Time, injected: the scheduler reads the time and sleeps only through a [`Clock`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A boxed, sendable future, as returned by the scheduler's traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system's wall clock. Sleeps are cut into slices of at most [`SystemClock::RECHECK`] and
/// the wall clock is read again after each, so an NTP step or a suspended machine costs at
/// most one slice of lateness.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    pub const RECHECK: Duration = Duration::from_secs(30);
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let Ok(left) = (deadline - Utc::now()).to_std() else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Self::RECHECK)).await;
            }
        })
    }
}

/// A clock on tokio's timer: `now()` is `origin` plus the tokio time elapsed since creation.
///
/// In a runtime with paused time (`#[tokio::test(start_paused = true)]`), tokio jumps to the
/// next timer whenever every task is idle, so this is a simulated clock: a day of schedule
/// runs in milliseconds, deterministically, and every `tokio::time` sleep elsewhere (a fake
/// executor's "slow run") lives in the same simulated time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be called inside a tokio runtime.
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        Self {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.origin + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let after_origin = (deadline - self.origin).to_std().unwrap_or(Duration::ZERO);
        let at = self.start + after_origin;
        Box::pin(tokio::time::sleep_until(at))
    }
}
