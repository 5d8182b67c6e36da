//! Retention: raw runs and rollups older than `retention.raw` / `retention.rollup` are
//! pruned every hour (the first pass shortly after start), in small batches; expired dashboard
//! sessions go too, and so do run claims older than a day (a claim only matters while its tick
//! is due), nodes silent for a day, run feed entries older than a day (analysed long since) and
//! relayed commands older than a day (answered or withdrawn within seconds).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Retention;
use crate::store::{Expiring, Pruned, Store, StoreError};

pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(30);
pub const EVERY: Duration = Duration::from_secs(3600);
pub const BATCH: u32 = 500;

/// One pass as of `now`.
pub async fn prune_once(
    store: &Store,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Pruned, StoreError> {
    let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    store
        .runs()
        .prune(ago(retention.raw), ago(retention.rollup), BATCH)
        .await
}

pub async fn run(store: Store, retention: Retention, stop: CancellationToken) {
    let mut next = tokio::time::Instant::now() + FIRST_PASS_AFTER;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let now = Utc::now();
        let day_ago = now - chrono::Duration::days(1);
        let small = [
            store.prune(Expiring::Sessions, now).await,
            store.prune(Expiring::Claims, day_ago).await,
            store.prune(Expiring::Nodes, day_ago).await,
            store.prune(Expiring::Feed, day_ago).await,
            store.prune(Expiring::Commands, day_ago).await,
        ];
        if let Some(Err(e)) = small.iter().find(|r| r.is_err()) {
            tracing::warn!(error = %e, "retention: pruning sessions, claims, nodes, the run feed or commands failed");
        }
        match prune_once(&store, &retention, Utc::now()).await {
            Ok(p) if p.runs + p.rollups > 0 => {
                tracing::info!(runs = p.runs, rollups = p.rollups, "retention: pruned")
            }
            Ok(_) => tracing::debug!("retention: nothing to prune"),
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
        }
        next += EVERY;
    }
}
