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
use crate::service::catalog::Catalog;
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
            position = match store.feed().cursor(CURSOR).await {
                Ok(Some(p)) => Some(p),
                Ok(None) => store.feed().feed_head().await.ok(),
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
    for (entry, stored) in store.feed().feed_runs_after(*position, BATCH).await? {
        if entry.seq != *position + 1 && Utc::now() - entry.recorded_at < gap_wait {
            break;
        }
        let Some(stored) = stored else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::{catalog_with, run_record};

    /// An entry after a missing seq (an insert still committing elsewhere) waits; once it is
    /// older than [`GAP_WAIT`] the missing one is taken as rolled back and reading goes on.
    #[tokio::test]
    async fn a_gap_in_the_feed_is_waited_for_then_passed() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (_, catalog) = catalog_with("name: shop\nsteps:\n  - name: a\n    wait: 1ms\n");
        let catalog = RwLock::new(catalog);
        let runs: Vec<_> = (0..2)
            .map(|i| run_record("shop", "eu", Utc::now(), f64::from(i), false, vec![]))
            .collect();
        store.runs().record_now(&runs).await;
        // Seq 3 is missing: 4 is visible, recorded just now.
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        let after_gap =
            sqlx::query("INSERT INTO run_feed (seq, run_id, recorded_at_ns) VALUES (4, $1, $2)")
                .bind(runs[1].result.run_id)
                .bind(Utc::now().timestamp_nanos_opt().unwrap());
        after_gap.execute(pool).await.unwrap();
        let (tx, mut rx) = super::super::analysis::channel();
        let mut position = 0;
        read(&store, &catalog, &tx, &mut position).await.unwrap();
        assert_eq!(position, 2, "stops before the gap");
        let sent: Vec<i64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|(_, _, seq)| seq)
            .collect();
        assert_eq!(sent, [1, 2]);
        read(&store, &catalog, &tx, &mut position).await.unwrap();
        assert_eq!(position, 2, "still waiting");

        let old = Utc::now() - chrono::Duration::from_std(GAP_WAIT * 2).unwrap();
        sqlx::query("UPDATE run_feed SET recorded_at_ns = $1 WHERE seq = 4")
            .bind(old.timestamp_nanos_opt().unwrap())
            .execute(pool)
            .await
            .unwrap();
        read(&store, &catalog, &tx, &mut position).await.unwrap();
        assert_eq!(position, 4);
        assert_eq!(rx.try_recv().unwrap().2, 4);
    }
}
