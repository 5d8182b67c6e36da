//! The bundled demo target: a small shop API that the example journeys exercise.
//!
//! It exists so that a newcomer (and the test suite) has something real to monitor on a
//! machine without internet. It listens on loopback only.

mod feed;
mod shop;

use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use shop::{DEMO_PASSWORD, DEMO_USER};

/// A running demo target.
pub struct DemoTarget {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DemoTarget {
    /// Starts the shop on `127.0.0.1:port` (0 = any free port).
    pub async fn start(port: u16) -> std::io::Result<DemoTarget> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = shop::router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "demo target stopped");
            }
        });
        Ok(DemoTarget { addr, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DemoTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
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
