//! `waymark serve`: the store, the writer, the journeys, the scheduler and the HTTP API in one
//! process, under one [`CancellationToken`].
//!
//! [`App::build`] connects and migrates the store, loads the journeys, binds the listener
//! (port 0 picks a free one: see [`App::port`]) and starts scheduling. [`App::run_until_stopped`]
//! serves until SIGINT/SIGTERM (or [`App::shutdown_token`] is cancelled), then stops in order:
//! no new runs, in-flight runs get `shutdown_grace`, the writer is flushed, the trace exporter
//! is shut down.

mod analysis;
mod api_runtime;
pub mod baselines;
pub mod catalog;
pub mod cluster;
pub mod commands;
mod feed;
pub mod metrics;
pub mod outbox;
mod reload;
mod retention;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::engine::Engine as AlertEngine;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::journey::Schedule;
use crate::journey::parse::ParseOptions;
use crate::journey::template::{EnvSecrets, SecretSource};
use crate::run::{Outcome, RunResult};
use crate::runner::Runner;
use crate::scheduler::{
    BoxFuture, PlannedRun, RunExecutor, RunSink, RunnerExecutor, Scheduler, SchedulerConfig,
    SystemClock,
};
use crate::service::catalog::Catalog;
use crate::service::commands::{AlertHandle, relay};
use crate::service::metrics::Metrics;
use crate::service::outbox::Outbox;
use crate::store::{RunRecord, Store, StoreError, StoreWriter, WriterConfig};
use crate::telemetry::{Telemetry, TelemetryConfig, TelemetryError};
use cluster::{ClaimingExecutor, Cluster};

pub use analysis::ShownChanged;
pub use reload::Reloader;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("store {database}: {source}")]
    Store {
        database: String,
        source: StoreError,
    },
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the API's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// The database URL without its password, for logs and messages.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Connects to the database and applies the migrations not applied yet (`waymark migrate`).
pub async fn migrate(database_url: &str) -> Result<(), ServiceError> {
    let store = Store::connect(database_url)
        .await
        .map_err(|source| ServiceError::Store {
            database: redacted_url(database_url),
            source,
        })?;
    store.close().await;
    Ok(())
}

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

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    /// Requests run here, away from the probes ([`api_runtime`]).
    api: api_runtime::ApiRuntime,
    /// The service's own pool: probes, analysis and duties; requests use the state's.
    store: Store,
    state: AppState,
    scheduler: Arc<Scheduler>,
    writer: StoreWriter,
    writer_task: tokio::task::JoinHandle<()>,
    analysis_task: tokio::task::JoinHandle<()>,
    /// Kept for the feed, which sends runs to analysis while this node leads.
    analysis_tx: analysis::Sender,
    outbox: Outbox,
    telemetry: Telemetry,
    reloader: Reloader,
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
    signals: Option<Signals>,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// What a process that embeds the service (`waymark demo`) changes in a plain `serve`.
#[derive(Clone, Default)]
pub struct Embedding {
    /// Template variables set for every journey, as `--var` does for `waymark run`.
    pub overrides: std::collections::BTreeMap<String, String>,
    /// Where `{{ secret.NAME }}` comes from; the environment when `None`.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Every journey runs on this schedule instead of its own.
    pub schedule: Option<Schedule>,
}

impl App {
    /// Builds the service with tracing configured by the standard `OTEL_*` variables.
    pub async fn build(config: Config) -> Result<App, ServiceError> {
        let telemetry = TelemetryConfig::from_env(|k| std::env::var(k).ok())?;
        App::build_with(config, telemetry).await
    }

    /// Everything but serving: store, writer, journeys, scheduler, listener.
    pub async fn build_with(
        config: Config,
        telemetry: TelemetryConfig,
    ) -> Result<App, ServiceError> {
        App::build_embedded(config, telemetry, Embedding::default()).await
    }

    /// [`App::build_with`], changed as `embedding` says.
    pub async fn build_embedded(
        config: Config,
        telemetry: TelemetryConfig,
        embedding: Embedding,
    ) -> Result<App, ServiceError> {
        let database = redacted_url(&config.database_url);
        let store = Store::connect(&config.database_url)
            .await
            .map_err(|source| ServiceError::Store {
                database: database.clone(),
                source,
            })?;
        let (writer, writer_task) = StoreWriter::spawn(store.clone(), WriterConfig::default());
        let telemetry = Telemetry::new(&telemetry)?;
        let metrics = Arc::new(Metrics::new());
        let (analysis_tx, analysis_rx) = analysis::channel();
        let parse_options = ParseOptions {
            extra_vars: embedding.overrides.keys().cloned().collect(),
            ..ParseOptions::default()
        };
        let runner = Runner {
            location: config.location.clone(),
            secrets: embedding
                .secrets
                .unwrap_or_else(|| Arc::new(EnvSecrets::default())),
            overrides: embedding.overrides,
            telemetry: telemetry.clone(),
        };
        // Bound here, served by the API's runtime (registered with its reactor).
        let bind = |source| ServiceError::Bind {
            addr: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let api = api_runtime::ApiRuntime::start().map_err(ServiceError::Runtime)?;
        let listener = {
            let _api = api.handle().enter();
            TcpListener::from_std(listener).map_err(bind)?
        };
        // An in-memory database cannot have a second pool: the API shares the service's.
        let api_store = if Store::is_in_memory(&config.database_url) {
            store.clone()
        } else {
            let url = config.database_url.clone();
            api.handle()
                .spawn(async move { Store::connect(&url).await })
                .await
                .map_err(|e| ServiceError::Runtime(std::io::Error::other(e)))?
                .map_err(|source| ServiceError::Store {
                    database: database.clone(),
                    source,
                })?
        };
        let node_id = cluster::node_identity(config.node_id.as_deref(), &config.location, addr);
        let cluster = Cluster::new(store.clone(), &config.location, node_id);
        let executor: Arc<dyn RunExecutor> = Arc::new(ClaimingExecutor {
            inner: RunnerExecutor {
                runner,
                sink: StoreSink::new(writer.clone(), metrics.clone()),
            },
            cluster: cluster.clone(),
            location: config.location.clone(),
        });
        let catalog = Arc::new(RwLock::new(Catalog::default()));
        let scheduler = Arc::new(Scheduler::new(
            Vec::<Arc<crate::journey::Journey>>::new(),
            executor,
            Arc::new(SystemClock),
            SchedulerConfig {
                max_concurrent_runs: config.concurrency,
                shutdown_grace: config.shutdown_grace,
            },
        ));
        let mut reloader = Reloader::new(
            config.journeys.clone(),
            store.clone(),
            catalog.clone(),
            scheduler.clone(),
        )
        .with(parse_options, embedding.schedule)
        .at(config.location.clone());
        reloader.poll().await;
        let engine = match analysis::warmed_baselines(&store, &catalog).await {
            Ok((engine, series)) => {
                tracing::info!(series, "anomaly baselines warmed up from rollups");
                engine
            }
            Err(e) => {
                tracing::error!(error = %e, "anomaly baselines start empty");
                crate::service::baselines::Engine::new(store.clone())
            }
        };
        let outbox = Outbox::new(&config.alerting, store.clone(), metrics.clone());
        let status = Arc::new(crate::api::status::StatusCache::default());
        let lookback = config
            .alerting
            .reopen_within
            .max(config.alerting.flapping.window);
        let mut analysis = analysis::Analysis {
            baseline: engine,
            alerts: AlertEngine::new(&config.alerting.engine_settings()),
            store: store.clone(),
            outbox: outbox.waker(),
            metrics: metrics.clone(),
            lookback: chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::MAX),
            catalog: catalog.clone(),
            warmed: std::time::Instant::now(),
            status: status.clone(),
            outcomes: Default::default(),
        };
        match analysis.resume(analysis.lookback).await {
            Ok(active) => tracing::info!(active, "incidents resumed"),
            Err(e) => tracing::error!(error = %e, "incidents could not be resumed"),
        }
        let (alerts, commands) = AlertHandle::channel();
        let alerts = alerts.relayed(store.clone(), cluster.node_id(), cluster.leadership());
        let analysis_task = tokio::spawn(analysis.run(analysis_rx, commands, cluster.leadership()));

        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).map_err(ServiceError::Signals)?,
                int: signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?,
            }
        };
        let (journeys, problems) = {
            let c = catalog.read().unwrap_or_else(|e| e.into_inner());
            (c.journeys.len(), c.problems.len())
        };
        tracing::info!(
            listen = %addr,
            database = %database,
            journeys_dir = %config.journeys.display(),
            journeys,
            problems,
            location = %config.location,
            exporting_traces = telemetry.endpoint().unwrap_or("no"),
            "waymark serving"
        );
        let state = AppState {
            config: Arc::new(config),
            store: api_store,
            catalog,
            scheduler: scheduler.clone(),
            metrics,
            writer: Some(writer.clone()),
            telemetry: Some(telemetry.clone()),
            alerts: Some(alerts),
            status,
            cluster: Some(cluster.clone()),
            login: Arc::default(),
        };
        Ok(App {
            listener,
            addr,
            api,
            store,
            state,
            scheduler,
            writer,
            writer_task,
            analysis_task,
            analysis_tx,
            outbox,
            telemetry,
            reloader,
            cluster,
            shutdown: CancellationToken::new(),
            signals: Some(signals),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancelling it stops the service as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until a signal or the shutdown token, then shuts down in order.
    pub async fn run_until_stopped(mut self) -> Result<(), ServiceError> {
        let token = self.shutdown.clone();
        if let Some(mut signals) = self.signals.take() {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = signals.term.recv() => tracing::info!("SIGTERM received"),
                    _ = signals.int.recv() => tracing::info!("SIGINT received"),
                    () = token.cancelled() => return,
                }
                token.cancel();
            });
        }
        let tasks = TaskTracker::new();
        let reloader = self.reloader;
        tasks.spawn(reloader.run(token.clone()));
        // The node beats (and may lead) until the very end, after the outbox: notifications
        // queued while the service stops are still delivered by it if it leads.
        let cluster_stop = CancellationToken::new();
        self.cluster.beat(&self.state.catalog).await;
        let cluster_task = tokio::spawn(
            self.cluster
                .clone()
                .run(self.state.catalog.clone(), cluster_stop.clone()),
        );
        let leadership = self.cluster.leadership();
        let outbox_stop = CancellationToken::new();
        let outbox = Arc::new(self.outbox);
        let outbox_task = tokio::spawn(cluster::while_leader(
            leadership.clone(),
            outbox_stop.clone(),
            move |term| {
                let outbox = outbox.clone();
                async move { outbox.run(term).await }
            },
        ));
        let config = &self.state.config;
        if config.digest.enabled {
            let cycle = Arc::new(crate::digest::DigestCycle::new(
                config.digest.clone(),
                config.alerting.digest_delivery(),
                self.store.clone(),
            ));
            let catalog = self.state.catalog.clone();
            tasks.spawn(cluster::while_leader(
                leadership.clone(),
                token.clone(),
                move |term| {
                    let (cycle, catalog) = (cycle.clone(), catalog.clone());
                    async move {
                        let journeys = || {
                            let c = catalog.read().unwrap_or_else(|e| e.into_inner());
                            c.journeys.values().cloned().collect()
                        };
                        cycle.run(journeys, term).await
                    }
                },
            ));
        }
        let (store, retention) = (self.store.clone(), self.state.config.retention.clone());
        tasks.spawn(cluster::while_leader(
            leadership.clone(),
            token.clone(),
            move |term| retention::run(store.clone(), retention.clone(), term),
        ));
        let (store, catalog, metrics) = (
            self.store.clone(),
            self.state.catalog.clone(),
            self.state.metrics.clone(),
        );
        tasks.spawn(cluster::while_leader(
            leadership.clone(),
            token.clone(),
            move |term| cluster::settle(store.clone(), catalog.clone(), metrics.clone(), term),
        ));
        if let Some(alerts) = &self.state.alerts {
            let (store, local, node) = (self.store.clone(), alerts.local(), self.cluster.node_id());
            tasks.spawn(cluster::while_leader(
                leadership.clone(),
                token.clone(),
                move |term| relay::serve(store.clone(), local.clone(), node.clone(), term),
            ));
        }
        let (store, catalog, runs) = (
            self.store.clone(),
            self.state.catalog.clone(),
            self.analysis_tx,
        );
        tasks.spawn(cluster::while_leader(
            leadership,
            token.clone(),
            move |term| feed::run(store.clone(), catalog.clone(), runs.clone(), term),
        ));

        let app =
            api::router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, app)
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .into_future();
        let mut server = self.api.handle().spawn(server);

        // The HTTP server ending on its own (it should not) stops the service too.
        let mut served = Ok(());
        tokio::select! {
            () = token.cancelled() => {}
            ended = &mut server => {
                tracing::error!(?ended, "the HTTP server stopped; shutting down");
                if let Ok(Err(e)) = ended {
                    served = Err(ServiceError::Serve(e));
                }
                token.cancel();
            }
        }
        tracing::info!("shutting down: no new runs; waiting for runs in flight");
        tasks.close();
        let summary = self.scheduler.shutdown().await;
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
        let stats = self.telemetry.shutdown().await;
        tracing::debug!(?stats, "telemetry shut down");
        if !server.is_finished()
            && let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), server).await
        {
            served = Err(ServiceError::Serve(e));
        }
        tasks.wait().await;
        let store = self.store.clone();
        self.state.store.close().await;
        drop(self.state);
        drop(self.scheduler);
        drop(self.writer);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.writer_task).await;
        // The feed (the last sender) has stopped with the other tasks: the analysis queue drains.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.analysis_task).await;
        outbox_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), outbox_task).await;
        cluster_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), cluster_task).await;
        store.close().await;
        tracing::info!("waymark stopped");
        served
    }
}

/// How long stopping waits for the store writer's last runs.
const FLUSH_AT_STOP: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
