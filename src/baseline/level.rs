//! A series' level and noise on the modelling scale, tracked with O(1) state.
//!
//! The level is an exponentially weighted Huber mean: each value pulls it by its residual
//! clipped to [`CLIP`] noise units, so one wild run moves it by no more than an ordinary one,
//! and a slow drift is followed within the level's half-life. The noise is the weighted mean
//! absolute residual (clipped the same way), scaled to a normal σ. The first [`SEED_VALUES`]
//! values are kept and their median and median absolute deviation start both estimates, so a
//! first slow run cannot set the level.

/// Residuals are clipped to this many noise units when learning.
const CLIP: f64 = 2.0;
/// Values collected before the estimates start.
pub const SEED_VALUES: usize = 32;
/// Mean absolute deviation per σ of a normal law: √(2/π).
const MAD_PER_SIGMA: f64 = 0.797_884_560_8;
/// Median absolute deviation per σ of a normal law.
const MEDIAN_AD_PER_SIGMA: f64 = 0.674_489_75;

#[derive(Debug, Clone, Default)]
pub struct Level {
    seed: Vec<f64>,
    state: Option<State>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    level: f64,
    /// σ-equivalent noise.
    noise: f64,
}

impl Level {
    /// The level and σ-equivalent noise, once seeded.
    pub fn get(&self) -> Option<(f64, f64)> {
        self.state.map(|s| (s.level, s.noise))
    }

    pub fn heap_bytes(&self) -> usize {
        self.seed.capacity() * std::mem::size_of::<f64>()
    }

    /// Learns `y` with weight `weight`; `level_rate` and `noise_rate` are the fractions of
    /// the way one value moves each estimate (from the half-lives), `floor` the smallest
    /// noise the series can be said to have.
    pub fn learn(&mut self, y: f64, weight: f64, level_rate: f64, noise_rate: f64, floor: f64) {
        let Some(s) = self.state.as_mut() else {
            let copies = weight.round().clamp(1.0, SEED_VALUES as f64) as usize;
            self.seed.extend(std::iter::repeat_n(y, copies));
            if self.seed.len() >= SEED_VALUES {
                self.state = Some(seeded(&mut self.seed, floor));
                self.seed = Vec::new();
            }
            return;
        };
        let clip = CLIP * s.noise;
        let r = (y - s.level).clamp(-clip, clip);
        let a = 1.0 - (1.0 - level_rate).powf(weight);
        let b = 1.0 - (1.0 - noise_rate).powf(weight);
        s.level += a * r;
        s.noise = (s.noise + b * (r.abs() / MAD_PER_SIGMA - s.noise)).max(floor);
    }

    /// Starts again from `level` (a regime change), keeping the noise.
    pub fn reset_to(&mut self, level: f64) {
        if let Some(s) = self.state.as_mut() {
            s.level = level;
        }
    }
}

fn seeded(values: &mut [f64], floor: f64) -> State {
    let level = median(values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - level).abs()).collect();
    let noise = (median(&mut deviations) / MEDIAN_AD_PER_SIGMA).max(floor);
    State { level, noise }
}

/// The median of `values` (reordered).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Normal};

    use super::*;

    #[test]
    fn tracks_level_and_noise_and_shrugs_off_wild_values() {
        let mut rng = StdRng::seed_from_u64(1);
        let noise = Normal::new(10.0, 0.5).unwrap();
        let mut l = Level::default();
        l.learn(1e6, 1.0, 0.01, 0.002, 1e-3); // a wild first value is outvoted by the seed
        for i in 0..20_000 {
            let y = if i % 50 == 0 {
                1e3
            } else {
                noise.sample(&mut rng)
            };
            l.learn(y, 1.0, 0.01, 0.002, 1e-3);
        }
        let (level, sigma) = l.get().unwrap();
        assert!((level - 10.0).abs() < 0.1, "{level}");
        assert!((sigma - 0.5).abs() < 0.1, "{sigma}");
    }

    #[test]
    fn follows_a_shift_at_the_rate_asked_and_can_be_reset() {
        let mut l = Level::default();
        for i in 0..SEED_VALUES {
            l.learn(if i % 2 == 0 { 0.9 } else { 1.1 }, 1.0, 0.05, 0.0, 1e-3);
        }
        assert!(l.get().is_some());
        for _ in 0..200 {
            l.learn(1.2, 1.0, 0.05, 0.0, 1e-3);
        }
        let (level, _) = l.get().unwrap();
        assert!(
            (level - 1.2).abs() < 1e-3,
            "a shift within the clip is followed: {level}"
        );
        // Beyond the clip, each value moves the level by at most CLIP noise units.
        let (before, noise) = l.get().unwrap();
        l.learn(100.0, 1.0, 0.05, 0.0, 1e-3);
        assert!(l.get().unwrap().0 - before <= 0.05 * CLIP * noise + 1e-12);
        l.reset_to(100.0);
        assert_eq!(l.get().unwrap().0, 100.0);
        // A weighted value counts like that many values.
        let mut a = l.clone();
        let mut b = l.clone();
        a.learn(100.01, 3.0, 0.05, 0.0, 1e-3);
        for _ in 0..3 {
            b.learn(100.01, 1.0, 0.05, 0.0, 1e-3);
        }
        assert!((a.get().unwrap().0 - b.get().unwrap().0).abs() < 1e-9);
    }
}
