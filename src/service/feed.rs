//! The leader's reader of the run feed: every run any node stored, in the order stored, sent
//! to the analysis task with its position. It starts at the `analysis` cursor (where the last
//! leader's analysis stopped; at the feed's head the first time, so history is not replayed)
//! and polls every [`POLL`].
//!
//! PostgreSQL hands out `seq` values before commits, so a later entry may be visible while an
//! earlier one is still committing: a gap is waited for up to [`GAP_WAIT`] (then taken as a
//! rolled-back insert) before the entries after it are read.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::analysis::{CURSOR, Sender};
use crate::api::Catalog;
use crate::store::Store;

pub const POLL: Duration = Duration::from_millis(250);
pub const GAP_WAIT: Duration = Duration::from_secs(5);
const BATCH: u32 = 200;

/// Until `stop` (or the analysis task is gone).
pub async fn run(
    store: Store,
    catalog: Arc<RwLock<Catalog>>,
    runs: Sender,
    stop: CancellationToken,
) {
    let mut position = None;
    loop {
        if position.is_none() {
            position = match store.cursor(CURSOR).await {
                Ok(Some(p)) => Some(p),
                Ok(None) => store.feed_head().await.ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "feed: cursor not read");
                    None
                }
            };
        }
        if let Some(p) = position.as_mut()
            && let Err(e) = read(&store, &catalog, &runs, p).await
        {
            if runs.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "feed: runs not read");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Sends the entries after `position` (as far as no gap is pending), moving it.
async fn read(
    store: &Store,
    catalog: &RwLock<Catalog>,
    runs: &Sender,
    position: &mut i64,
) -> crate::store::Result<()> {
    let gap_wait = chrono::Duration::from_std(GAP_WAIT).unwrap_or_default();
    for entry in store.feed_after(*position, BATCH).await? {
        if entry.seq != *position + 1 && Utc::now() - entry.recorded_at < gap_wait {
            break;
        }
        let Some(stored) = store.run(entry.run_id).await? else {
            *position = entry.seq;
            continue;
        };
        let journey = catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .journeys
            .get(&stored.result.journey)
            .cloned();
        if let Some(journey) = journey
            && runs
                .send((journey, stored.result, entry.seq))
                .await
                .is_err()
        {
            return Ok(());
        }
        *position = entry.seq;
    }
    Ok(())
}
