//! The scheduler's [`RunSink`] in the service: counts each run in the metrics, logs outcome
//! changes, and queues the run for the store writer without ever waiting on it.

use std::sync::Arc;

use crate::run::{Outcome, RunResult};
use crate::scheduler::{BoxFuture, PlannedRun, RunSink};
use crate::service::metrics::Metrics;
use crate::store::{RunRecord, StoreWriter};

/// Where the scheduler's runs go: counted in the metrics, then queued for the store writer.
/// Analysis reads them back from the store's run feed, on the leader (`feed`).
///
/// `try_submit`, not `submit`: a full queue (10 000 runs) means the database has been stuck
/// for minutes; waiting here would hold the run's concurrency permit and its journey's
/// overlap flag, turning a storage outage into a monitoring outage. Such a run is counted
/// (`waymark_store_runs_dropped_total`) and logged instead.
///
/// A run is logged at DEBUG (hundreds a minute would drown the log); a journey whose outcome
/// changes is logged at INFO, once per change.
pub struct StoreSink {
    writer: StoreWriter,
    metrics: Arc<Metrics>,
    outcomes: std::sync::Mutex<std::collections::HashMap<String, Outcome>>,
}

impl StoreSink {
    pub fn new(writer: StoreWriter, metrics: Arc<Metrics>) -> StoreSink {
        StoreSink {
            writer,
            metrics,
            outcomes: Default::default(),
        }
    }

    fn log_change(&self, result: &RunResult) {
        let before = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(result.journey.clone(), result.outcome);
        // A first run that passes is no news; a first run that fails is.
        let changed = before.map_or(result.outcome != Outcome::Passed, |b| b != result.outcome);
        if !changed {
            return;
        }
        let step = result
            .steps
            .iter()
            .find(|s| s.status == crate::run::StepStatus::Failed)
            .map(|s| s.name.as_str());
        tracing::info!(
            journey = %result.journey,
            before = before.map(|b| format!("{b:?}")).unwrap_or_else(|| "none".into()),
            outcome = ?result.outcome,
            step,
            run_id = %result.run_id,
            "journey outcome changed"
        );
    }
}

impl RunSink for StoreSink {
    fn record(&self, run: PlannedRun, result: RunResult) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.metrics.record_run(&result, run.lag);
            self.log_change(&result);
            let record = RunRecord {
                result,
                planned_at: run.planned,
                scheduling_lag: run.lag,
                journey_sha256: run.journey.source.content_sha256.clone(),
            };
            if let Err(record) = self.writer.try_submit(record) {
                self.metrics.record_dropped();
                tracing::error!(
                    journey = %record.result.journey,
                    run_id = %record.result.run_id,
                    "run not stored: the store writer's queue is full or closed"
                );
            }
        })
    }
}
