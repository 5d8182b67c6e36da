//! What a baseline costs: nanoseconds to judge and learn one run, and memory per series.
//!
//!     cargo bench --bench detector_cost
//!
//! 1,000 series (log-normal latencies, 1 % failures, daily seasonality) advance together one
//! run a minute for 14 simulated days, as the service would feed them; repeated 5 times, the
//! median is printed.

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use waymark::baseline::{DetectorParams, SeriesDetector};
use waymark::journey::{AnomalySettings, Seasonality, Sensitivity};

const SERIES: usize = 1_000;
const MINUTES: i64 = 14 * 24 * 60;
const ROUNDS: usize = 5;

fn main() {
    for seasonality in [Seasonality::Off, Seasonality::Daily, Seasonality::Weekly] {
        let params = DetectorParams::resolve(AnomalySettings {
            sensitivity: Some(Sensitivity::Medium),
            seasonality: Some(seasonality),
            ..AnomalySettings::default()
        })
        .unwrap();
        let mut per_point = Vec::new();
        let mut memory = (0usize, 0usize);
        for round in 0..ROUNDS {
            let mut rng = StdRng::seed_from_u64(round as u64);
            let bases: Vec<f64> = (0..SERIES)
                .map(|_| 10f64.powf(rng.random_range(0.7..2.9)))
                .collect();
            let mut detectors: Vec<SeriesDetector> =
                (0..SERIES).map(|_| SeriesDetector::new(params)).collect();
            // Inputs drawn up front so the timing covers the detectors only.
            let noise: Vec<f64> = Normal::new(0.0, 0.1)
                .unwrap()
                .sample_iter(&mut rng)
                .take(4096)
                .collect();
            let fails: Vec<bool> = (0..4093).map(|_| rng.random_bool(0.01)).collect();
            let mut anomalous = 0usize;
            let started = Instant::now();
            for minute in 0..MINUTES {
                let at_ms = 1_767_571_200_000 + minute * 60_000;
                let hour = (minute / 60) % 24;
                let season =
                    1.0 + 0.3 * ((hour as f64 - 14.0) / 24.0 * std::f64::consts::TAU).cos();
                for (i, d) in detectors.iter_mut().enumerate() {
                    let k = (minute as usize * 31 + i * 7) % 4096;
                    let value = bases[i] * season * noise[k].exp();
                    let obs = d.observe(at_ms, value, !fails[k % 4093]);
                    anomalous += usize::from(obs.is_anomalous());
                }
            }
            let elapsed = started.elapsed();
            let points = SERIES as f64 * MINUTES as f64;
            per_point.push(elapsed.as_nanos() as f64 / points);
            let sizes: Vec<usize> = detectors.iter().map(SeriesDetector::memory_bytes).collect();
            memory = (
                sizes.iter().sum::<usize>() / SERIES,
                *sizes.iter().max().unwrap(),
            );
            std::hint::black_box(anomalous);
        }
        per_point.sort_by(f64::total_cmp);
        println!(
            "seasonality {seasonality:?}: {:.0} ns per run judged and learnt (median of {ROUNDS}; min {:.0}, max {:.0}); \
             memory per series: mean {} B, max {} B",
            per_point[ROUNDS / 2],
            per_point[0],
            per_point[ROUNDS - 1],
            memory.0,
            memory.1
        );
    }
}
