//! Detector parameters: the three sensitivity presets, and how a journey's `anomaly:` settings
//! turn into them. The preset values were chosen with `cargo bench --bench anomaly_eval`; see
//! docs/anomaly-detection.md for the figures behind each one.

use std::time::Duration;

use super::value::ValueKind;
use crate::journey::{AnomalySettings, Direction, Seasonality, Sensitivity};

/// Parameters of the latency (or any value) detector of one series: journey × step ×
/// location in the service, one CSV column in replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyParams {
    pub kind: ValueKind,
    pub direction: Direction,
    /// An episode opens when a run's anomaly likelihood reaches `1 − open_p`: when the recent
    /// runs together, or the run alone (see `spike_ratio`), are this improbable under the
    /// learnt model.
    pub open_p: f64,
    /// A run alone must be this many times more improbable than `open_p` to open an episode on
    /// its own (a spike); several moderately unusual runs in a row need not be.
    pub spike_ratio: f64,
    /// Runs whose likelihood is at least `1 − point_p` count as anomalous inside an episode
    /// (and date its start)...
    pub point_p: f64,
    /// ...and the episode ends after `m` runs in a row that are not.
    pub m: u32,
    /// How many recent runs the likelihood combines (at most 32); a stretch is 3 or more of
    /// them.
    pub window: u32,
    /// Smallest change worth flagging, relative to the expected value (latency and counts:
    /// 0.2 = 20 % slower, or faster by the same ratio)...
    pub min_change: f64,
    /// ...and in the series' own unit (milliseconds for latency); 0 for none.
    pub min_delta: f64,
    /// No judgement before this many deviations have been learnt (a sparse series whose
    /// decaying history never holds that many: after a day of learning)...
    pub min_samples: f64,
    /// ...and this much history: two days, so that the daily pattern is known before anything
    /// is judged (a first morning says nothing of the evening).
    pub min_history_hours: f64,
    /// Half-life of the level (hours): a slow drift is followed within about this long.
    pub level_half_life_hours: f64,
    /// Half-life of the noise and of the learnt distribution of deviations (hours).
    pub half_life_hours: f64,
    /// An episode that has lasted this long (hours), its runs still mostly anomalous, is a new
    /// regime: the level is re-learnt from the recent runs and the episode ends (the digest
    /// still reports the change against the previous period).
    pub relearn_hours: f64,
    pub seasonality: Seasonality,
}

/// Parameters of the failure-rate detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureParams {
    /// Runs in the recent window compared with the baseline (at most 64).
    pub window: u32,
    /// An episode starts when the recent failures are this improbable under the baseline
    /// rate (binomial upper tail)...
    pub alpha: f64,
    /// ...and the recent rate exceeds the baseline by at least this (absolute, 0.05 = 5 points).
    pub min_rate_increase: f64,
    /// The episode ends once the last run passed and either the recent window is plausible
    /// again (tail above `alpha_end`) or `m` runs in a row passed.
    pub alpha_end: f64,
    pub m: u32,
    pub min_samples: f64,
    pub half_life_hours: f64,
    /// The baseline rate never counts as lower than this, so a step that has never failed
    /// does not page on its first two failures.
    pub min_baseline_rate: f64,
}

/// Parameters of the period-over-period comparison used by digests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftParams {
    /// Two-sided p-value of the Mann-Whitney test below which a shift is significant.
    pub alpha: f64,
    /// Smallest change of the median worth reporting (0.3 = ±30 %).
    pub min_change: f64,
    pub min_delta_ms: f64,
    /// Fewer observations than this in either period: no verdict.
    pub min_samples: u64,
}

/// Everything one series needs, resolved from presets and the journey's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    pub latency: LatencyParams,
    pub failure: FailureParams,
}

const HALF_LIFE_HOURS: f64 = 84.0;

impl LatencyParams {
    pub fn preset(sensitivity: Sensitivity) -> Option<LatencyParams> {
        let (open_p, min_change) = match sensitivity {
            Sensitivity::Off => return None,
            Sensitivity::Low => (1e-6, 0.3),
            Sensitivity::Medium => (1e-5, 0.2),
            Sensitivity::High => (1e-4, 0.15),
        };
        Some(LatencyParams {
            kind: ValueKind::Latency,
            direction: Direction::Up,
            open_p,
            spike_ratio: 0.01,
            point_p: 0.01,
            m: 5,
            window: 5,
            min_change,
            min_delta: 0.0,
            min_samples: 360.0,
            min_history_hours: 48.0,
            level_half_life_hours: 6.0,
            half_life_hours: HALF_LIFE_HOURS,
            relearn_hours: 24.0,
            seasonality: Seasonality::default(),
        })
    }
}

impl LatencyParams {
    /// These parameters for a series of `kind`. A counter's change is a rate (a few more
    /// events an hour on a mostly idle counter), which only a longer window sees: 30 runs
    /// instead of 5 (on train, the counters' window score rose from −10.2 to 25.6, and the
    /// detections outside every window fell from 267 to 167).
    pub fn for_kind(self, kind: ValueKind) -> LatencyParams {
        let window = match kind {
            ValueKind::Count => COUNT_WINDOW,
            ValueKind::Latency | ValueKind::Gauge => self.window,
        };
        LatencyParams {
            kind,
            window,
            ..self
        }
    }
}

/// Runs a counter's likelihood combines.
const COUNT_WINDOW: u32 = 30;

impl FailureParams {
    pub fn preset(sensitivity: Sensitivity) -> Option<FailureParams> {
        let (alpha, min_rate_increase) = match sensitivity {
            Sensitivity::Off => return None,
            Sensitivity::Low => (1e-6, 0.1),
            Sensitivity::Medium => (1e-4, 0.05),
            Sensitivity::High => (1e-3, 0.03),
        };
        Some(FailureParams {
            window: 20,
            alpha,
            min_rate_increase,
            alpha_end: 0.05,
            m: 10,
            min_samples: 60.0,
            half_life_hours: HALF_LIFE_HOURS,
            min_baseline_rate: 0.001,
        })
    }
}

impl ShiftParams {
    pub fn preset(sensitivity: Sensitivity) -> Option<ShiftParams> {
        let (alpha, min_change) = match sensitivity {
            Sensitivity::Off => return None,
            Sensitivity::Low => (1e-4, 0.4),
            Sensitivity::Medium => (1e-3, 0.25),
            Sensitivity::High => (1e-2, 0.15),
        };
        Some(ShiftParams {
            alpha,
            min_change,
            min_delta_ms: 5.0,
            min_samples: 30,
        })
    }
}

impl DetectorParams {
    /// The parameters for a step whose effective settings are `settings` (step over journey
    /// already applied); `None` when detection is off.
    pub fn resolve(settings: AnomalySettings) -> Option<DetectorParams> {
        let sensitivity = settings.sensitivity.unwrap_or_default();
        let mut latency = LatencyParams::preset(sensitivity)?;
        let failure = FailureParams::preset(sensitivity)?;
        if let Some(s) = settings.seasonality {
            latency.seasonality = s;
        }
        if let Some(d) = settings.direction {
            latency.direction = d;
        }
        if let Some(c) = settings.min_change {
            latency.min_change = c;
        }
        if let Some(d) = settings.min_delta {
            latency.min_delta = duration_ms(d);
        }
        Some(DetectorParams { latency, failure })
    }
}

fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
