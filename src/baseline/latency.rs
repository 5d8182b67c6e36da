//! The latency detector of one series: a rolling robust baseline (median and spread of the
//! log-latency, with learnt seasonality) and the judgement of each new run against it.

use serde::Serialize;

use super::episode::{DetectorKind, Episode, KOfN, Rule, Transition};
use super::histogram::DecayedHistogram;
use super::params::LatencyParams;
use super::seasonal::{Seasonal, hour_of};
use crate::baseline::sketch::Sketch;

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
            if let (Some(b), Some([median])) = (self.baseline, self.hour.quantiles([0.5]))
                && b.weight >= self.params.min_samples
            {
                self.seasonal.learn(current, (median / b.level_ms).ln());
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
            .map(|(i, n)| (crate::baseline::sketch::bucket_value(i), n as f32)),
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, LogNormal};

    use super::*;
    use crate::baseline::test_clock::{DAY_RUNS, MINUTE, T0, at};
    use crate::journey::{Seasonality, Sensitivity};

    fn params(seasonality: Seasonality) -> LatencyParams {
        LatencyParams {
            seasonality,
            ..LatencyParams::preset(Sensitivity::Medium).unwrap()
        }
    }

    fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
        LogNormal::new(median.ln(), sigma).unwrap().sample(rng)
    }

    #[test]
    fn nothing_is_judged_before_two_days_of_history_and_enough_runs() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut d = LatencyDetector::new(params(Seasonality::Off));
        let mut first_judged = None;
        for run in 0..3 * DAY_RUNS {
            let (point, transition) = d.observe(at(run), lognormal(&mut rng, 100.0, 0.1));
            if point.is_none() {
                assert!(transition.is_none());
            }
            if point.is_some() && first_judged.is_none() {
                first_judged = Some(run);
            }
        }
        // Minute runs reach 60 samples within the first hour: the 48 h of history decide.
        assert_eq!(
            first_judged,
            Some(2 * DAY_RUNS),
            "judged from exactly 48 h on"
        );

        // Without the history requirement, the sample count decides: not before 60 runs.
        let mut d = LatencyDetector::new(LatencyParams {
            min_history_hours: 0.0,
            ..params(Seasonality::Off)
        });
        let first = (0..200)
            .find(|&run| {
                d.observe(at(run), lognormal(&mut rng, 100.0, 0.1))
                    .0
                    .is_some()
            })
            .expect("judged within 200 runs");
        assert!((60..=80).contains(&first), "first judged run {first}");
        assert!(d.baseline().unwrap().weight >= 60.0);

        // Sparse runs (every 30 min): a day of history holds only 48 runs, not enough.
        let mut d = LatencyDetector::new(params(Seasonality::Off));
        let first = (0..500)
            .find(|&run| {
                d.observe(T0 + run * 30 * MINUTE, lognormal(&mut rng, 100.0, 0.1))
                    .0
                    .is_some()
            })
            .expect("judged eventually");
        assert!(first > 60, "first judged sparse run {first}");
    }

    #[test]
    fn a_doubling_starts_an_episode_that_ends_when_it_is_over() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut d = LatencyDetector::new(params(Seasonality::Off));
        let shift = 3 * DAY_RUNS;
        let recovery = shift + 30;
        let mut started = Vec::new();
        let mut ended = Vec::new();
        for run in 0..recovery + 60 {
            let median = if (shift..recovery).contains(&run) {
                200.0
            } else {
                100.0
            };
            let (point, transition) = d.observe(at(run), lognormal(&mut rng, median, 0.1));
            if run >= shift && run < recovery {
                assert!(point.unwrap().anomalous, "shifted run {run}: {point:?}");
            }
            match transition {
                Some(Transition::Started(e)) => started.push((run, e)),
                Some(Transition::Ended(e)) => ended.push((run, e)),
                None => {}
            }
        }
        assert_eq!(started.len(), 1, "{started:?}");
        let (run, e) = &started[0];
        assert!((shift..shift + 5).contains(run), "detected at run {run}");
        assert_eq!(e.detector, DetectorKind::Latency);
        assert!(e.start_ms >= at(shift) && e.start_ms <= at(*run), "{e:?}");
        assert_eq!(e.detected_ms, at(*run));
        assert!((e.baseline - 100.0).abs() < 5.0, "{e:?}");
        assert!(e.end_ms.is_none());

        assert_eq!(ended.len(), 1, "{ended:?}");
        let (run, e) = &ended[0];
        // m = 5 normal runs in a row end it; it ended at the first of them.
        assert_eq!(*run, recovery + 4);
        assert_eq!(e.end_ms, Some(at(recovery)));
        assert_eq!(e.start_ms, started[0].1.start_ms);
        assert!(e.anomalous_runs >= 25, "{e:?}");
        assert!(e.peak_value > 180.0, "{e:?}");
        assert!(d.open_episode().is_none());
    }

    #[test]
    fn isolated_slow_runs_never_start_an_episode() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut d = LatencyDetector::new(params(Seasonality::Off));
        let mut flagged = 0;
        for run in 0..5 * DAY_RUNS {
            let slow = run % 60 == 59;
            let v = lognormal(&mut rng, 100.0, 0.1) * if slow { 5.0 } else { 1.0 };
            let (point, transition) = d.observe(at(run), v);
            assert!(transition.is_none(), "run {run}: {transition:?}");
            if slow && point.is_some_and(|p| p.anomalous) {
                flagged += 1;
            }
        }
        // The slow runs themselves are anomalous (3 days judged): only the episode rule holds.
        assert!(flagged >= 3 * 24 - 1, "{flagged} slow runs flagged");
    }

    #[test]
    fn a_tiny_absolute_step_is_not_anomalous() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut d = LatencyDetector::new(params(Seasonality::Off));
        for run in 0..2 * DAY_RUNS {
            d.observe(at(run), lognormal(&mut rng, 2.0, 0.05));
        }
        for run in 2 * DAY_RUNS..2 * DAY_RUNS + 30 {
            let (point, transition) = d.observe(at(run), 3.0);
            let p = point.expect("judged");
            assert!(p.score > 5.0, "many deviations away: {p:?}");
            assert!(!p.anomalous, "only 1 ms slower: {p:?}");
            // The 5 ms floor sets the threshold.
            assert!(
                (p.threshold_ms - (p.expected_ms + 5.0)).abs() < 1e-9,
                "{p:?}"
            );
            assert!(transition.is_none());
        }
        // Above the floor, it is.
        let (p, _) = d.observe(at(2 * DAY_RUNS + 30), 8.0);
        assert!(p.unwrap().anomalous);
    }

    #[test]
    fn a_baseline_absorbed_from_hourly_sketches_matches_the_live_one() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut live = LatencyDetector::new(params(Seasonality::Off));
        let mut sketches: Vec<(i64, Sketch)> = Vec::new();
        for run in 0..3 * DAY_RUNS {
            // A slow drift so that decay matters: the median moves from 100 to 160 ms.
            let median = 100.0 + 60.0 * run as f64 / (3 * DAY_RUNS) as f64;
            let v = lognormal(&mut rng, median, 0.2);
            live.observe(at(run), v);
            let hour = hour_of(at(run));
            if sketches.last().is_none_or(|(h, _)| *h != hour) {
                sketches.push((hour, Sketch::new()));
            }
            sketches.last_mut().unwrap().1.add(v);
        }
        assert_eq!(sketches.len(), 72);
        let mut warmed = LatencyDetector::new(params(Seasonality::Off));
        assert!(warmed.baseline().is_none());
        for (hour, sketch) in &sketches {
            warmed.absorb_hour(*hour, sketch);
        }
        let (a, b) = (live.baseline().unwrap(), warmed.baseline().unwrap());
        assert!(
            (a.level_ms - b.level_ms).abs() / a.level_ms < 0.02,
            "{a:?} vs {b:?}"
        );
        assert!(
            (a.weight - b.weight).abs() / a.weight < 0.01,
            "{a:?} vs {b:?}"
        );
        assert!((a.scale - b.scale).abs() < 0.02, "{a:?} vs {b:?}");
        // Decay matters: the level is well above the unweighted median of the whole history.
        assert!(a.level_ms > 130.0, "{a:?}");
        // The warmed-up detector judges at once (its history started 72 h ago).
        let (point, _) = warmed.observe(at(3 * DAY_RUNS), 400.0);
        assert!(point.unwrap().anomalous);
    }

    fn episodes_on_days_4_to_6(seasonality: Seasonality) -> usize {
        let mut rng = StdRng::seed_from_u64(6);
        let mut d = LatencyDetector::new(params(seasonality));
        let mut started = 0;
        for run in 0..7 * DAY_RUNS {
            let hour_of_day = (run / 60) % 24;
            let median = if (12..18).contains(&hour_of_day) {
                160.0
            } else {
                100.0
            };
            let (_, transition) = d.observe(at(run), lognormal(&mut rng, median, 0.1));
            if run >= 4 * DAY_RUNS && matches!(transition, Some(Transition::Started(_))) {
                started += 1;
            }
        }
        started
    }

    #[test]
    fn daily_seasonality_learns_slow_afternoons() {
        assert_eq!(episodes_on_days_4_to_6(Seasonality::Daily), 0);
        let off = episodes_on_days_4_to_6(Seasonality::Off);
        assert!(off >= 1, "{off} episodes without seasonality");
    }
}
