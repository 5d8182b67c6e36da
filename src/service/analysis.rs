//! The analysis task: feeds every finished run to the anomaly [`Engine`] and logs the
//! episodes it starts and ends. Runs reach it through a bounded queue that the scheduler's
//! sink never waits on; at shutdown the queue is drained before the task ends.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::baseline::Transition;
use crate::baseline::engine::Engine;
use crate::journey::Journey;
use crate::runner::RunResult;

/// Runs waiting for analysis before new ones are dropped (and counted).
pub const QUEUE: usize = 10_000;

pub type Sender = mpsc::Sender<(Arc<Journey>, RunResult)>;

pub fn channel() -> (Sender, mpsc::Receiver<(Arc<Journey>, RunResult)>) {
    mpsc::channel(QUEUE)
}

/// Until every sender is gone (the scheduler has stopped), then returns.
pub async fn run(mut engine: Engine, mut runs: mpsc::Receiver<(Arc<Journey>, RunResult)>) {
    while let Some((journey, result)) = runs.recv().await {
        match engine.observe(&journey, &result).await {
            Ok(events) => {
                for event in events {
                    let e = event.transition.episode();
                    let s = &event.series;
                    match event.transition {
                        Transition::Started(_) => tracing::warn!(
                            journey = %s.journey, step = %s.step, location = %s.location,
                            detector = e.detector.as_str(), episode = event.id,
                            baseline = e.baseline, value = e.peak_value,
                            "anomaly episode started"
                        ),
                        Transition::Ended(_) => tracing::info!(
                            journey = %s.journey, step = %s.step, location = %s.location,
                            detector = e.detector.as_str(), episode = event.id,
                            "anomaly episode ended"
                        ),
                    }
                }
            }
            Err(e) => tracing::error!(
                journey = %result.journey,
                error = %e,
                "anomaly episode could not be stored"
            ),
        }
    }
}
