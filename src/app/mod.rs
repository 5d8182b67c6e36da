//! `waymark serve` put together: the composition root. [`App::build`] wires the store, the
//! writer, telemetry, the runner, the scheduler, the service's duties and the API's state, and
//! binds the listener (port 0 picks a free one: see [`App::port`]); [`App::run_until_stopped`]
//! starts the duties listed in `duties.rs` and, on SIGINT/SIGTERM (or
//! [`App::shutdown_token`]), stops in the named stages of `stop.rs`.

mod api_runtime;
pub mod digest;
mod duties;
mod stop;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::alert::engine::Engine as AlertEngine;
use crate::api::AppState;
use crate::config::Config;
use crate::journey::Schedule;
use crate::journey::parse::ParseOptions;
use crate::journey::template::{EnvSecrets, SecretSource};
use crate::runner::Runner;
use crate::scheduler::{RunExecutor, RunnerExecutor, Scheduler, SchedulerConfig, SystemClock};
use crate::service::analysis::{self, Analysis};
use crate::service::catalog::Catalog;
use crate::service::cluster::{self, ClaimingExecutor, Cluster};
use crate::service::commands::AlertHandle;
use crate::service::metrics::Metrics;
use crate::service::outbox::Outbox;
use crate::service::reload::Loading;
use crate::service::{Reloader, StoreSink, baselines};
use crate::store::{Store, StoreError, StoreWriter, WriterConfig};
use crate::telemetry::{Telemetry, TelemetryConfig, TelemetryError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
pub async fn migrate(database_url: &str) -> Result<(), AppError> {
    let store = connect(database_url).await?;
    store.close().await;
    Ok(())
}

async fn connect(database_url: &str) -> Result<Store, AppError> {
    Store::connect(database_url)
        .await
        .map_err(|source| AppError::Store {
            database: redacted_url(database_url),
            source,
        })
}

/// How the service is built beyond its config file: tracing, and what a process that embeds
/// it (`waymark demo`) changes in a plain `serve`.
#[derive(Clone, Default)]
pub struct Options {
    pub telemetry: TelemetryConfig,
    /// Template variables set for every journey, as `--var` does for `waymark run`.
    pub overrides: std::collections::BTreeMap<String, String>,
    /// Where `{{ secret.NAME }}` comes from; the environment when `None`.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Every journey runs on this schedule instead of its own.
    pub schedule: Option<Schedule>,
}

impl Options {
    /// Tracing as the standard `OTEL_*` variables say; nothing embedded.
    pub fn from_env() -> Result<Options, AppError> {
        Ok(Options {
            telemetry: TelemetryConfig::from_env(|k| std::env::var(k).ok())?,
            ..Options::default()
        })
    }
}

/// The service, built and not yet serving.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    /// Requests run here, away from the probes ([`api_runtime`]).
    api: api_runtime::ApiRuntime,
    /// The service's own pool: probes, analysis and duties; requests use the state's.
    store: Store,
    state: AppState,
    writer: StoreWriter,
    writer_task: tokio::task::JoinHandle<()>,
    analysis_task: tokio::task::JoinHandle<()>,
    /// Kept for the feed, which sends runs to analysis while this node leads.
    analysis_tx: analysis::Sender,
    outbox: Outbox,
    reloader: Reloader,
    shutdown: CancellationToken,
    signals: stop::Signals,
}

impl App {
    /// Everything but serving: store, writer, journeys, scheduler, analysis, listener.
    pub async fn build(config: Config, options: Options) -> Result<App, AppError> {
        let database = redacted_url(&config.database_url);
        let store = connect(&config.database_url).await?;
        let (writer, writer_task) = StoreWriter::spawn(store.clone(), WriterConfig::default());
        let telemetry = Telemetry::new(&options.telemetry)?;
        let metrics = Arc::new(Metrics::new());
        let (listener, addr, api) = bind(config.listen)?;
        let api_store = api_pool(&api, &store, &config.database_url).await?;
        let node_id = cluster::node_identity(config.node_id.as_deref(), &config.location, addr);
        let cluster = Cluster::new(store.clone(), &config.location, node_id);
        let runner = Runner {
            location: config.location.clone(),
            secrets: options
                .secrets
                .unwrap_or_else(|| Arc::new(EnvSecrets::default())),
            overrides: options.overrides.clone(),
            telemetry: telemetry.clone(),
        };
        let executor: Arc<dyn RunExecutor> = Arc::new(ClaimingExecutor {
            inner: RunnerExecutor {
                runner,
                sink: StoreSink::new(writer.clone(), metrics.clone()),
            },
            cluster: cluster.clone(),
            location: config.location.clone(),
        });
        let scheduler = Arc::new(Scheduler::new(
            Vec::<Arc<crate::journey::Journey>>::new(),
            executor,
            Arc::new(SystemClock),
            SchedulerConfig {
                max_concurrent_runs: config.concurrency,
                shutdown_grace: config.shutdown_grace,
            },
        ));
        let catalog = Arc::new(RwLock::new(Catalog::default()));
        let loading = Loading {
            parse: ParseOptions {
                extra_vars: options.overrides.keys().cloned().collect(),
                ..ParseOptions::default()
            },
            schedule: options.schedule,
            location: Some(config.location.clone()),
        };
        let mut reloader = Reloader::new(
            config.journeys.clone(),
            store.clone(),
            catalog.clone(),
            scheduler.clone(),
            loading,
        );
        reloader.poll().await;

        let outbox = Outbox::new(&config.alerting, store.clone(), metrics.clone());
        let status = Arc::new(crate::api::status::StatusCache::default());
        let (analysis_tx, analysis_rx) = analysis::channel();
        let (alerts, commands) = AlertHandle::channel();
        let alerts = alerts.relayed(store.clone(), cluster.node_id(), cluster.leadership());
        let analysis = start_analysis(
            &config,
            store.clone(),
            &catalog,
            outbox.waker(),
            metrics.clone(),
            status.clone(),
        )
        .await;
        let analysis_task = tokio::spawn(analysis.run(analysis_rx, commands, cluster.leadership()));
        let signals = stop::Signals::install()?;
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
            scheduler,
            metrics,
            writer: writer.clone(),
            telemetry,
            alerts,
            status,
            cluster,
            login: Arc::default(),
        };
        Ok(App {
            listener,
            addr,
            api,
            store,
            state,
            writer,
            writer_task,
            analysis_task,
            analysis_tx,
            outbox,
            reloader,
            shutdown: CancellationToken::new(),
            signals,
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

    /// Serves until a signal or the shutdown token, then stops stage by stage.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let token = self.shutdown.clone();
        self.signals.cancel_on_signal(token.clone());
        self.state.cluster.beat(&self.state.catalog).await;
        let running = duties::start(
            duties::list(
                &self.state,
                &self.store,
                self.reloader,
                self.outbox,
                self.analysis_tx,
            ),
            &self.state.cluster,
            &token,
        );
        let app = crate::api::router(self.state.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, app)
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .into_future();
        let server = self.api.handle().spawn(server);
        stop::Stopping {
            token,
            server,
            running,
            store: self.store,
            state: self.state,
            writer: self.writer,
            writer_task: self.writer_task,
            analysis_task: self.analysis_task,
        }
        .run()
        .await
    }
}

/// The listener, bound here and served by the API's runtime (registered with its reactor).
fn bind(
    listen: SocketAddr,
) -> Result<(TcpListener, SocketAddr, api_runtime::ApiRuntime), AppError> {
    let bind = |source| AppError::Bind {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let api = api_runtime::ApiRuntime::start().map_err(AppError::Runtime)?;
    let listener = {
        let _api = api.handle().enter();
        TcpListener::from_std(listener).map_err(bind)?
    };
    Ok((listener, addr, api))
}

/// The API's own pool, connected on its runtime. An in-memory database cannot have a second
/// pool: the API shares the service's.
async fn api_pool(
    api: &api_runtime::ApiRuntime,
    store: &Store,
    url: &str,
) -> Result<Store, AppError> {
    if Store::is_in_memory(url) {
        return Ok(store.clone());
    }
    let owned = url.to_owned();
    api.handle()
        .spawn(async move { Store::connect(&owned).await })
        .await
        .map_err(|e| AppError::Runtime(std::io::Error::other(e)))?
        .map_err(|source| AppError::Store {
            database: redacted_url(url),
            source,
        })
}

/// The analysis of a starting service: baselines warmed from the rollups, incidents resumed
/// from the store (each falls back to empty, logged, if the store cannot say).
async fn start_analysis(
    config: &Config,
    store: Store,
    catalog: &Arc<RwLock<Catalog>>,
    outbox: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    status: Arc<dyn crate::service::ShownChanged>,
) -> Analysis {
    let baseline = match analysis::warmed_baselines(&store, catalog).await {
        Ok((engine, series)) => {
            tracing::info!(series, "anomaly baselines warmed up from rollups");
            engine
        }
        Err(e) => {
            tracing::error!(error = %e, "anomaly baselines start empty");
            baselines::Engine::new(store.clone())
        }
    };
    let lookback = config
        .alerting
        .reopen_within
        .max(config.alerting.flapping.window);
    let mut analysis = Analysis {
        baseline,
        alerts: AlertEngine::new(&config.alerting.engine_settings()),
        store,
        outbox,
        metrics,
        lookback: chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::MAX),
        catalog: catalog.clone(),
        warmed: std::time::Instant::now(),
        status,
        outcomes: Default::default(),
    };
    match analysis.resume(analysis.lookback).await {
        Ok(active) => tracing::info!(active, "incidents resumed"),
        Err(e) => tracing::error!(error = %e, "incidents could not be resumed"),
    }
    analysis
}
