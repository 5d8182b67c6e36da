//! Warming a latency detector up from the store's hourly rollups after a restart: each hour's
//! values learnt as if they had come one by one.

use super::{HOUR_MS, HOUR_VALUES, LatencyDetector, REFRESH_EVERY};
use crate::baseline::sketch::Sketch;

impl LatencyDetector {
    /// Learns one hour of history from a stored rollup (used to warm up after a restart). The
    /// rollup's values are learnt in a well-mixed order, as if they had come one by one.
    pub fn absorb_hour(&mut self, hour: i64, sketch: &Sketch) {
        self.advance_to(hour);
        let start_ms = hour * 3_600_000;
        self.since_ms.get_or_insert(start_ms);
        let season = self.seasonal.offset(start_ms + 1_800_000);
        let kind = self.params.kind;
        let values: Vec<f64> = sketch_values(sketch)
            .flat_map(|(v, n)| std::iter::repeat_n(v, n as usize))
            .filter_map(|v| kind.transform(v))
            .collect();
        if values.is_empty() {
            return;
        }
        let spacing_ms = HOUR_MS / values.len() as f64;
        // A stride of about 0.618 of the length, coprime with it, visits every value once.
        let len = values.len();
        let mut stride = ((len as f64 * 0.618) as usize).max(1);
        while gcd(stride, len) != 1 {
            stride += 1;
        }
        let learning = self.has_history(start_ms);
        self.refresh();
        for i in 0..len {
            let y = values[(i * stride) % len];
            if let Some((level, noise)) = self.level.get().filter(|_| learning) {
                self.deviations.add((y - level - season) / noise, 1.0);
            }
            self.learn(y, season, 1.0, spacing_ms);
        }
        self.hour.clear();
        self.hour
            .extend(values.iter().take(HOUR_VALUES).map(|&y| y as f32));
        self.last_ms = Some(start_ms + 3_600_000);
        self.since_refresh = REFRESH_EVERY;
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A sketch's contents as (representative value, count) pairs, zeros included.
fn sketch_values(sketch: &Sketch) -> impl Iterator<Item = (f64, u64)> + '_ {
    let zeros = (sketch.zeros() > 0).then(|| (0.0, sketch.zeros()));
    zeros.into_iter().chain(
        sketch
            .buckets()
            .map(|(i, n)| (crate::baseline::sketch::bucket_value(i), n)),
    )
}
