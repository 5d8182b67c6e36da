//! The latency detector of one series (or of any value series, in replay): a level and noise
//! on the modelling scale with learnt seasonality, the learnt distribution of each run's
//! deviation from it, and a calibrated anomaly likelihood for every run.
//!
//! Each run's deviation `z` (in noise units) gets a tail probability from the series' own
//! history of deviations ([`TailModel`]), not from an assumed normal law. The likelihood
//! combines that probability with the recent runs': how improbable it is that 3, 4 or 5 of
//! the last `window` runs are all this unusual (a binomial tail read from the same history,
//! discounted for the runs' autocorrelation), so several moderately unusual runs in a row
//! weigh like one extreme run. A run alone must be `spike_ratio` times more improbable to
//! reach the same likelihood. A series whose short episodes are a habit waits for a stretch
//! to outlast them. How it was chosen: docs/anomaly-detection.md.

use serde::Serialize;

use super::episode::{DetectorKind, Episode, Transition};
use super::level::{Level, median};
use super::params::LatencyParams;
use super::period::Periodic;
use super::seasonal::{Seasonal, hour_of};
use super::tail::TailModel;
use crate::journey::Seasonality;
use stretch::{Autocorrelation, Bursts, stretch_p};

/// Judged runs between two recomputations of the tails' cuts.
const REFRESH_EVERY: u32 = 16;
/// The noise never counts as smaller than this on the log scale (1 %), or than this fraction
/// of the level's magnitude for a gauge.
const MIN_NOISE: f64 = 0.01;
/// An hour with fewer runs than this teaches the seasonal profile nothing.
const MIN_RUNS_PER_HOUR: usize = 3;
/// At most this many values of the current hour are kept for its median.
const HOUR_VALUES: usize = 512;
/// Recent runs remembered, for the likelihood's window and for re-learning a level.
const RECENT: usize = 32;
/// The fewest deviations a sparse series is judged on.
const FEWEST_SAMPLES: f64 = 60.0;
const HOUR_MS: f64 = 3_600_000.0;

/// The baseline a run is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyBaseline {
    /// Expected value without seasonality, in the series' unit.
    pub level_ms: f64,
    /// σ-equivalent noise on the modelling scale (log units for latency).
    pub scale: f64,
    /// Decayed number of runs the distribution of deviations holds.
    pub weight: f64,
}

/// The verdict on one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// Deviations (noise units) above (positive) or below the expected value.
    pub score: f64,
    /// Anomaly likelihood in [0, 1]: 1 − the probability, under the learnt model, of this run
    /// together with the recent ones (or alone, for a spike) deviating this much.
    pub likelihood: f64,
    /// The likelihood reached the episode threshold (in a watched direction, and by at least
    /// the minimum change).
    pub anomalous: bool,
    /// What the baseline expected for this instant, seasonality included.
    pub expected_ms: f64,
    /// Above this a run alone would be anomalous (infinite when up is not watched)...
    pub threshold_ms: f64,
    /// ...and below this (negative infinity when down is not watched).
    pub lower_threshold_ms: f64,
}

/// One remembered run.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    at_ms: i64,
    /// Deseasonalised value on the modelling scale.
    level_y: f64,
    /// Its tail probabilities upwards and downwards, for the stretches it is part of.
    p_up: f64,
    p_down: f64,
    /// Unusual upwards (downwards): its likelihood in that direction was at least
    /// `1 − point_p`, by the minimum change.
    up: bool,
    down: bool,
}

#[derive(Debug, Clone)]
pub struct LatencyDetector {
    params: LatencyParams,
    level: Level,
    /// Deviations of learnt runs, in noise units.
    deviations: TailModel,
    /// Values (modelling scale) of the current hour, for the seasonal profile.
    hour: Vec<f32>,
    current_hour: Option<i64>,
    /// Instant of the oldest history learnt, and of the last run.
    since_ms: Option<i64>,
    last_ms: Option<i64>,
    seasonal: Seasonal,
    /// Patterns shorter than a day, when seasonality is on.
    periodic: Option<Periodic>,
    recent: std::collections::VecDeque<Recent>,
    since_refresh: u32,
    open: Option<Open>,
    /// Consecutive runs whose stretch reached the threshold, upwards and downwards.
    streaks: (u32, u32),
    /// How the deviations of consecutive runs follow each other.
    lag: Autocorrelation,
    /// The latest short episodes that ended on their own.
    bursts: Bursts,
}

/// An open episode and what the detector tracks about it.
#[derive(Debug, Clone)]
struct Open {
    episode: Episode,
    up: bool,
    runs: u32,
    normal_streak: u32,
    first_normal_ms: Option<i64>,
}

/// What [`LatencyDetector::assess`] makes of one run.
#[derive(Debug, Clone, Copy)]
struct Assessed {
    point: LatencyPoint,
    recent: Recent,
    /// The likelihood points upwards (else downwards).
    up: bool,
    /// Consecutive runs, this one included, whose stretch reached the threshold (up, down).
    streaks: (u32, u32),
}

impl LatencyDetector {
    pub fn new(params: LatencyParams) -> LatencyDetector {
        LatencyDetector {
            params,
            level: Level::default(),
            deviations: TailModel::default(),
            hour: Vec::new(),
            current_hour: None,
            since_ms: None,
            last_ms: None,
            seasonal: Seasonal::new(params.seasonality),
            periodic: (params.seasonality != Seasonality::Off).then(Periodic::default),
            recent: std::collections::VecDeque::with_capacity(RECENT),
            since_refresh: REFRESH_EVERY,
            open: None,
            streaks: (0, 0),
            lag: Autocorrelation::default(),
            bursts: Bursts::default(),
        }
    }

    /// New parameters keep what was learnt, unless they change what it means: a seasonality
    /// change restarts the profile, a value-kind change everything.
    pub fn set_params(&mut self, params: LatencyParams) {
        if params.kind != self.params.kind {
            *self = LatencyDetector::new(params);
            return;
        }
        if params.seasonality != self.params.seasonality {
            self.seasonal = Seasonal::new(params.seasonality);
            self.periodic = (params.seasonality != Seasonality::Off).then(Periodic::default);
        }
        self.params = params;
    }

    pub fn baseline(&mut self) -> Option<LatencyBaseline> {
        let (level, noise) = self.level.get()?;
        Some(LatencyBaseline {
            level_ms: self.params.kind.inverse(level),
            scale: noise,
            weight: self.deviations.total(),
        })
    }

    /// Memory held by this detector, its own size included.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.level.heap_bytes()
            + self.deviations.heap_bytes()
            + self.hour.capacity() * std::mem::size_of::<f32>()
            + self.seasonal.heap_bytes()
            + self.periodic.as_ref().map_or(0, Periodic::heap_bytes)
            + self.recent.capacity() * std::mem::size_of::<Recent>()
            + self.bursts.heap_bytes()
    }

    pub fn open_episode(&self) -> Option<&Episode> {
        self.open.as_ref().map(|o| &o.episode)
    }

    /// The period shorter than a day this series was found to repeat with, if any (ms).
    pub fn period_ms(&self) -> Option<i64> {
        self.periodic.as_ref().and_then(Periodic::period_ms)
    }

    /// Resumes an episode that was open before a restart, so that it can end normally.
    pub fn resume(&mut self, episode: Episode) {
        let up = episode.detector != DetectorKind::LatencyDrop;
        self.open = Some(Open {
            episode,
            up,
            runs: 0,
            normal_streak: 0,
            first_normal_ms: None,
        });
    }

    /// Judges one run's value (a passing run's latency, in the service), then learns from it.
    /// `None` while warming up, and for a value the series' kind cannot hold.
    pub fn observe(
        &mut self,
        at_ms: i64,
        value: f64,
    ) -> (Option<LatencyPoint>, Option<Transition>) {
        let Some(y) = self.params.kind.transform(value) else {
            return (None, None);
        };
        self.advance_to(hour_of(at_ms));
        if self.since_refresh >= REFRESH_EVERY {
            self.refresh();
        }
        let daily = self.seasonal.offset(at_ms);
        let season = daily + self.periodic.as_ref().map_or(0.0, |p| p.offset(at_ms));
        self.since_ms.get_or_insert(at_ms);
        let elapsed_ms = self
            .last_ms
            .map_or(60_000, |last| (at_ms - last).clamp(0, 3_600_000));
        self.last_ms = Some(at_ms);
        // Deviations are learnt from the moment judging may start: before, the seasonal
        // profile is not known, and a daily pattern would be learnt as a habit of deviating.
        let learning = self.has_history(at_ms);
        // Judging needs `min_samples` deviations; a sparse series that holds fewer at steady
        // state (the history decays) is judged after a day of learning, on at least
        // [`FEWEST_SAMPLES`].
        let total = self.deviations.total();
        let warm = learning
            && (total >= self.params.min_samples
                || (total >= FEWEST_SAMPLES && self.has_history(at_ms - 24 * HOUR_MS as i64)));
        let assessed = self
            .level
            .get()
            .map(|(level, noise)| self.assess(at_ms, y, value, (level, season), noise));
        let mut transition = None;
        let mut anomalous_inside = false;
        if let Some(a) = assessed {
            anomalous_inside = warm
                && self
                    .open
                    .as_ref()
                    .is_some_and(|o| if o.up { a.recent.up } else { a.recent.down });
            // An open episode's anomalous runs do not teach the model that they are normal.
            if learning && !anomalous_inside {
                self.deviations.add(a.point.score, 1.0);
                self.lag.learn(a.point.score, y);
            }
            if warm {
                transition = self.track(at_ms, value, &a);
            }
            self.streaks = a.streaks;
            self.remember(a.recent);
        }
        if let Some((level, _)) = self.level.get().filter(|_| !anomalous_inside)
            && let Some(periodic) = self.periodic.as_mut()
        {
            periodic.learn(at_ms, y - level - daily);
        }
        if !anomalous_inside {
            self.learn(y, season, 1.0, elapsed_ms as f64);
        }
        if self.hour.len() < HOUR_VALUES {
            self.hour.push(y as f32);
        }
        self.since_refresh += 1;
        (assessed.filter(|_| warm).map(|a| a.point), transition)
    }

    fn has_history(&self, at_ms: i64) -> bool {
        self.since_ms
            .is_some_and(|since| (at_ms - since) as f64 >= self.params.min_history_hours * HOUR_MS)
    }

    fn learn(&mut self, y: f64, season: f64, weight: f64, elapsed_ms: f64) {
        let rate =
            |half_life_hours: f64| 1.0 - 0.5f64.powf(elapsed_ms / (half_life_hours * HOUR_MS));
        let floor = if self.params.kind.is_ratio_scale() {
            MIN_NOISE
        } else {
            1e-6 * y.abs().max(1.0)
        };
        self.level.learn(
            y - season,
            weight,
            rate(self.params.level_half_life_hours),
            rate(self.params.half_life_hours),
            floor,
        );
    }

    fn remember(&mut self, recent: Recent) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(recent);
    }

    /// The minimum change on the modelling scale (0 for gauges, which have no ratio).
    fn min_ratio(&self) -> f64 {
        if self.params.kind.is_ratio_scale() {
            self.params.min_change.ln_1p()
        } else {
            0.0
        }
    }

    /// Runs the likelihood's window combines.
    fn window_len(&self) -> usize {
        self.params.window.clamp(1, RECENT as u32) as usize
    }

    /// Whether a change from `expected_y` to `y` is large enough to matter, upwards and
    /// downwards: by the minimum ratio (ratio kinds) and the minimum absolute change.
    fn big_enough(&self, y: f64, expected_y: f64, value: f64, expected: f64) -> (bool, bool) {
        let p = &self.params;
        let ratio = self.min_ratio();
        let up = y - expected_y >= ratio && value - expected >= p.min_delta;
        let down = expected_y - y >= ratio && expected - value >= p.min_delta;
        (up, down)
    }

    /// Judges `y` (modelling scale; `value` as given) against the level plus the season.
    fn assess(
        &self,
        at_ms: i64,
        y: f64,
        value: f64,
        (level, season): (f64, f64),
        noise: f64,
    ) -> Assessed {
        let p = &self.params;
        let expected_y = level + season;
        let kind = p.kind;
        let z = (y - expected_y) / noise;
        let expected = kind.inverse(expected_y);
        let (big_up, big_down) = self.big_enough(y, expected_y, value, expected);
        let (p_up, p_down) = (self.deviations.upper(z), self.deviations.lower(z));
        let n = self.window_len();
        // A stretch must be large enough as a whole: its median run, not only this one, by the
        // minimum ratio (a wander of the model within it is not a change).
        let mut levels: Vec<f64> = self
            .recent
            .iter()
            .rev()
            .take(n - 1)
            .map(|r| r.level_y)
            .collect();
        levels.push(y - season);
        let middle = median(&mut levels) - level;
        let ratio = self.min_ratio();
        let (wide_up, wide_down) = (middle >= ratio, -middle >= ratio);
        let earlier = |of: fn(&Recent) -> f64| -> Vec<f64> {
            self.recent.iter().rev().take(n - 1).map(of).collect()
        };
        // Watching both ways doubles the chances of a false alarm: pay for it.
        let sides = if p.direction.watches_up() && p.direction.watches_down() {
            2.0
        } else {
            1.0
        };
        let horizon_ms = (2.0 * p.half_life_hours * HOUR_MS) as i64;
        let habit = self.bursts.habit(at_ms, horizon_ms);
        // Runs that follow each other's deviations hold fewer independent chances: with
        // lag-one autocorrelation ρ, n runs weigh like n(1 − ρ)/(1 + ρ).
        let rho = self.lag.rho(p.min_samples);
        let independence = (1.0 - rho) / (1.0 + rho);
        // One side's probability, and whether it opens an episode: a spike alone, or a
        // stretch longer than this series' habitual bursts.
        let side = |(watched, big, wide): (bool, bool, bool),
                    point: f64,
                    mut qs: Vec<f64>,
                    streak: u32| {
            if !watched {
                return (1.0, false, 0);
            }
            qs.push(point);
            let spike_p = if big { point / p.spike_ratio } else { 1.0 };
            let stretch = if big && wide {
                stretch_p(&mut qs).powf(independence)
            } else {
                1.0
            };
            let streak = if sides * stretch <= p.open_p {
                streak + 1
            } else {
                0
            };
            let opens = sides * spike_p <= p.open_p || streak > habit;
            (spike_p.min(stretch).min(1.0), opens, streak)
        };
        let (up_p, opens_up, streak_up) = side(
            (p.direction.watches_up(), big_up, wide_up),
            p_up,
            earlier(|r| r.p_up),
            self.streaks.0,
        );
        let (down_p, opens_down, streak_down) = side(
            (p.direction.watches_down(), big_down, wide_down),
            p_down,
            earlier(|r| r.p_down),
            self.streaks.1,
        );
        let tail_p = (sides * up_p.min(down_p)).min(1.0);
        let spike = p.open_p * p.spike_ratio;
        let bound = |q: Option<f64>| q.map(|q| kind.inverse(expected_y + q * noise));
        let threshold_ms = match bound(self.deviations.upper_quantile(spike / sides)) {
            Some(t) if p.direction.watches_up() => t
                .max(kind.inverse(expected_y + ratio))
                .max(expected + p.min_delta),
            _ => f64::INFINITY,
        };
        let lower_threshold_ms = match bound(self.deviations.lower_quantile(spike / sides)) {
            Some(t) if p.direction.watches_down() => t
                .min(kind.inverse(expected_y - ratio))
                .min(expected - p.min_delta),
            _ => f64::NEG_INFINITY,
        };
        Assessed {
            point: LatencyPoint {
                score: z,
                likelihood: 1.0 - tail_p,
                anomalous: if up_p <= down_p { opens_up } else { opens_down },
                expected_ms: expected,
                threshold_ms,
                lower_threshold_ms,
            },
            recent: Recent {
                at_ms,
                level_y: y - season,
                p_up,
                p_down,
                up: up_p <= p.point_p,
                down: down_p <= p.point_p,
            },
            up: up_p <= down_p,
            streaks: (streak_up, streak_down),
        }
    }

    fn track(&mut self, at_ms: i64, value: f64, a: &Assessed) -> Option<Transition> {
        let p = self.params;
        let Some(open) = self.open.as_mut() else {
            if !a.point.anomalous {
                return None;
            }
            let up = a.up;
            let flagged = |r: &Recent| if up { r.up } else { r.down };
            let n = self.window_len();
            // The episode starts at the first flagged run of the window that opened it.
            let earlier: Vec<&Recent> = self.recent.iter().rev().take(n - 1).collect();
            let start_ms = earlier
                .iter()
                .rev()
                .find(|r| flagged(r))
                .map_or(at_ms, |r| r.at_ms);
            let anomalous_runs = 1 + earlier.iter().filter(|r| flagged(r)).count() as u32;
            let episode = Episode {
                detector: if up {
                    DetectorKind::Latency
                } else {
                    DetectorKind::LatencyDrop
                },
                start_ms,
                detected_ms: at_ms,
                end_ms: None,
                peak_score: a.point.score.abs(),
                peak_value: value,
                baseline: a.point.expected_ms,
                anomalous_runs,
            };
            self.open = Some(Open {
                episode: episode.clone(),
                up,
                runs: anomalous_runs,
                normal_streak: 0,
                first_normal_ms: None,
            });
            return Some(Transition::Started(episode));
        };
        let anomalous = if open.up { a.recent.up } else { a.recent.down };
        open.runs += 1;
        if anomalous {
            open.episode.anomalous_runs += 1;
            open.normal_streak = 0;
            open.first_normal_ms = None;
            if a.point.score.abs() > open.episode.peak_score {
                open.episode.peak_score = a.point.score.abs();
                open.episode.peak_value = value;
            }
        } else {
            open.normal_streak += 1;
            open.first_normal_ms.get_or_insert(at_ms);
        }
        if open.normal_streak >= p.m.max(1) {
            let mut done = self.open.take()?;
            done.episode.end_ms = done.first_normal_ms;
            let lasted = done.runs - done.normal_streak;
            self.bursts.ended(at_ms, lasted);
            return Some(Transition::Ended(done.episode));
        }
        let lasted_h = (at_ms - open.episode.start_ms) as f64 / HOUR_MS;
        if lasted_h >= p.relearn_hours && 2 * open.episode.anomalous_runs >= open.runs {
            return self.relearn(at_ms, a.recent);
        }
        None
    }

    /// A sustained change is the new normal: the level restarts from the recent runs and the
    /// episode ends now.
    fn relearn(&mut self, at_ms: i64, this: Recent) -> Option<Transition> {
        let mut done = self.open.take()?;
        let mut levels: Vec<f64> = self.recent.iter().map(|r| r.level_y).collect();
        levels.push(this.level_y);
        self.level.reset_to(median(&mut levels));
        self.recent.clear();
        self.streaks = (0, 0);
        done.episode.end_ms = Some(at_ms);
        Some(Transition::Ended(done.episode))
    }

    /// Closes the hours before `hour`: teaches the seasonal profile the finished hour's
    /// median, and decays the learnt distributions by the time that passed.
    fn advance_to(&mut self, hour: i64) {
        let Some(current) = self.current_hour else {
            self.current_hour = Some(hour);
            return;
        };
        if hour <= current {
            return;
        }
        if self.seasonal.is_enabled()
            && self.hour.len() >= MIN_RUNS_PER_HOUR
            && let Some((level, _)) = self.level.get()
        {
            let mut values: Vec<f64> = self.hour.iter().map(|&y| f64::from(y)).collect();
            self.seasonal.learn(current, median(&mut values) - level);
        }
        self.hour.clear();
        let factor = 0.5f64.powf((hour - current) as f64 / self.params.half_life_hours);
        self.deviations.decay(factor);
        self.lag.decay(factor);
        self.current_hour = Some(hour);
        self.since_refresh = REFRESH_EVERY;
    }

    fn refresh(&mut self) {
        self.since_refresh = 0;
        self.deviations.refresh();
    }
}

mod stretch;
#[cfg(test)]
mod tests;
mod warm_up;
