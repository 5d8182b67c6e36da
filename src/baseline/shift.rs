//! Level shifts between two periods, for digests: did this step's latency distribution move,
//! significantly (a Mann-Whitney rank test) and by enough to matter (its median)?
//!
//! Both periods come as sketches (merged hourly rollups), so the test ranks buckets rather
//! than runs: values sharing a 1 %-wide bucket count as ties, which only makes it cautious.

use serde::{Deserialize, Serialize};

use super::params::ShiftParams;
use crate::baseline::sketch::Sketch;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shift {
    pub before_p50_ms: f64,
    pub after_p50_ms: f64,
    /// Relative change of the median (0.3 = 30 % slower, −0.2 = 20 % faster).
    pub change: f64,
    /// Two-sided p-value of the Mann-Whitney U test (normal approximation, ties corrected).
    pub p_value: f64,
    /// Significant and practically large: worth a line in the digest.
    pub significant: bool,
}

/// Compares `after` with `before`; `None` when either period has too few runs.
pub fn compare(before: &Sketch, after: &Sketch, params: &ShiftParams) -> Option<Shift> {
    let (n1, n2) = (before.count(), after.count());
    if n1 < params.min_samples || n2 < params.min_samples {
        return None;
    }
    let before_p50_ms = before.quantile(0.5)?;
    let after_p50_ms = after.quantile(0.5)?;
    let p_value = mann_whitney_p(before, after);
    let change = if before_p50_ms > 0.0 {
        after_p50_ms / before_p50_ms - 1.0
    } else if after_p50_ms > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let significant = p_value < params.alpha
        && change.abs() >= params.min_change
        && (after_p50_ms - before_p50_ms).abs() >= params.min_delta_ms;
    Some(Shift {
        before_p50_ms,
        after_p50_ms,
        change,
        p_value,
        significant,
    })
}

/// Rank-sum test over bucketed samples: each bucket is a group of ties.
fn mann_whitney_p(a: &Sketch, b: &Sketch) -> f64 {
    let (n1, n2) = (a.count() as f64, b.count() as f64);
    let total = n1 + n2;
    // Bucket index → (count in a, count in b); zeros sort below every bucket.
    let mut groups: std::collections::BTreeMap<i32, (f64, f64)> = Default::default();
    groups.insert(i32::MIN, (a.zeros() as f64, b.zeros() as f64));
    for (i, n) in a.buckets() {
        groups.entry(i).or_default().0 += n as f64;
    }
    for (i, n) in b.buckets() {
        groups.entry(i).or_default().1 += n as f64;
    }
    let mut rank_sum_a = 0.0;
    let mut below = 0.0;
    let mut tie_term = 0.0;
    for (ca, cb) in groups.into_values() {
        let t = ca + cb;
        if t == 0.0 {
            continue;
        }
        rank_sum_a += ca * (below + (t + 1.0) / 2.0);
        tie_term += t * t * t - t;
        below += t;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u - mean).abs() / var.sqrt();
    erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev fit, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, LogNormal};

    fn lognormal(rng: &mut StdRng, median: f64, sigma: f64, n: usize) -> Sketch {
        let mut s = Sketch::new();
        let dist = LogNormal::new(median.ln(), sigma).unwrap();
        dist.sample_iter(rng).take(n).for_each(|v| s.add(v));
        s
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-7, "erfc({x})");
        }
    }

    #[test]
    fn a_thirty_percent_regression_is_found_and_noise_is_not() {
        let params = ShiftParams::preset(crate::journey::Sensitivity::Medium).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let before = lognormal(&mut rng, 100.0, 0.15, 2000);
        let same = lognormal(&mut rng, 100.0, 0.15, 2000);
        let slower = lognormal(&mut rng, 140.0, 0.15, 2000);
        let quiet = compare(&before, &same, &params).unwrap();
        assert!(!quiet.significant && quiet.change.abs() < 0.05, "{quiet:?}");
        let shift = compare(&before, &slower, &params).unwrap();
        assert!(shift.significant && shift.p_value < 1e-10, "{shift:?}");
        assert!((shift.change - 0.4).abs() < 0.05, "{shift:?}");
        // Significant but small: +5 % is not news.
        let slightly = lognormal(&mut rng, 105.0, 0.15, 20_000);
        let big_before = lognormal(&mut rng, 100.0, 0.15, 20_000);
        let small = compare(&big_before, &slightly, &params).unwrap();
        assert!(small.p_value < 1e-6 && !small.significant, "{small:?}");
        assert!(compare(&Sketch::new(), &slower, &params).is_none());
    }
}
