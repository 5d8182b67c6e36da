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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::baseline::test_clock::{DAY_RUNS, at};
    use crate::journey::Sensitivity;

    fn detector() -> FailureDetector {
        FailureDetector::new(FailureParams::preset(Sensitivity::Medium).unwrap())
    }

    /// P(X ≥ f) computed directly: 1 − Σ_{i<f} C(n, i) pⁱ (1−p)ⁿ⁻ⁱ.
    fn direct_tail(n: u32, f: u32, p: f64) -> f64 {
        let mut choose = 1.0;
        let mut below = 0.0;
        for i in 0..f {
            if i > 0 {
                choose = choose * f64::from(n - i + 1) / f64::from(i);
            }
            below += choose * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
        }
        1.0 - below
    }

    #[test]
    fn binomial_tail_matches_a_direct_computation() {
        // 1 − (0.98²⁰ + 20·0.02·0.98¹⁹ + 190·0.02²·0.98¹⁸)
        let want = 1.0
            - (0.98f64.powi(20)
                + 20.0 * 0.02 * 0.98f64.powi(19)
                + 190.0 * 0.0004 * 0.98f64.powi(18));
        assert!((want - 0.00707).abs() < 1e-5, "{want}");
        assert!((binomial_tail(20, 3, 0.02) - want).abs() < 1e-12);
        assert_eq!(binomial_tail(20, 0, 0.02), 1.0);
        assert_eq!(binomial_tail(20, 0, 0.0), 1.0);
        assert_eq!(binomial_tail(20, 21, 0.5), 0.0);
        assert!((binomial_tail(20, 20, 0.5) - 0.5f64.powi(20)).abs() < 1e-18);
        assert!((binomial_tail(1, 1, 0.3) - 0.3).abs() < 1e-12);
        for (n, f, p) in [(20, 1, 0.02), (20, 5, 0.1), (64, 10, 0.05), (10, 4, 0.5)] {
            let (got, want) = (binomial_tail(n, f, p), direct_tail(n, f, p));
            assert!(
                (got - want).abs() < 1e-9,
                "n={n} f={f} p={p}: {got} vs {want}"
            );
        }
        // Monotone in f, and a tiny rate makes many failures very improbable.
        assert!(binomial_tail(20, 4, 0.02) < binomial_tail(20, 3, 0.02));
        assert!(binomial_tail(20, 10, 0.001) < 1e-20);
    }

    /// Feeds `runs` runs from `first`, failing with probability `rate`; returns the
    /// transitions with the run index they happened at.
    fn feed(
        d: &mut FailureDetector,
        rng: &mut StdRng,
        first: i64,
        runs: i64,
        rate: impl Fn(i64) -> f64,
    ) -> Vec<(i64, Transition)> {
        let mut out = Vec::new();
        for run in first..first + runs {
            let ok = rng.random::<f64>() >= rate(run);
            if let (_, Some(t)) = d.observe(at(run), ok) {
                out.push((run, t));
            }
        }
        out
    }

    #[test]
    fn a_steadily_flaky_step_stays_quiet_and_a_jump_does_not() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut d = detector();
        let quiet = feed(&mut d, &mut rng, 0, 20 * DAY_RUNS, |_| 0.02);
        assert!(quiet.is_empty(), "{quiet:?}");
        let rate = d.baseline_rate().unwrap();
        assert!((rate - 0.02).abs() < 0.005, "learnt rate {rate}");

        let jump = 20 * DAY_RUNS;
        let got = feed(&mut d, &mut rng, jump, 120, |_| 0.3);
        let Some((run, Transition::Started(e))) = got.first() else {
            panic!("no episode during the jump: {got:?}");
        };
        assert!((jump..jump + 120).contains(run), "run {run}");
        assert_eq!(e.detector, DetectorKind::FailureRate);
        assert!(
            e.start_ms >= at(jump) && e.start_ms <= e.detected_ms,
            "{e:?}"
        );
        assert!((e.baseline - 0.02).abs() < 0.005, "{e:?}");
        assert!(d.open_episode().is_some());
    }

    #[test]
    fn an_outage_starts_at_once_and_ends_at_the_first_passing_run() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut d = detector();
        assert!(feed(&mut d, &mut rng, 0, 2 * DAY_RUNS, |_| 0.0).is_empty());
        let outage = 2 * DAY_RUNS;
        let recovery = outage + 20;
        let got = feed(&mut d, &mut rng, outage, 200, |run| {
            if run < recovery { 1.0 } else { 0.0 }
        });
        assert_eq!(got.len(), 2, "one start, one end, no reopening: {got:?}");
        let (run, Transition::Started(start)) = &got[0] else {
            panic!("{got:?}")
        };
        assert!((outage..outage + 5).contains(run), "detected at run {run}");
        assert_eq!(start.start_ms, at(outage), "dated from the first failure");
        assert_eq!(start.detected_ms, at(*run));
        let (run, Transition::Ended(end)) = &got[1] else {
            panic!("{got:?}")
        };
        // m = 10 passing runs in a row (the window still holds the outage's failures).
        assert_eq!(*run, recovery + 9);
        assert_eq!(end.end_ms, Some(at(recovery)));
        assert_eq!(end.start_ms, at(outage));
        assert_eq!(end.anomalous_runs, 20, "{end:?}");
        assert!((end.peak_value - 1.0).abs() < 1e-9, "{end:?}");
        assert!(d.open_episode().is_none());
    }
}
