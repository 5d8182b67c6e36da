//! The run feed: every stored run in the order it was stored (`seq`), whichever node stored
//! it, and named cursors into it. The leader's analysis reads the feed from its cursor and
//! moves the cursor after each run, so a new leader goes on where the old one stopped.

use chrono::{DateTime, Utc};

use super::{Result, Store, StoredRun, from_ns};

/// One entry of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: i64,
    pub run_id: uuid::Uuid,
    pub recorded_at: DateTime<Utc>,
}

/// The run feed and its cursors.
///
/// Borrowed from the store by [`Store::feed`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a>(pub(super) &'a Store);

impl Feed<'_> {
    /// Up to `limit` entries after `seq`, in order.
    pub async fn feed_after(self, seq: i64, limit: u32) -> Result<Vec<FeedEntry>> {
        dispatch!(self.0, feed::after(seq, limit.into()))
    }

    /// Up to `limit` entries after `seq`, in order, each with its run (`None` if the run has
    /// been pruned since).
    pub async fn feed_runs_after(
        self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<(FeedEntry, Option<StoredRun>)>> {
        let entries = self.feed_after(seq, limit).await?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(Vec::new());
        };
        let mut runs = self.0.runs().fed(seq, last).await?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let run = runs.remove(&e.run_id);
                (e, run)
            })
            .collect())
    }

    /// The last entry's seq (0 for an empty feed).
    pub async fn feed_head(self) -> Result<i64> {
        dispatch!(self.0, feed::head())
    }

    pub async fn cursor(self, name: &str) -> Result<Option<i64>> {
        dispatch!(self.0, feed::cursor(name))
    }

    pub async fn set_cursor(self, name: &str, value: i64) -> Result<()> {
        dispatch!(self.0, feed::set_cursor(name, value))
    }
}

/// A `run_feed` row.
#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    seq: i64,
    run_id: uuid::Uuid,
    recorded_at_ns: i64,
}

impl From<EntryRow> for FeedEntry {
    fn from(row: EntryRow) -> Self {
        FeedEntry {
            seq: row.seq,
            run_id: row.run_id,
            recorded_at: from_ns(row.recorded_at_ns),
        }
    }
}

macro_rules! dialect {
    () => {
        use crate::store::feed::{EntryRow, FeedEntry};

#[rustfmt::skip]
        queries! {
            fn after(seq: i64, limit: i64) -> Vec<FeedEntry> = all EntryRow:
                "SELECT seq, run_id, recorded_at_ns FROM run_feed WHERE seq > $1 \
         ORDER BY seq LIMIT $2";

            fn head() -> i64 = scalar: "SELECT COALESCE(MAX(seq), 0) AS head FROM run_feed";

            fn cursor(name: &str) -> Option<i64> = optional_scalar:
                "SELECT value FROM cursors WHERE name = $1";

            fn set_cursor(name: &str, value: i64) -> () = execute:
                "INSERT INTO cursors (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value";
        }
    };
}
pub(super) use dialect;
