//! Anomaly episodes (see `crate::baseline`): opened when a detector starts one, closed when it
//! ends, listed by the API and read back at start so that open episodes can end normally.

use chrono::{DateTime, Utc};

use super::{Result, Store, StoreError, from_ns, to_ns};
use crate::baseline::{DetectorKind, Episode, SeriesKey, StoredEpisode};

/// Which episodes [`Episodes::episodes`] lists.
#[derive(Debug, Clone, Default)]
pub struct EpisodeFilter {
    pub journey: Option<String>,
    pub open_only: bool,
    /// Episodes that were open at some point at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many; 0 means no limit.
    pub limit: u32,
}

fn ns_of_ms(ms: i64) -> Result<i64> {
    ms.checked_mul(1_000_000)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {ms} ms is out of range")))
}

/// Anomaly episodes.
///
/// Borrowed from the store by [`Store::episodes`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Episodes<'a>(pub(super) &'a Store);

impl Episodes<'_> {
    /// Stores a new (open) episode and returns its id.
    pub async fn open_episode(
        self,
        series: &SeriesKey,
        sensitivity: &str,
        episode: &Episode,
    ) -> Result<i64> {
        let row = EpisodeRow::new(series, sensitivity, episode)?;
        dispatch!(self.0, episodes::insert(&row))
    }

    /// Records how an episode ended (its final peak and run count too).
    pub async fn close_episode(self, id: i64, episode: &Episode) -> Result<()> {
        let end = ns_of_ms(episode.end_ms.unwrap_or(episode.detected_ms))?;
        let args = (
            id,
            end,
            episode.peak_score,
            episode.peak_value,
            i64::from(episode.anomalous_runs),
        );
        dispatch!(self.0, episodes::close(args))
    }

    /// Every open episode (what a restart resumes and what the dashboard shows as active).
    pub async fn open(self) -> Result<Vec<StoredEpisode>> {
        self.episodes(&EpisodeFilter {
            open_only: true,
            ..EpisodeFilter::default()
        })
        .await
    }

    /// Episodes, newest start first.
    pub async fn episodes(self, filter: &EpisodeFilter) -> Result<Vec<StoredEpisode>> {
        let since = filter.since.map(to_ns).transpose()?;
        let limit = match filter.limit {
            0 => i64::MAX,
            n => i64::from(n),
        };
        let journey = filter.journey.as_deref();
        dispatch!(
            self.0,
            episodes::list(journey, filter.open_only, since, limit)
        )
    }
}

/// The columns of one episode, as bound to a statement.
pub(super) struct EpisodeRow<'a> {
    pub series: &'a SeriesKey,
    pub detector: DetectorKind,
    pub sensitivity: &'a str,
    pub start_ns: i64,
    pub detected_ns: i64,
    pub end_ns: Option<i64>,
    pub episode: &'a Episode,
}

impl<'a> EpisodeRow<'a> {
    fn new(series: &'a SeriesKey, sensitivity: &'a str, episode: &'a Episode) -> Result<Self> {
        Ok(EpisodeRow {
            series,
            detector: episode.detector,
            sensitivity,
            start_ns: ns_of_ms(episode.start_ms)?,
            detected_ns: ns_of_ms(episode.detected_ms)?,
            end_ns: episode.end_ms.map(ns_of_ms).transpose()?,
            episode,
        })
    }
}

/// An `anomaly_episodes` row.
#[derive(sqlx::FromRow)]
pub(super) struct StoredRow {
    id: i64,
    journey: String,
    step: String,
    location: String,
    detector: DetectorKind,
    sensitivity: String,
    start_ns: i64,
    detected_ns: i64,
    end_ns: Option<i64>,
    peak_score: f64,
    peak_value: f64,
    baseline: f64,
    anomalous_runs: i64,
}

impl From<StoredRow> for StoredEpisode {
    fn from(row: StoredRow) -> Self {
        StoredEpisode {
            id: row.id,
            series: SeriesKey {
                journey: row.journey,
                step: row.step,
                location: row.location,
            },
            detector: row.detector,
            sensitivity: row.sensitivity,
            start: from_ns(row.start_ns),
            detected: from_ns(row.detected_ns),
            end: row.end_ns.map(from_ns),
            peak_score: row.peak_score,
            peak_value: row.peak_value,
            baseline: row.baseline,
            anomalous_runs: u32::try_from(row.anomalous_runs).unwrap_or(u32::MAX),
        }
    }
}

macro_rules! dialect {
    () => {
        use crate::baseline::StoredEpisode;
        use crate::store::episodes::{EpisodeRow, StoredRow};

        #[rustfmt::skip]
        queries! {
            fn insert(row: &EpisodeRow<'_>) -> i64 = scalar:
                "INSERT INTO anomaly_episodes (journey, step, location, detector, sensitivity, \
         start_ns, detected_ns, end_ns, peak_score, peak_value, baseline, anomalous_runs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &row.series.journey, &row.series.step, &row.series.location, row.detector,
                row.sensitivity, row.start_ns, row.detected_ns, row.end_ns, row.episode.peak_score,
                row.episode.peak_value, row.episode.baseline, i64::from(row.episode.anomalous_runs);

            fn close(
                (id, end_ns, peak_score, peak_value, runs): (i64, i64, f64, f64, i64),
            ) -> () = execute:
                "UPDATE anomaly_episodes SET end_ns = $2, peak_score = $3, peak_value = $4, \
         anomalous_runs = $5 WHERE id = $1",
                id, end_ns, peak_score, peak_value, runs;

            fn list(
                journey: Option<&str>,
                open_only: bool,
                since_ns: Option<i64>,
                limit: i64,
            ) -> Vec<StoredEpisode> = all StoredRow:
                "SELECT * FROM anomaly_episodes \
         WHERE ($1 IS NULL OR journey = $1) AND (NOT $2 OR end_ns IS NULL) \
         AND ($3 IS NULL OR end_ns IS NULL OR end_ns >= $3) \
         ORDER BY start_ns DESC, id DESC LIMIT $4";
        }
    };
}
pub(super) use dialect;
