//! The bundled demo target: a small shop that the example journeys exercise, with a payments
//! service beside it, faults to inject ([`Faults`]) and OpenTelemetry server spans that
//! continue Waymark's traces.
//!
//! It exists so that a newcomer (and the test suite) has something real to monitor on a
//! machine without internet, and something to break on purpose. It listens on loopback only.
//! Its data lives in a private in-memory SQLite database: two targets in one process share
//! nothing.

mod chaos;
mod db;
mod faults;
mod history;
pub mod launch;
mod order_stream;
mod payments;
mod shop;
#[cfg(test)]
mod tests;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Telemetry, TelemetryConfig, TelemetryError};

pub use faults::{FaultSet, Faults};
pub use shop::{DEMO_PASSWORD, DEMO_USER};

/// `service.name` of the shop's spans.
const SHOP_SERVICE: &str = "demo-shop";
/// `service.name` of the payments service's spans.
const PAYMENTS_SERVICE: &str = "demo-payments";
/// How long [`DemoTarget::shutdown`] lets requests in flight finish.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("demo database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("demo telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    #[error("demo payments client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// A running demo target: the shop and its payments service.
pub struct DemoTarget {
    shop_addr: SocketAddr,
    payments_addr: SocketAddr,
    faults: Faults,
    state: Arc<shop::Shop>,
    shop_telemetry: Telemetry,
    payments_telemetry: Telemetry,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl DemoTarget {
    /// Starts the shop on 127.0.0.1:`port` (0 = a free port; if `port` is taken, error) and the
    /// payments service on a free loopback port. Spans of the shop are exported with
    /// service.name `demo-shop`, of payments with `demo-payments`, through exporters built from
    /// `telemetry` (same endpoint/protocol; `service_name` overridden). With
    /// `telemetry.export == None` nothing is exported but spans still exist (trace context
    /// still propagates).
    pub async fn start(port: u16, telemetry: &TelemetryConfig) -> Result<DemoTarget, DemoError> {
        let shop = Telemetry::new(&named(telemetry, SHOP_SERVICE))?;
        let payments = Telemetry::new(&named(telemetry, PAYMENTS_SERVICE))?;
        DemoTarget::start_with(port, shop, payments).await
    }

    /// Same, with given `Telemetry` handles (tests inject in-memory exporters through
    /// `Telemetry::with_exporter`).
    pub async fn start_with(
        port: u16,
        shop: Telemetry,
        payments: Telemetry,
    ) -> Result<DemoTarget, DemoError> {
        let shop_listener = bind(port).await?;
        let payments_listener = bind(0).await?;
        let shop_addr = local_addr(&shop_listener)?;
        let payments_addr = local_addr(&payments_listener)?;

        let faults = Faults::default();
        let stop = CancellationToken::new();
        let state = Arc::new(shop::Shop {
            db: db::Db::open(shop.tracer().clone()).await?,
            orders: order_stream::OrderStream::new(faults.clone(), stop.clone()),
            faults: faults.clone(),
            payments: payments::PaymentsClient::new(payments_addr, shop.tracer().clone())?,
            tracer: shop.tracer().clone(),
            stop: stop.clone(),
        });
        let shop_app = traced(shop::router(Arc::clone(&state)), &shop);
        let payments_app = traced(payments::router(faults.clone()), &payments);
        let tasks = vec![
            serve(shop_listener, shop_app, stop.clone(), SHOP_SERVICE),
            serve(
                payments_listener,
                payments_app,
                stop.clone(),
                PAYMENTS_SERVICE,
            ),
        ];
        Ok(DemoTarget {
            shop_addr,
            payments_addr,
            faults,
            state,
            shop_telemetry: shop,
            payments_telemetry: payments,
            stop,
            tasks,
        })
    }

    /// `http://127.0.0.1:<shop port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shop_addr)
    }

    /// `http://127.0.0.1:<payments port>`.
    pub fn payments_url(&self) -> String {
        format!("http://{}", self.payments_addr)
    }

    /// The faults in force, shared with the running services: setting them takes effect at
    /// once, as `PUT /admin/faults` does.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Stops both servers and flushes/shuts down both tracer providers.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in &mut self.tasks {
            if tokio::time::timeout(GRACE, &mut *task).await.is_err() {
                task.abort();
            }
        }
        self.state.db.close().await;
        self.shop_telemetry.shutdown().await;
        self.payments_telemetry.shutdown().await;
    }
}

impl Drop for DemoTarget {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `config` for one of the demo's services: same export, its own `service.name`.
fn named(config: &TelemetryConfig, service: &str) -> TelemetryConfig {
    TelemetryConfig {
        service_name: Some(service.to_string()),
        ..config.clone()
    }
}

fn traced(router: Router, telemetry: &Telemetry) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        telemetry.tracer().clone(),
        trace::server_span,
    ))
}

async fn bind(port: u16) -> Result<TcpListener, DemoError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| DemoError::Bind {
            addr: format!("127.0.0.1:{port}"),
            source,
        })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, DemoError> {
    listener.local_addr().map_err(|source| DemoError::Bind {
        addr: "127.0.0.1".into(),
        source,
    })
}

fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    service: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = stopped.await {
            tracing::error!(error = %e, service, "demo service stopped");
        }
    })
}

/// Secrets for the demo journeys: the shop password, then whatever the environment provides.
pub struct DemoSecrets(pub crate::journey::template::EnvSecrets);

impl crate::journey::template::SecretSource for DemoSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        self.0
            .secret(name)
            .or_else(|| (name == "SHOP_PASSWORD").then(|| DEMO_PASSWORD.to_string()))
    }
    fn env(&self, name: &str) -> Option<String> {
        self.0.env(name)
    }
}
