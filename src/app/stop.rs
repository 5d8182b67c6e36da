//! Stopping `waymark serve`, in named stages: no new runs and no new requests, runs in flight
//! get their grace, the writer and the trace exporter are flushed, the duties stopped with the
//! service end, then the writer, the analysis (which drains its queue), the outbox (which
//! delivers what the analysis committed) and, last, the node's beats.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::AppError;
use super::duties::{Running, Until};
use crate::api::AppState;
use crate::store::{Store, StoreWriter};

/// How long stopping waits for the store writer's last runs.
const FLUSH_AT_STOP: Duration = Duration::from_secs(10);
/// How long a later stage waits for its tasks.
const STAGE_WAIT: Duration = Duration::from_secs(5);

/// SIGTERM and SIGINT, installed when the app is built so that a failure is a build error.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, AppError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(AppError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(AppError::Signals)?,
        })
    }

    /// The first signal cancels `token`.
    pub(super) fn cancel_on_signal(mut self, token: CancellationToken) {
        tokio::spawn(async move {
            tokio::select! {
                _ = self.term.recv() => tracing::info!("SIGTERM received"),
                _ = self.int.recv() => tracing::info!("SIGINT received"),
                () = token.cancelled() => return,
            }
            token.cancel();
        });
    }
}

/// A serving app, until it has stopped.
pub(super) struct Stopping {
    pub token: CancellationToken,
    pub server: JoinHandle<std::io::Result<()>>,
    pub running: Running,
    pub store: Store,
    pub state: AppState,
    pub writer: StoreWriter,
    pub writer_task: JoinHandle<()>,
    pub analysis_task: JoinHandle<()>,
}

/// A stage's name in the log, with how long it took.
async fn stage<T>(name: &'static str, work: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    tracing::debug!(stage = name, took = ?started.elapsed(), "stopped");
    out
}

impl Stopping {
    /// Waits for the stop (the HTTP server ending on its own, which it should not, stops the
    /// service too), then goes through the stages in order.
    pub(super) async fn run(mut self) -> Result<(), AppError> {
        let mut served = Ok(());
        tokio::select! {
            () = self.token.cancelled() => {}
            ended = &mut self.server => {
                tracing::error!(?ended, "the HTTP server stopped; shutting down");
                if let Ok(Err(e)) = ended {
                    served = Err(AppError::Serve(e));
                }
                self.token.cancel();
            }
        }
        tracing::info!("shutting down: no new runs; waiting for runs in flight");
        let summary = stage("runs in flight", self.state.scheduler.shutdown()).await;
        stage("store writer flush", async {
            // The writer retries through a database outage; stopping does not wait that long.
            match tokio::time::timeout(FLUSH_AT_STOP, self.writer.flush()).await {
                Ok(Ok(())) => tracing::info!(
                    runs = summary.finished,
                    dropped = self.state.metrics.runs_dropped(),
                    "store writer flushed"
                ),
                Ok(Err(e)) => tracing::error!(error = %e, "store writer flush failed"),
                Err(_) => tracing::error!(
                    queued = self.writer.queue_depth(),
                    "runs not stored: the database did not take them within {FLUSH_AT_STOP:?}"
                ),
            }
        })
        .await;
        let stats = stage("telemetry", self.state.telemetry.shutdown()).await;
        tracing::debug!(?stats, "telemetry shut down");
        stage("HTTP server", async {
            if !self.server.is_finished()
                && let Ok(Ok(Err(e))) = tokio::time::timeout(STAGE_WAIT, &mut self.server).await
            {
                served = Err(AppError::Serve(e));
            }
        })
        .await;
        stage("duties", self.running.stop(Until::Service, None)).await;
        stage("API pool", self.state.store.close()).await;
        drop(self.state);
        stage("store writer", async {
            drop(self.writer);
            let _ = tokio::time::timeout(STAGE_WAIT, self.writer_task).await;
        })
        .await;
        // The feed (the last sender) stopped with the duties: the analysis queue drains.
        stage("analysis", async {
            let _ = tokio::time::timeout(STAGE_WAIT, self.analysis_task).await;
        })
        .await;
        let running = &mut self.running;
        stage(
            "outbox",
            running.stop(Until::AnalysisDrained, Some(STAGE_WAIT)),
        )
        .await;
        stage("cluster", running.stop(Until::End, Some(STAGE_WAIT))).await;
        stage("store", self.store.close()).await;
        tracing::info!("waymark stopped");
        served
    }
}
