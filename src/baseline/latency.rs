//! The latency detector of one series: a rolling robust baseline (median and spread of the
//! log-latency, with learnt seasonality) and the judgement of each new run against it.

use serde::Serialize;

use super::episode::{DetectorKind, Episode, KOfN, Rule, Transition};
use super::histogram::DecayedHistogram;
use super::params::LatencyParams;
use super::seasonal::{Seasonal, hour_of};
use crate::store::Sketch;

/// Judged runs between two recomputations of the cached baseline.
const REFRESH_EVERY: u32 = 16;
/// The spread never counts as tighter than this (log units; 1 % is the buckets' resolution).
const MIN_SCALE: f64 = 0.01;
/// An hour with fewer runs than this teaches the seasonal profile nothing.
const MIN_RUNS_PER_HOUR: f64 = 3.0;
/// Interquartile range of a standard normal distribution: IQR / this estimates σ robustly.
const IQR_PER_SIGMA: f64 = 1.349;

/// The baseline a run is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyBaseline {
    /// Median of the window (deseasonalised).
    pub level_ms: f64,
    /// Robust spread of log-latency (σ-equivalent, from the interquartile range).
    pub scale: f64,
    /// Decayed number of runs the window holds.
    pub weight: f64,
}

/// The verdict on one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// Robust deviations above (positive) or below the expected latency.
    pub score: f64,
    pub anomalous: bool,
    /// What the baseline expected for this hour, seasonality included.
    pub expected_ms: f64,
    /// The latency above which this run would have been anomalous.
    pub threshold_ms: f64,
}

#[derive(Debug, Clone)]
pub struct LatencyDetector {
    params: LatencyParams,
    /// Deseasonalised latencies, decaying with the window's half-life.
    window: DecayedHistogram,
    /// Raw latencies of the current hour, for the seasonal profile.
    hour: DecayedHistogram,
    current_hour: Option<i64>,
    /// Instant of the oldest history learnt.
    since_ms: Option<i64>,
    seasonal: Seasonal,
    baseline: Option<LatencyBaseline>,
    since_refresh: u32,
    rule: KOfN,
    open: Option<Episode>,
}

impl LatencyDetector {
    pub fn new(params: LatencyParams) -> LatencyDetector {
        LatencyDetector {
            params,
            window: DecayedHistogram::default(),
            hour: DecayedHistogram::default(),
            current_hour: None,
            since_ms: None,
            seasonal: Seasonal::new(params.seasonality),
            baseline: None,
            since_refresh: 0,
            rule: KOfN::default(),
            open: None,
        }
    }

    /// New parameters keep the learnt baseline (a seasonality change restarts the profile).
    pub fn set_params(&mut self, params: LatencyParams) {
        if params.seasonality != self.params.seasonality {
            self.seasonal = Seasonal::new(params.seasonality);
        }
        self.params = params;
    }

    pub fn baseline(&mut self) -> Option<LatencyBaseline> {
        self.refresh();
        self.baseline
    }

    /// Memory held by this detector, its own size included.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.window.heap_bytes()
            + self.hour.heap_bytes()
            + self.seasonal.heap_bytes()
    }

    pub fn open_episode(&self) -> Option<&Episode> {
        self.open.as_ref()
    }

    /// Resumes an episode that was open before a restart, so that it can end normally.
    pub fn resume(&mut self, episode: Episode) {
        self.open = Some(episode);
    }

    /// Judges one successful run's latency, then learns from it. `None` while warming up.
    pub fn observe(
        &mut self,
        at_ms: i64,
        value_ms: f64,
    ) -> (Option<LatencyPoint>, Option<Transition>) {
        if !value_ms.is_finite() || value_ms < 0.0 {
            return (None, None);
        }
        self.advance_to(hour_of(at_ms));
        let season = self.seasonal.offset(at_ms).exp();
        if self.since_refresh >= REFRESH_EVERY {
            self.refresh();
        }
        let since_ms = *self.since_ms.get_or_insert(at_ms);
        let warm = (at_ms - since_ms) as f64 >= self.params.min_history_hours * 3_600_000.0;
        let point = self.judge(value_ms, season).filter(|_| warm);
        self.window.add(value_ms / season, 1.0);
        self.hour.add(value_ms, 1.0);
        self.since_refresh += 1;
        let transition = point.and_then(|p| self.track(at_ms, value_ms, p));
        (point, transition)
    }

    /// Learns one hour of history from a stored rollup (used to warm up after a restart).
    pub fn absorb_hour(&mut self, hour: i64, sketch: &Sketch) {
        self.advance_to(hour);
        self.since_ms.get_or_insert(hour * 3_600_000);
        let season = self.seasonal.offset(hour * 3_600_000).exp();
        // A rollup has no individual values; dividing the whole hour by its seasonal factor
        // is exact because the factor is constant within an hour.
        for (value, weight) in sketch_values(sketch) {
            self.window.add(value / season, weight);
        }
        self.hour.clear();
        self.hour.add_sketch(sketch, 1.0);
        self.since_refresh = REFRESH_EVERY;
    }

    fn judge(&self, value_ms: f64, season: f64) -> Option<LatencyPoint> {
        let b = self
            .baseline
            .filter(|b| b.weight >= self.params.min_samples)?;
        let expected_ms = b.level_ms * season;
        let p = &self.params;
        let by_deviation = expected_ms * (p.threshold * b.scale).exp();
        let by_change = expected_ms * (1.0 + p.min_change);
        let by_delta = expected_ms + p.min_delta_ms;
        let threshold_ms = by_deviation.max(by_change).max(by_delta);
        let score = (value_ms.max(1e-6) / expected_ms).ln() / b.scale;
        Some(LatencyPoint {
            score,
            anomalous: value_ms > threshold_ms,
            expected_ms,
            threshold_ms,
        })
    }

    fn track(&mut self, at_ms: i64, value_ms: f64, point: LatencyPoint) -> Option<Transition> {
        let p = &self.params;
        let rule = self
            .rule
            .push(at_ms, point.anomalous, self.open.is_some(), p.k, p.n, p.m);
        if let Some(open) = self.open.as_mut().filter(|_| point.anomalous) {
            open.anomalous_runs += 1;
            if point.score > open.peak_score {
                open.peak_score = point.score;
                open.peak_value = value_ms;
            }
        }
        match rule {
            Rule::Quiet => None,
            Rule::Start(start_ms) => {
                let episode = Episode {
                    detector: DetectorKind::Latency,
                    start_ms,
                    detected_ms: at_ms,
                    end_ms: None,
                    peak_score: point.score,
                    peak_value: value_ms,
                    baseline: point.expected_ms,
                    anomalous_runs: p.k,
                };
                self.open = Some(episode.clone());
                Some(Transition::Started(episode))
            }
            Rule::End(end_ms) => {
                let mut episode = self.open.take()?;
                episode.end_ms = Some(end_ms);
                Some(Transition::Ended(episode))
            }
        }
    }

    /// Closes the hours before `hour`: teaches the seasonal profile the finished hour's
    /// median, and decays the window by the time that passed.
    fn advance_to(&mut self, hour: i64) {
        let Some(current) = self.current_hour else {
            self.current_hour = Some(hour);
            return;
        };
        if hour <= current {
            return;
        }
        if self.seasonal.is_enabled() && self.hour.total() >= MIN_RUNS_PER_HOUR {
            self.refresh();
            if let (Some(b), Some([median])) = (self.baseline, self.hour.quantiles([0.5])) {
                if b.weight >= self.params.min_samples {
                    self.seasonal.learn(current, (median / b.level_ms).ln());
                }
            }
        }
        self.hour.clear();
        let hours = (hour - current) as f64;
        self.window
            .decay(0.5f64.powf(hours / self.params.half_life_hours));
        self.current_hour = Some(hour);
        self.since_refresh = REFRESH_EVERY;
    }

    fn refresh(&mut self) {
        self.since_refresh = 0;
        self.baseline = self
            .window
            .quantiles([0.25, 0.5, 0.75])
            .map(|[q1, median, q3]| LatencyBaseline {
                level_ms: median,
                scale: ((q3 / q1).ln() / IQR_PER_SIGMA).max(MIN_SCALE),
                weight: self.window.total(),
            });
    }
}

/// A sketch's contents as (representative value, count) pairs, zeros included.
fn sketch_values(sketch: &Sketch) -> impl Iterator<Item = (f64, f32)> + '_ {
    let zeros = (sketch.zeros() > 0).then(|| (0.0, sketch.zeros() as f32));
    zeros.into_iter().chain(
        sketch
            .buckets()
            .map(|(i, n)| (crate::store::sketch::bucket_value(i), n as f32)),
    )
}
