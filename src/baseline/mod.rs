//! Rolling baselines and anomaly detection per journey × step × location.
//!
//! Each series has a [`SeriesDetector`]: a [`LatencyDetector`] fed with the latency of every
//! passing run, and a [`FailureDetector`] fed with every run's pass/fail. Detectors are plain
//! state machines over `(instant, observation)`: they read no clock and do no IO, so the
//! service ([`crate::service::baselines`]), the replay CLI ([`replay`]) and the evaluation benchmark all run
//! exactly the same code. [`shift`] compares two periods for digests.
//!
//! How the detectors work, and the benchmark behind their defaults: docs/anomaly-detection.md.

#![deny(clippy::disallowed_methods)]

mod episode;
mod failure;
mod latency;
mod level;
mod params;
mod period;
pub mod replay;
mod seasonal;
pub mod shift;
pub mod sketch;
mod tail;
#[cfg(test)]
mod test_clock;
mod value;
pub mod window_score;

use serde::Serialize;

pub use episode::{DetectorKind, Episode, EpisodeEvent, SeriesKey, StoredEpisode, Transition};
pub use failure::{FailureDetector, FailurePoint, binomial_tail};
pub use latency::{LatencyBaseline, LatencyDetector, LatencyPoint};
pub use params::{DetectorParams, FailureParams, LatencyParams, ShiftParams};
pub use value::ValueKind;

/// Both detectors of one series.
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    pub latency: LatencyDetector,
    pub failure: FailureDetector,
}

/// What one run did to a series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailurePoint>,
    #[serde(skip)]
    pub transitions: Vec<Transition>,
}

impl Observation {
    /// Flagged by either detector.
    pub fn is_anomalous(&self) -> bool {
        self.latency.is_some_and(|p| p.anomalous) || self.failure.is_some_and(|p| p.anomalous)
    }
}

impl SeriesDetector {
    pub fn new(params: DetectorParams) -> SeriesDetector {
        SeriesDetector {
            latency: LatencyDetector::new(params.latency),
            failure: FailureDetector::new(params.failure),
        }
    }

    pub fn set_params(&mut self, params: DetectorParams) {
        self.latency.set_params(params.latency);
        self.failure.set_params(params.failure);
    }

    /// Memory held by the series' detectors: fixed (distributions, seasonal slots, recent
    /// runs) but for the values of the current hour.
    pub fn memory_bytes(&self) -> usize {
        self.latency.memory_bytes() + std::mem::size_of::<FailureDetector>()
    }

    /// Judges and learns one run: its latency counts only when it passed (a timeout's
    /// duration says nothing about how fast the step is).
    pub fn observe(&mut self, at_ms: i64, latency_ms: f64, ok: bool) -> Observation {
        let (failure, f_transition) = self.failure.observe(at_ms, ok);
        let (latency, l_transition) = if ok {
            self.latency.observe(at_ms, latency_ms)
        } else {
            (None, None)
        };
        Observation {
            latency,
            failure,
            transitions: l_transition.into_iter().chain(f_transition).collect(),
        }
    }
}
