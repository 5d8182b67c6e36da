//! `waymark demo`: the demo target and the whole service in one process. The service is
//! `waymark serve` as configured (the same `WAYMARK_*` overrides, the embedded SQLite default)
//! with three changes: the journeys' `base`, `feed` and `payments` variables point at the demo
//! target, the shop password comes from the demo, and a fresh database starts with simulated
//! history (`super::history`). A dashboard user is added when the configuration has none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::channels::config::HttpUrl;
use crate::config::{Config, DashboardUser};
use crate::journey::Schedule;
use crate::journey::parse::{self, ParseOptions};
use chrono::Utc;

use crate::app::{App, AppError, Options};
use crate::journey::template::EnvSecrets;
use crate::runner::Runner;
use crate::store::{Store, StoreError};
use crate::telemetry::{Telemetry, TelemetryConfig};

use super::{DemoError, DemoSecrets, DemoTarget, history};

/// The dashboard login `waymark demo` adds when the configuration lists no user.
pub const DASHBOARD_USER: &str = "demo";
pub const DASHBOARD_PASSWORD: &str = "waymark-demo";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("demo target: {0}")]
    Target(#[from] DemoError),
    #[error(transparent)]
    Service(#[from] AppError),
    #[error("seeding the demo history: {0}")]
    Seed(#[from] StoreError),
    #[error("cannot find a free port on {0}: {1}")]
    Port(SocketAddr, std::io::Error),
}

#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// The demo shop's port; 0 picks a free one.
    pub port: u16,
    /// Every journey runs this often instead of on its own schedule.
    pub every: Option<Duration>,
    /// Inject faults (`super::chaos`), each phase lasting this long.
    pub chaos: Option<Duration>,
}

/// What `waymark demo` tells its user once everything listens.
#[derive(Debug, Clone)]
pub struct Banner {
    pub dashboard: String,
    pub shop: String,
    pub payments: String,
    pub user: String,
    /// `None` when the configured users' passwords are theirs, not the demo's.
    pub password: Option<String>,
    pub traces: Option<String>,
    pub history_runs: usize,
    pub chaos: Option<Duration>,
}

impl std::fmt::Display for Banner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Waymark demo")?;
        writeln!(f, "  dashboard:   {}/app", self.dashboard)?;
        match &self.password {
            Some(p) => writeln!(f, "  login:       {} / {p}", self.user)?,
            None => writeln!(f, "  login:       a user of your [dashboard] configuration")?,
        }
        writeln!(f, "  status page: {}/", self.dashboard)?;
        writeln!(f, "  API:         {}/api/v1/openapi.json", self.dashboard)?;
        writeln!(
            f,
            "  demo shop:   {} (payments at {})",
            self.shop, self.payments
        )?;
        writeln!(
            f,
            "  faults:      curl -X PUT {}/admin/faults -d '{{\"search_latency_ms\": 400}}'",
            self.shop
        )?;
        match &self.traces {
            Some(endpoint) => writeln!(
                f,
                "  traces:      exported to {endpoint}: each run is one trace with the shop's \
                 server spans in it; the run pages show its trace id"
            )?,
            None => writeln!(
                f,
                "  traces:      not exported; set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
                 (Jaeger, Tempo, a Collector) to see each run with the shop's spans"
            )?,
        }
        if self.history_runs > 0 {
            writeln!(
                f,
                "  history:     {} simulated runs over the last {} days, so baselines are warm",
                self.history_runs,
                super::history::DAYS
            )?;
        }
        match self.chaos {
            Some(p) => writeln!(
                f,
                "  chaos:       a fault every other {} (the log says which)",
                humantime::format_duration(p)
            )?,
            None => writeln!(f, "  chaos:       off (add --chaos to inject faults)")?,
        }
        write!(f, "Ctrl-C stops the demo.")
    }
}

/// Starts the demo target and the service; serves until a signal.
pub async fn run(
    mut config: Config,
    telemetry: TelemetryConfig,
    options: DemoOptions,
    announce: impl FnOnce(&Banner),
) -> Result<(), LaunchError> {
    let target = DemoTarget::start(options.port, &telemetry).await?;
    let base = target.base_url();
    let overrides = variables(&target);

    if config.listen.port() == 0 {
        // The dashboard's address goes into notifications' links before the service binds.
        let probe = std::net::TcpListener::bind(config.listen)
            .map_err(|e| LaunchError::Port(config.listen, e))?;
        config.listen = probe
            .local_addr()
            .map_err(|e| LaunchError::Port(config.listen, e))?;
    }
    let dashboard = format!("http://{}", config.listen);
    if config.alerting.dashboard_url.is_none() {
        // `http://` and a socket address: always a URL.
        config.alerting.dashboard_url = HttpUrl::parse(&dashboard).ok();
    }
    let password = config.dashboard.users.is_empty().then(|| {
        config.dashboard.users.push(DashboardUser {
            name: DASHBOARD_USER.into(),
            password_hash: crate::auth::PasswordHash::of(DASHBOARD_PASSWORD),
        });
        DASHBOARD_PASSWORD.to_string()
    });
    let user = config.dashboard.users[0].name.clone();

    let history_runs = seed_history(&config, &overrides).await?;
    let embedding = Options {
        telemetry,
        secrets: Some(Arc::new(DemoSecrets(EnvSecrets::default()))),
        schedule: options.every.map(Schedule::Every),
        overrides,
    };
    let traces = embedding
        .telemetry
        .export
        .as_ref()
        .map(|e| e.endpoint.clone());
    let app = App::build(config, embedding).await?;
    announce(&Banner {
        dashboard,
        shop: base,
        payments: target.payments_url(),
        user,
        password,
        traces,
        history_runs,
        chaos: options.chaos,
    });
    let chaos = options.chaos.map(|phase| {
        tokio::spawn(super::chaos::run(
            target.faults(),
            phase,
            app.shutdown_token(),
        ))
    });
    let served = app.run_until_stopped().await;
    if let Some(chaos) = chaos {
        let _ = chaos.await;
    }
    target.shutdown().await;
    Ok(served?)
}

/// The journeys' variables that point at `target`.
pub(super) fn variables(target: &DemoTarget) -> BTreeMap<String, String> {
    let base = target.base_url();
    [
        ("feed", base.replacen("http://", "ws://", 1)),
        ("base", base),
        ("payments", target.payments_url()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into()
}

/// `waymark demo --once`: every journey of `journeys` run once against a fresh target and
/// printed (`print` gets each piece of text); true if all passed and every file loaded.
pub async fn once(
    journeys: &std::path::Path,
    port: u16,
    telemetry: &TelemetryConfig,
    trace_url: Option<&str>,
    print: impl Fn(&str),
) -> Result<bool, LaunchError> {
    let traces = Telemetry::new(telemetry).map_err(DemoError::from)?;
    let target = DemoTarget::start(port, telemetry).await?;
    print(&format!("demo shop listening on {}\n\n", target.base_url()));
    let overrides = variables(&target);
    let loaded = parse::load_paths(
        &[journeys.to_path_buf()],
        &ParseOptions {
            extra_vars: overrides.keys().cloned().collect(),
            ..ParseOptions::default()
        },
    );
    for d in &loaded.diagnostics {
        print(&format!("{d}\n"));
    }
    let runner = Runner {
        location: "demo".into(),
        secrets: Arc::new(DemoSecrets(EnvSecrets::default())),
        overrides,
        telemetry: traces.clone(),
    };
    let mut all_passed = loaded.diagnostics.is_empty();
    for journey in &loaded.journeys {
        let result = runner.run(journey).await;
        all_passed &= result.outcome == crate::run::Outcome::Passed;
        print(&(crate::report::text_with_trace_url(&result, trace_url) + "\n"));
    }
    // Every run's trace (and the shop's spans) is complete at the collector before exiting.
    traces.shutdown().await;
    target.shutdown().await;
    Ok(all_passed)
}

/// Seeds a fresh database with the journeys' simulated history, calibrated by three real runs
/// of each journey against the demo target (not stored).
async fn seed_history(
    config: &Config,
    overrides: &BTreeMap<String, String>,
) -> Result<usize, LaunchError> {
    let loaded = parse::load_paths(
        &[PathBuf::from(&config.journeys)],
        &ParseOptions {
            extra_vars: overrides.keys().cloned().collect(),
            ..ParseOptions::default()
        },
    );
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|source| AppError::Store {
            database: crate::app::redacted_url(&config.database_url),
            source,
        })?;
    let journeys: Vec<&crate::journey::Journey> = loaded.journeys.iter().collect();
    let written = match history::needed(&store, &journeys).await {
        Ok(true) => {
            let runner = Runner {
                location: config.location.clone(),
                secrets: Arc::new(DemoSecrets(EnvSecrets::default())),
                overrides: overrides.clone(),
                telemetry: Telemetry::disabled(),
            };
            let mut runs = Vec::new();
            for j in &journeys {
                for _ in 0..3 {
                    runs.push(runner.run(j).await);
                }
            }
            let typical = history::calibrate(&runs);
            history::seed(&store, &journeys, &config.location, Utc::now(), &typical).await
        }
        other => other.map(|_| 0),
    };
    store.close().await;
    Ok(written?)
}
