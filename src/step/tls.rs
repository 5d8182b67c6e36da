//! `tls` steps: a TLS handshake only, and what the peer's leaf certificate says.
//!
//! Connecting is `net::connect`, the handshake and the certificate facts are
//! `tls_client`'s, with no ALPN offered: this is a certificate probe, not an HTTP client.
//! A verification failure (`tls`) leaves the certificate facts empty; use
//! `insecure_skip_verify: true` to inspect a self-signed or expired certificate.

use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout_at;

use super::net::{self, Budget};
use super::tls_client::{self, Alpn, TlsOptions};
use super::{Attempt, Failure, FailureClass, StepContext, StepExecutor, failure, finish};
use crate::journey::TlsStep;
use crate::journey::template::Scope;
use rustls::pki_types::ServerName;

#[cfg(test)]
mod tests;

impl StepExecutor for TlsStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let options = TlsOptions {
            insecure_skip_verify: self.insecure_skip_verify,
            alpn: Alpn::None,
        };
        self.probe(ctx, options.config()).await
    }
}

impl TlsStep {
    /// The host to connect to and the server name to send and verify, rendered before any
    /// traffic: a bad name is the journey's problem, known before connecting.
    pub(crate) fn target(
        &self,
        scope: &Scope<'_>,
    ) -> Result<(String, ServerName<'static>), Failure> {
        let host = self.host.render(scope)?;
        let name = match &self.server_name {
            Some(t) => t.render(scope)?,
            None => host.clone(),
        };
        let sni = tls_client::server_name(&name)
            .map_err(|reason| failure(FailureClass::Template, reason))?;
        Ok((host, sni))
    }

    /// One attempt with the given client configuration (tests bring their own roots).
    async fn probe(&self, ctx: &StepContext<'_>, config: Arc<ClientConfig>) -> Attempt {
        let budget = Budget::new(ctx.deadline);
        let mut attempt = Attempt::default();
        if let Err(failure) = self.run(ctx, config, &budget, &mut attempt).await {
            attempt.failure = Some(failure);
        }
        finish(&mut attempt, budget.elapsed());
        attempt
    }

    async fn run(
        &self,
        ctx: &StepContext<'_>,
        config: Arc<ClientConfig>,
        budget: &Budget,
        attempt: &mut Attempt,
    ) -> Result<(), Failure> {
        let (host, sni) = self.target(&ctx.scope)?;
        let (tcp, peer) = net::connect(&host, self.port, budget, attempt).await?;
        let mut stream = tls_client::handshake(tcp, sni, peer, config, budget, attempt).await?;
        // close_notify, then FIN; the peer's own close_notify is not awaited.
        let _ = timeout_at(budget.deadline(), stream.shutdown()).await;
        Ok(())
    }
}
