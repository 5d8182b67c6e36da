//! Recurring patterns shorter than a day, found from the data: an hourly batch job, a cache
//! refreshed every 20 minutes, a cron every 6 hours. Hour-of-day seasonality cannot absorb
//! them, so a spike at :04 every hour would otherwise look like an anomaly every hour.
//!
//! The residuals (value minus level and daily profile) are averaged into bins at two
//! resolutions: 1 minute over the last 6 hours (periods of 2 minutes to 2 hours) and 10 minutes
//! over the last 36 hours (periods of 2 to 12 hours). Every so often the autocorrelation of each
//! ring is computed over lags up to a third of its length, so a period is accepted only once
//! three repetitions are in view; the accepted period is the strongest peak that clearly rises
//! above the dip before it and correlates again at twice its lag (a slowly wandering series
//! decays without such a peak, or shows one only by chance, once). Its profile
//! is the median of the last three cycles at each phase, as for the daily profile, so one
//! incident does not teach it anything. Cost: O(1) per value, plus one autocorrelation pass
//! per ring every hour (fine) or six (coarse).

use std::collections::VecDeque;

/// The smallest autocorrelation a period needs, and how far it must rise above the lowest
/// autocorrelation at shorter lags.
const MIN_CORRELATION: f64 = 0.3;
const MIN_RISE: f64 = 0.2;
/// Cycles a profile slot needs before it answers.
const CYCLES: usize = 3;
/// Passes in a row that must miss a period before it is forgotten (about half a day of fine
/// passes).
const UNCONFIRMED_PASSES: u32 = 12;

#[derive(Debug, Clone)]
struct Ring {
    bin_ms: i64,
    len: usize,
    /// Bins between two autocorrelation passes.
    every: usize,
    values: VecDeque<f32>,
    /// The bin being filled: its index (epoch bins), sum and count.
    current: Option<(i64, f64, u32)>,
    since_pass: usize,
    found: Option<i64>,
}

impl Ring {
    fn new(bin_ms: i64, len: usize, every: usize) -> Ring {
        Ring {
            bin_ms,
            len,
            every,
            values: VecDeque::new(),
            current: None,
            since_pass: 0,
            found: None,
        }
    }

    /// Adds one residual; whether an autocorrelation pass was made.
    fn push(&mut self, at_ms: i64, r: f64) -> bool {
        let bin = at_ms.div_euclid(self.bin_ms);
        let mut passed = false;
        match self.current {
            Some((b, sum, n)) if b == bin => self.current = Some((b, sum + r, n + 1)),
            Some((b, sum, n)) if bin > b => {
                let mean = (sum / f64::from(n)) as f32;
                // Missing bins repeat the last value (bounded by the ring's length).
                let missing = ((bin - b - 1) as usize).min(self.len);
                for _ in 0..=missing {
                    passed |= self.close(mean);
                }
                self.current = Some((bin, r, 1));
            }
            Some(_) => {}
            None => self.current = Some((bin, r, 1)),
        }
        passed
    }

    /// Closes a bin; whether an autocorrelation pass was made.
    fn close(&mut self, mean: f32) -> bool {
        if self.values.len() == self.len {
            self.values.pop_front();
        }
        self.values.push_back(mean);
        self.since_pass += 1;
        if self.values.len() == self.len && self.since_pass >= self.every {
            self.since_pass = 0;
            self.found =
                strongest_period(self.values.make_contiguous()).map(|lag| lag as i64 * self.bin_ms);
            return true;
        }
        false
    }

    fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<f32>()
    }
}

/// The lag (in bins, at least 2) of the strongest clear autocorrelation peak, if any.
fn strongest_period(x: &[f32]) -> Option<usize> {
    let n = x.len();
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let d: Vec<f64> = x.iter().map(|&v| f64::from(v) - mean).collect();
    let var: f64 = d.iter().map(|v| v * v).sum();
    if var <= 0.0 {
        return None;
    }
    let max_lag = n / CYCLES;
    let acf: Vec<f64> = (0..=2 * max_lag + 1)
        .map(|k| {
            d[..n - k]
                .iter()
                .zip(&d[k..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / var
        })
        .collect();
    let mut best: Option<(usize, f64)> = None;
    let mut lowest = f64::INFINITY;
    for k in 1..=max_lag {
        lowest = lowest.min(acf[k]);
        let peak = k >= 2 && acf[k] >= acf[k - 1] && acf[k] > acf[k + 1];
        // A true period correlates again at twice its lag; a wandering series' chance bump
        // does not.
        let repeats = (2 * k - 1..=2 * k + 1).any(|j| acf[j] >= 0.6 * acf[k]);
        if peak && repeats && acf[k] >= MIN_CORRELATION && acf[k] - lowest >= MIN_RISE {
            // Multiples of a period peak too: keep the first unless a later one is clearly
            // stronger.
            if best.is_none_or(|(_, r)| acf[k] > r + 0.1) {
                best = Some((k, acf[k]));
            }
        }
    }
    best.map(|(k, _)| k)
}

/// One phase of the profile: its residual in each of the last cycles, and the cycle being
/// filled.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    recent: [f32; CYCLES],
    len: u8,
    next: u8,
    /// Cycle number, sum and count of the cycle being filled.
    filling: (i64, f32, u16),
}

impl Slot {
    fn offset(&self) -> Option<f64> {
        if (self.len as usize) < CYCLES {
            return None;
        }
        let mut v = self.recent;
        v.sort_by(f32::total_cmp);
        Some(f64::from(v[CYCLES / 2]))
    }

    fn add(&mut self, cycle: i64, r: f32) {
        let (c, sum, n) = self.filling;
        if c == cycle {
            self.filling = (c, sum + r, n.saturating_add(1));
            return;
        }
        if n > 0 {
            self.recent[self.next as usize] = sum / f32::from(n);
            self.next = (self.next + 1) % CYCLES as u8;
            self.len = (self.len + 1).min(CYCLES as u8);
        }
        self.filling = (cycle, r, 1);
    }
}

#[derive(Debug, Clone)]
struct Profile {
    period_ms: i64,
    slot_ms: i64,
    slots: Vec<Slot>,
}

impl Profile {
    fn locate(&self, at_ms: i64) -> (i64, usize) {
        let cycle = at_ms.div_euclid(self.period_ms);
        let phase = at_ms.rem_euclid(self.period_ms) / self.slot_ms;
        (cycle, (phase as usize).min(self.slots.len() - 1))
    }
}

#[derive(Debug, Clone)]
pub struct Periodic {
    fine: Ring,
    coarse: Ring,
    profile: Option<Profile>,
    /// Passes (of either ring) in a row that did not find the profile's period.
    unconfirmed: u32,
}

impl Default for Periodic {
    fn default() -> Self {
        Periodic {
            fine: Ring::new(60_000, 360, 60),
            coarse: Ring::new(600_000, 216, 36),
            profile: None,
            unconfirmed: 0,
        }
    }
}

impl Periodic {
    /// The period found, if any (milliseconds).
    pub fn period_ms(&self) -> Option<i64> {
        self.profile.as_ref().map(|p| p.period_ms)
    }

    /// The learnt offset at `at_ms` (0 until a period's profile has three cycles).
    pub fn offset(&self, at_ms: i64) -> f64 {
        self.profile.as_ref().map_or(0.0, |p| {
            let (_, slot) = p.locate(at_ms);
            p.slots[slot].offset().unwrap_or(0.0)
        })
    }

    /// Learns one residual (value minus level and daily profile, on the modelling scale).
    pub fn learn(&mut self, at_ms: i64, r: f64) {
        let fine = self.fine.push(at_ms, r);
        let passed = self.coarse.push(at_ms, r) || fine;
        let found = self.fine.found.or(self.coarse.found);
        let current = self.period_ms();
        let same = |p: i64, c: i64| (p - c).abs() * 20 <= c;
        // A period that stops being found was a chance (or an incident's) pattern: it is
        // forgotten once [`UNCONFIRMED_PASSES`] passes in a row do not find it again.
        if passed && let Some(c) = current {
            if found.is_some_and(|p| same(p, c)) {
                self.unconfirmed = 0;
            } else {
                self.unconfirmed += 1;
                if self.unconfirmed >= UNCONFIRMED_PASSES {
                    self.profile = None;
                    self.unconfirmed = 0;
                    return;
                }
            }
        }
        match (found, current) {
            (Some(p), Some(c)) if same(p, c) => {}
            (Some(p), _) => {
                self.unconfirmed = 0;
                let slot_ms = if p <= 2 * 3_600_000 {
                    self.fine.bin_ms
                } else {
                    self.coarse.bin_ms
                };
                self.profile = Some(Profile {
                    period_ms: p,
                    slot_ms,
                    slots: vec![Slot::default(); (p / slot_ms).max(1) as usize],
                });
            }
            (None, _) => {}
        }
        if let Some(p) = self.profile.as_mut() {
            let (cycle, slot) = p.locate(at_ms);
            p.slots[slot].add(cycle, r as f32);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.fine.heap_bytes()
            + self.coarse.heap_bytes()
            + self
                .profile
                .as_ref()
                .map_or(0, |p| p.slots.capacity() * std::mem::size_of::<Slot>())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Normal};

    use super::*;

    const MINUTE: i64 = 60_000;

    fn run(minutes: i64, mut residual: impl FnMut(i64) -> f64) -> Periodic {
        let mut p = Periodic::default();
        for m in 0..minutes {
            p.learn(m * MINUTE, residual(m));
        }
        p
    }

    #[test]
    fn finds_an_hourly_spike_and_learns_its_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        let noise = Normal::new(0.0, 0.1).unwrap();
        // 15 minutes from :04 each hour run 1.1 (log) higher: three times slower.
        let spike = |m: i64| {
            if (4..19).contains(&(m % 60)) {
                1.1
            } else {
                0.0
            }
        };
        let p = run(12 * 60, |m| spike(m) + noise.sample(&mut rng));
        assert_eq!(p.period_ms(), Some(60 * MINUTE));
        let at = |m: i64| (12 * 60 + m) * MINUTE;
        assert!(
            (p.offset(at(10)) - 1.1).abs() < 0.15,
            "{}",
            p.offset(at(10))
        );
        assert!(p.offset(at(30)).abs() < 0.15, "{}", p.offset(at(30)));
    }

    #[test]
    fn finds_a_six_hour_cycle_on_the_coarse_ring() {
        let mut rng = StdRng::seed_from_u64(2);
        let noise = Normal::new(0.0, 0.05).unwrap();
        let p = run(48 * 60, |m| {
            let phase = (m % 360) as f64 / 360.0;
            0.4 * (phase * std::f64::consts::TAU).sin() + noise.sample(&mut rng)
        });
        let found = p.period_ms().expect("a period");
        assert!((found - 360 * MINUTE).abs() <= 10 * MINUTE, "{found}");
    }

    #[test]
    fn a_pattern_that_stops_is_forgotten() {
        // An hourly pattern for a day (found), then plain noise: once neither ring holds it
        // (the coarse one looks back 36 hours) and a dozen passes have missed it, it is gone.
        let mut rng = StdRng::seed_from_u64(2);
        let noise = Normal::new(0.0, 0.1).unwrap();
        let mut p = Periodic::default();
        let mut learn = |p: &mut Periodic, minutes: std::ops::Range<i64>, pattern: bool| {
            for m in minutes {
                let bump = if pattern && m % 60 < 10 { 1.0 } else { 0.0 };
                p.learn(m * MINUTE, bump + noise.sample(&mut rng));
            }
        };
        learn(&mut p, 0..24 * 60, true);
        assert_eq!(p.period_ms(), Some(60 * MINUTE));
        learn(&mut p, 24 * 60..30 * 60, false);
        assert_eq!(
            p.period_ms(),
            Some(60 * MINUTE),
            "not yet: the ring still holds it"
        );
        learn(&mut p, 30 * 60..80 * 60, false);
        assert_eq!(p.period_ms(), None);
        assert_eq!(p.offset(80 * 60 * MINUTE), 0.0);
    }

    #[test]
    fn noise_and_a_wandering_level_have_no_period() {
        for seed in 3..9 {
            let mut rng = StdRng::seed_from_u64(seed);
            let noise = Normal::new(0.0, 0.1).unwrap();
            assert_eq!(run(48 * 60, |_| noise.sample(&mut rng)).period_ms(), None);
            let mut walk = 0.0;
            let p = run(48 * 60, |_| {
                walk = 0.99 * walk + noise.sample(&mut rng);
                walk
            });
            assert_eq!(p.period_ms(), None, "seed {seed}");
        }
    }
}
