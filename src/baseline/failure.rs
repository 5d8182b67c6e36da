//! The failure-rate detector of one series: is the recent failure rate significantly above
//! what this step usually does? A binomial test of the last runs against the baseline rate,
//! so a step that always fails 2 % of the time stays quiet and a jump to 20 % does not.

use serde::Serialize;

use super::episode::{DetectorKind, Episode, Transition};
use super::params::FailureParams;
use super::seasonal::hour_of;

/// The verdict on one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FailurePoint {
    /// −log10 of the probability of at least this many recent failures at the baseline rate.
    pub score: f64,
    pub anomalous: bool,
    pub recent_failures: u32,
    pub recent_runs: u32,
    pub baseline_rate: f64,
}

#[derive(Debug, Clone)]
pub struct FailureDetector {
    params: FailureParams,
    /// Decayed counts of the window.
    runs: f64,
    failures: f64,
    current_hour: Option<i64>,
    /// Bit i set: the run i places back failed.
    recent: u64,
    recent_len: u32,
    pass_streak: u32,
    /// Instant of the first run of the current passing streak.
    streak_start_ms: i64,
    /// Instant of the first run of the current streak of failures, to date an episode's start.
    first_failure_ms: Option<i64>,
    open: Option<Episode>,
}

impl FailureDetector {
    pub fn new(params: FailureParams) -> FailureDetector {
        FailureDetector {
            params,
            runs: 0.0,
            failures: 0.0,
            current_hour: None,
            recent: 0,
            recent_len: 0,
            pass_streak: 0,
            streak_start_ms: 0,
            first_failure_ms: None,
            open: None,
        }
    }

    pub fn set_params(&mut self, params: FailureParams) {
        self.params = params;
    }

    pub fn baseline_rate(&self) -> Option<f64> {
        (self.runs >= self.params.min_samples).then(|| self.rate())
    }

    pub fn open_episode(&self) -> Option<&Episode> {
        self.open.as_ref()
    }

    pub fn resume(&mut self, episode: Episode) {
        self.open = Some(episode);
    }

    /// Judges one run (passed or failed), then learns from it. `None` while warming up.
    pub fn observe(&mut self, at_ms: i64, ok: bool) -> (Option<FailurePoint>, Option<Transition>) {
        self.advance_to(hour_of(at_ms));
        let window = self.params.window.clamp(1, 64);
        self.recent = (self.recent << 1) | u64::from(!ok);
        if window < 64 {
            self.recent &= (1u64 << window) - 1;
        }
        self.recent_len = (self.recent_len + 1).min(window);
        if ok {
            self.pass_streak += 1;
            if self.pass_streak == 1 {
                self.streak_start_ms = at_ms;
            }
        } else {
            self.pass_streak = 0;
            if self.recent.count_ones() == 1 {
                self.first_failure_ms = Some(at_ms);
            }
        }
        let point = self.judge();
        self.runs += 1.0;
        self.failures += f64::from(u8::from(!ok));
        let transition = point.and_then(|p| self.track(at_ms, ok, p));
        (point, transition)
    }

    /// Learns one hour of history from a stored rollup (used to warm up after a restart).
    pub fn absorb_hour(&mut self, hour: i64, runs: u64, failures: u64) {
        self.advance_to(hour);
        self.runs += runs as f64;
        self.failures += failures as f64;
    }

    fn rate(&self) -> f64 {
        // Posterior mean under a Jeffreys prior, floored.
        ((self.failures + 0.5) / (self.runs + 1.0)).max(self.params.min_baseline_rate)
    }

    fn judge(&self) -> Option<FailurePoint> {
        let baseline_rate = self.baseline_rate()?;
        let n = self.recent_len;
        let f = self.recent.count_ones();
        let tail = binomial_tail(n, f, baseline_rate);
        let score = -tail.max(1e-300).log10();
        let p = &self.params;
        let anomalous = f >= 2
            && tail < p.alpha
            && f64::from(f) / f64::from(n) - baseline_rate >= p.min_rate_increase;
        Some(FailurePoint {
            score,
            anomalous,
            recent_failures: f,
            recent_runs: n,
            baseline_rate,
        })
    }

    fn track(&mut self, at_ms: i64, ok: bool, point: FailurePoint) -> Option<Transition> {
        let rate = f64::from(point.recent_failures) / f64::from(point.recent_runs.max(1));
        match self.open.as_mut() {
            None if point.anomalous => {
                let episode = Episode {
                    detector: DetectorKind::FailureRate,
                    start_ms: self.first_failure_ms.unwrap_or(at_ms),
                    detected_ms: at_ms,
                    end_ms: None,
                    peak_score: point.score,
                    peak_value: rate,
                    baseline: point.baseline_rate,
                    anomalous_runs: point.recent_failures,
                };
                self.open = Some(episode.clone());
                Some(Transition::Started(episode))
            }
            None => None,
            Some(open) => {
                if !ok {
                    open.anomalous_runs += 1;
                }
                if point.score > open.peak_score {
                    open.peak_score = point.score;
                    open.peak_value = rate;
                }
                let plausible = binomial_tail(
                    point.recent_runs,
                    point.recent_failures,
                    point.baseline_rate,
                ) > self.params.alpha_end;
                if ok && (plausible || self.pass_streak >= self.params.m) {
                    let mut episode = self.open.take()?;
                    // The recovery began with the first run of the current passing streak.
                    episode.end_ms = Some(self.streak_start_ms);
                    // The episode accounted for the failures still in the window; judging
                    // them again would reopen it at once.
                    self.recent = 0;
                    self.recent_len = 0;
                    return Some(Transition::Ended(episode));
                }
                None
            }
        }
    }

    fn advance_to(&mut self, hour: i64) {
        let Some(current) = self.current_hour else {
            self.current_hour = Some(hour);
            return;
        };
        if hour > current {
            let factor = 0.5f64.powf((hour - current) as f64 / self.params.half_life_hours);
            self.runs *= factor;
            self.failures *= factor;
            self.current_hour = Some(hour);
        }
    }
}

/// P(X ≥ f) for X ~ Binomial(n, p), summed from the pmf in log space (n ≤ 64).
pub fn binomial_tail(n: u32, f: u32, p: f64) -> f64 {
    if f == 0 {
        return 1.0;
    }
    if f > n {
        return 0.0;
    }
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // log C(n, i), built up incrementally.
    let mut log_choose = 0.0;
    let mut sum = 0.0;
    for i in 0..=n {
        if i > 0 {
            log_choose += f64::from(n - i + 1).ln() - f64::from(i).ln();
        }
        if i >= f {
            sum += (log_choose + f64::from(i) * lp + f64::from(n - i) * lq).exp();
        }
    }
    sum.min(1.0)
}
