//! A mergeable latency sketch: a sparse histogram over logarithmic buckets (DDSketch-style).
//!
//! A value `v > 0` falls in bucket `i = ceil(log_γ v)` with `γ = (1 + α) / (1 − α)`; the bucket
//! answers with `2γ^i / (γ + 1)`, within `α` (1 %) of every value it holds. Sketches of the
//! same `α` merge by adding counts, so hourly rollups combine into days without losing accuracy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Relative accuracy of every quantile the sketch answers.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this (milliseconds) count as zero.
const MIN_VALUE: f64 = 1e-6;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bucket a value falls in; `None` for values that count as zero (or are not finite).
pub fn bucket_index(value: f64) -> Option<i32> {
    (value.is_finite() && value > MIN_VALUE).then(|| (value.ln() / gamma().ln()).ceil() as i32)
}

/// The value a bucket answers with: within [`RELATIVE_ACCURACY`] of everything it holds.
pub fn bucket_value(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    #[serde(rename = "n")]
    count: u64,
    #[serde(rename = "z", default)]
    zero: u64,
    #[serde(rename = "b", default)]
    buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds one observation (non-finite values are ignored).
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.count += 1;
        match bucket_index(value) {
            Some(index) => *self.buckets.entry(index).or_default() += 1,
            None => self.zero += 1,
        }
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        self.count += other.count;
        self.zero += other.zero;
        for (&i, &n) in &other.buckets {
            *self.buckets.entry(i).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Observations that counted as zero.
    pub fn zeros(&self) -> u64 {
        self.zero
    }

    /// Non-empty buckets, `(index, count)` in increasing order of value.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().map(|(&i, &n)| (i, n))
    }

    /// The nearest-rank `q` quantile (`0.0..=1.0`): within [`RELATIVE_ACCURACY`] of the
    /// observation of rank `ceil(q·n)`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        for (&i, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        // Counts disagree (a hand-edited row): answer with the largest bucket.
        self.buckets.keys().next_back().map(|&i| bucket_value(i))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a sketch serialises")
    }

    pub fn from_json(text: &str) -> Result<Sketch, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn exact(sorted: &[f64], q: f64) -> f64 {
        let n = sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted[rank - 1]
    }

    fn samples(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                // Log-uniform over 0.05 ms .. 50 s, with a heavy tail like real latencies.
                let e: f64 = rng.random_range(-3.0..4.7);
                10f64.powf(e)
            })
            .collect()
    }

    #[test]
    fn quantiles_within_two_percent_of_exact() {
        for seed in 0..5 {
            let data = samples(seed, 20_000);
            let mut sketch = Sketch::new();
            data.iter().for_each(|&v| sketch.add(v));
            let mut sorted = data.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.5, 0.95, 0.99, 0.0, 1.0] {
                let want = exact(&sorted, q);
                let got = sketch.quantile(q).unwrap();
                let err = (got - want).abs() / want;
                assert!(err <= 0.02, "seed {seed} q {q}: {got} vs {want} ({err})");
            }
        }
    }

    #[test]
    fn merged_sketches_equal_one_sketch_of_all_values() {
        let a = samples(10, 5_000);
        let b = samples(11, 7_000);
        let mut sa = Sketch::new();
        a.iter().for_each(|&v| sa.add(v));
        let mut sb = Sketch::new();
        b.iter().for_each(|&v| sb.add(v));
        let mut all = Sketch::new();
        a.iter().chain(&b).for_each(|&v| all.add(v));
        sa.merge(&sb);
        assert_eq!(sa, all);
        assert_eq!(sa.count(), 12_000);
        let mut sorted: Vec<f64> = a.iter().chain(&b).copied().collect();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let want = exact(&sorted, q);
            assert!((sa.quantile(q).unwrap() - want).abs() / want <= 0.02);
        }
    }

    #[test]
    fn zeros_empty_and_json_round_trip() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        s.add(0.0);
        s.add(0.0);
        s.add(12.5);
        s.add(f64::NAN);
        assert_eq!(s.count(), 3);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 12.5).abs() / 12.5 <= RELATIVE_ACCURACY);
        assert_eq!(Sketch::from_json(&s.to_json()).unwrap(), s);
    }
}
