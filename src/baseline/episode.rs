//! Anomaly episodes: a series' anomalous stretch from its first flagged run to the first of
//! the normal runs that ended it, as the detectors report them and the store keeps them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

crate::words::words! {
    /// Which detector raised an episode.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DetectorKind {
        /// Slower (or higher) than the baseline.
        Latency,
        /// Faster (or lower) than the baseline: often a dependency answering at once with an
        /// error or an empty result.
        LatencyDrop,
        FailureRate,
    }
}

/// One episode, open (`end_ms == None`) or over. Instants are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub detector: DetectorKind,
    /// The first anomalous run of the episode.
    pub start_ms: i64,
    /// The run that made it an episode.
    pub detected_ms: i64,
    /// The first normal run after the last anomalous one, once the episode is over.
    pub end_ms: Option<i64>,
    /// Largest score seen: robust deviations (latency) or −log10 p (failure rate).
    pub peak_score: f64,
    /// The observation at the peak: milliseconds, or the recent failure rate.
    pub peak_value: f64,
    /// What the baseline expected when the episode was detected: milliseconds, or a failure rate.
    pub baseline: f64,
    /// Runs judged anomalous during the episode.
    pub anomalous_runs: u32,
}

/// A change of a series' episode state, as returned by a detector.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started(Episode),
    Ended(Episode),
}

impl Transition {
    pub fn episode(&self) -> &Episode {
        match self {
            Transition::Started(e) | Transition::Ended(e) => e,
        }
    }
}

/// The series an episode belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub journey: String,
    pub step: String,
    pub location: String,
}

/// An episode as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEpisode {
    pub id: i64,
    #[serde(flatten)]
    pub series: SeriesKey,
    pub detector: DetectorKind,
    pub sensitivity: String,
    pub start: DateTime<Utc>,
    pub detected: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// Robust deviations (latency) or −log10 p (failure rate) at the episode's peak.
    pub peak_score: f64,
    /// Milliseconds (latency) or the recent failure rate, at the peak.
    pub peak_value: f64,
    /// What the baseline expected when the episode was detected (ms, or a failure rate).
    pub baseline: f64,
    pub anomalous_runs: u32,
}

impl StoredEpisode {
    /// The detector-side view, to resume an open episode after a restart.
    pub fn episode(&self) -> Episode {
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        Episode {
            detector: self.detector,
            start_ms: ms(self.start),
            detected_ms: ms(self.detected),
            end_ms: self.end.map(ms),
            peak_score: self.peak_score,
            peak_value: self.peak_value,
            baseline: self.baseline,
            anomalous_runs: self.anomalous_runs,
        }
    }
}

/// An episode that started or ended, as stored (`id`) — what alerting will consume.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeEvent {
    pub id: i64,
    pub series: SeriesKey,
    pub transition: Transition,
}
