//! The rolling window of a baseline: a histogram over the store sketch's logarithmic buckets
//! whose weights decay with time, so old runs fade out without being remembered one by one.
//!
//! Sharing the bucket layout with [`crate::baseline::sketch::Sketch`] lets a baseline be rebuilt from
//! hourly rollups after a restart, bucket for bucket. Memory is one `(i32, f32)` per occupied
//! bucket (1 % wide): about 60 for a step with ±15 % noise, a few hundred at most.

use crate::baseline::sketch::{self, Sketch};

/// Buckets lighter than this are dropped when the window decays.
const NEGLIGIBLE: f32 = 1e-3;
/// Values at or below the sketch's zero threshold are kept in this bucket (about 1 µs).
const FLOOR_INDEX: i32 = -346;

#[derive(Debug, Clone, Default)]
pub struct DecayedHistogram {
    /// Sorted by bucket index.
    buckets: Vec<(i32, f32)>,
    total: f64,
}

impl DecayedHistogram {
    pub fn total(&self) -> f64 {
        self.total
    }

    pub fn add(&mut self, value_ms: f64, weight: f32) {
        let index = sketch::bucket_index(value_ms).unwrap_or(FLOOR_INDEX);
        self.add_index(index, weight);
    }

    fn add_index(&mut self, index: i32, weight: f32) {
        match self.buckets.binary_search_by_key(&index, |b| b.0) {
            Ok(at) => self.buckets[at].1 += weight,
            Err(at) => self.buckets.insert(at, (index, weight)),
        }
        self.total += f64::from(weight);
    }

    /// Adds an hourly rollup's observations, each with `weight`.
    pub fn add_sketch(&mut self, sketch: &Sketch, weight: f32) {
        if sketch.zeros() > 0 {
            self.add_index(FLOOR_INDEX, weight * sketch.zeros() as f32);
        }
        for (index, count) in sketch.buckets() {
            self.add_index(index, weight * count as f32);
        }
    }

    /// Multiplies every weight by `factor` (in `0..=1`).
    pub fn decay(&mut self, factor: f64) {
        let factor = factor as f32;
        self.buckets.retain_mut(|b| {
            b.1 *= factor;
            b.1 >= NEGLIGIBLE
        });
        self.total = self.buckets.iter().map(|b| f64::from(b.1)).sum();
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
        self.total = 0.0;
    }

    /// The weighted quantiles `qs` (ascending, in `0..=1`), in one pass; `None` when empty.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.total <= 0.0 || self.buckets.is_empty() {
            return None;
        }
        let mut out = [0.0; N];
        let mut seen = 0.0f64;
        let mut q = 0;
        for &(index, weight) in &self.buckets {
            seen += f64::from(weight);
            while q < N && seen >= qs[q] * self.total {
                out[q] = sketch::bucket_value(index);
                q += 1;
            }
            if q == N {
                break;
            }
        }
        let last = sketch::bucket_value(self.buckets.last()?.0);
        out[q..].iter_mut().for_each(|v| *v = last);
        Some(out)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Heap memory held (the allocation, not just the occupied part).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(i32, f32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_known_values_within_bucket_accuracy() {
        let mut h = DecayedHistogram::default();
        for v in 1..=1000 {
            h.add(f64::from(v), 1.0);
        }
        let [q25, q50, q75] = h.quantiles([0.25, 0.5, 0.75]).unwrap();
        for (got, want) in [(q25, 250.0), (q50, 500.0), (q75, 750.0)] {
            assert!((got - want).abs() / want < 0.02, "{got} vs {want}");
        }
        assert_eq!(h.total(), 1000.0);
    }

    #[test]
    fn decay_lets_new_values_take_over_the_median() {
        let mut h = DecayedHistogram::default();
        for _ in 0..100 {
            h.add(10.0, 1.0);
        }
        h.decay(0.25);
        for _ in 0..30 {
            h.add(100.0, 1.0);
        }
        // 25 old against 30 new: the median is new.
        let [median] = h.quantiles([0.5]).unwrap();
        assert!((median - 100.0).abs() < 2.0, "{median}");
        h.decay(1e-6);
        assert_eq!(h.len(), 0, "negligible buckets are dropped");
    }

    #[test]
    fn rebuilt_from_a_sketch_answers_like_the_sketch() {
        let mut s = Sketch::new();
        let mut h = DecayedHistogram::default();
        for v in [0.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0] {
            s.add(v);
            h.add(v, 1.0);
        }
        let mut rebuilt = DecayedHistogram::default();
        rebuilt.add_sketch(&s, 1.0);
        assert_eq!(rebuilt.quantiles([0.5, 0.9]), h.quantiles([0.5, 0.9]));
        assert_eq!(
            h.quantiles([0.5]),
            Some([sketch::bucket_value(sketch::bucket_index(8.0).unwrap())])
        );
    }
}
