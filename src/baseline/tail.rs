//! How improbable a value of a statistic is, judged by the series' own history of it.
//!
//! A detector that assumes normal noise is wrong on exactly the series that matter: a heavy
//! tail of slow runs, a counter that is mostly zero, a spike every hour. So the distribution is
//! learnt: a decaying histogram of the statistic answers the bulk, and beyond a high quantile
//! on each side the tail is extrapolated as exponential, with its rate fitted to the observed
//! excesses (peaks over threshold), but never below the share of the history that lies that
//! far out once it is a habit (three runs' worth). A value far beyond anything seen gets a tiny probability when the history's
//! excesses are small, and only a modest one when large excursions are this series' habit,
//! even a rare one. Memory is fixed: [`BINS`] weights.

/// Histogram bins over `asinh(x)`, [`WIDTH`] wide from `−EDGE` to `EDGE`: fine near zero and
/// still a few per doubling a million units out, so no value falls off the ends, whatever the
/// series' noise is measured in.
const BINS: usize = 400;
const WIDTH: f64 = 0.08;
const EDGE: f64 = BINS as f64 * WIDTH / 2.0;
/// The tail beyond this fraction of the history (on each side) is extrapolated.
const TAIL_FRACTION: f64 = 0.02;
/// Prior of the excess fit: a mean excess of this many units, worth this many observations
/// (a normal law's excess over its 98th percentile averages about 0.4).
const PRIOR_EXCESS: f64 = 0.5;
const PRIOR_WEIGHT: f64 = 3.0;
/// Beyond the fitted tail, the history's own share counts once it holds this much weight
/// (three runs, decayed): a habit, not one earlier incident.
const HABIT: f64 = 3.0;
/// Tail probabilities never count as smaller than this (−log10 = 12).
pub const MIN_P: f64 = 1e-12;

/// Where the extrapolated tails begin and how fast they fall, and the weight at or above
/// each bin, as of the last refresh.
#[derive(Debug, Clone, PartialEq)]
struct Cuts {
    upper: f64,
    upper_excess: f64,
    lower: f64,
    lower_excess: f64,
    /// `above[i]`: weight in bins `i..`, as a fraction of the total.
    above: Vec<f32>,
    total: f64,
}

#[derive(Debug, Clone)]
pub struct TailModel {
    bins: Box<[f32; BINS]>,
    total: f64,
    cuts: Option<Cuts>,
}

impl Default for TailModel {
    fn default() -> Self {
        TailModel {
            bins: Box::new([0.0; BINS]),
            total: 0.0,
            cuts: None,
        }
    }
}

/// The bin of `x` and its position within it (0..1).
fn locate(x: f64) -> (usize, f64) {
    let t = (x.asinh() + EDGE) / WIDTH;
    let i = t.floor().clamp(0.0, (BINS - 1) as f64);
    (i as usize, (t - i).clamp(0.0, 1.0))
}

fn edge(i: usize) -> f64 {
    (i as f64 * WIDTH - EDGE).sinh()
}

fn centre(i: usize) -> f64 {
    ((i as f64 + 0.5) * WIDTH - EDGE).sinh()
}

impl TailModel {
    /// Decayed number of values learnt.
    pub fn total(&self) -> f64 {
        self.total
    }

    pub fn heap_bytes(&self) -> usize {
        BINS * std::mem::size_of::<f32>() + self.cuts.as_ref().map_or(0, |c| c.above.capacity() * 4)
    }

    pub fn add(&mut self, x: f64, weight: f64) {
        if !x.is_finite() {
            return;
        }
        self.bins[locate(x).0] += weight as f32;
        self.total += weight;
    }

    /// Multiplies every weight by `factor` (in `0..=1`).
    pub fn decay(&mut self, factor: f64) {
        let f = factor as f32;
        self.bins.iter_mut().for_each(|w| *w *= f);
        self.total *= factor;
    }

    /// Recomputes the tails' fit and the cumulative weights (call every few values, not every
    /// one: probabilities lag the learning by that many values).
    pub fn refresh(&mut self) {
        if self.total <= 0.0 {
            self.cuts = None;
            return;
        }
        let mut above = self.cuts.take().map(|c| c.above).unwrap_or_default();
        above.clear();
        above.resize(BINS + 1, 0.0);
        let mut sum = 0.0f64;
        for i in (0..BINS).rev() {
            sum += f64::from(self.bins[i]);
            above[i] = (sum / self.total) as f32;
        }
        let cut = TAIL_FRACTION * self.total;
        let (upper, upper_excess) = self.tail_fit(cut, (0..BINS).rev(), 1.0);
        let (lower, lower_excess) = self.tail_fit(cut, 0..BINS, -1.0);
        self.cuts = Some(Cuts {
            upper,
            upper_excess,
            lower,
            lower_excess,
            above,
            total: self.total,
        });
    }

    /// The cut where `cut` weight lies beyond (walking `order` from the extreme inwards) and
    /// the mean excess of that weight beyond it, along `sign`.
    fn tail_fit(&self, cut: f64, order: impl Iterator<Item = usize>, sign: f64) -> (f64, f64) {
        let mut taken: Vec<(usize, f64)> = Vec::new();
        let mut seen = 0.0f64;
        for i in order {
            let w = f64::from(self.bins[i]);
            if w <= 0.0 {
                continue;
            }
            taken.push((i, w));
            seen += w;
            if seen >= cut {
                break;
            }
        }
        let Some(&(last, _)) = taken.last() else {
            return (0.0, PRIOR_EXCESS);
        };
        // The cut is the inner edge of the last bin taken.
        let threshold = if sign > 0.0 {
            edge(last)
        } else {
            edge(last + 1)
        };
        let excess: f64 = taken
            .iter()
            .map(|&(i, w)| w * sign * (centre(i) - threshold))
            .sum();
        let mean = (excess + PRIOR_EXCESS * PRIOR_WEIGHT) / (seen + PRIOR_WEIGHT);
        (threshold, mean.max(0.05))
    }

    /// Probability of a value at least as high as `x`.
    pub fn upper(&self, x: f64) -> f64 {
        self.tail(x, 1.0)
    }

    /// Probability of a value at least as low as `x`.
    pub fn lower(&self, x: f64) -> f64 {
        self.tail(x, -1.0)
    }

    fn side(c: &Cuts, sign: f64) -> (f64, f64) {
        if sign > 0.0 {
            (c.upper, c.upper_excess)
        } else {
            (c.lower, c.lower_excess)
        }
    }

    fn tail(&self, x: f64, sign: f64) -> f64 {
        let Some(c) = self.cuts.as_ref() else {
            return 1.0;
        };
        let (cut, excess) = Self::side(c, sign);
        let beyond = sign * (x - cut);
        let empirical = Self::beyond(c, x, sign);
        if beyond > 0.0 {
            // The fit describes the tail as a whole; where the history itself holds values
            // this far out (a habit of rare large excursions), they count as they are.
            let fitted = Self::beyond(c, cut, sign) * (-beyond / excess).exp();
            let habit = empirical * c.total >= HABIT;
            return fitted.max(if habit { empirical } else { 0.0 }).max(MIN_P);
        }
        empirical.max(MIN_P)
    }

    /// Weight fraction at or beyond `x` along `sign`, interpolated within its bin.
    fn beyond(c: &Cuts, x: f64, sign: f64) -> f64 {
        let (i, within) = locate(x);
        let (here, next) = (f64::from(c.above[i]), f64::from(c.above[i + 1]));
        let bin = here - next;
        let up = next + (1.0 - within) * bin;
        if sign > 0.0 { up } else { 1.0 - up }.clamp(0.0, 1.0)
    }

    /// The value beyond which (along the upper side) the probability falls to `p`.
    pub fn upper_quantile(&self, p: f64) -> Option<f64> {
        self.quantile(p, 1.0)
    }

    pub fn lower_quantile(&self, p: f64) -> Option<f64> {
        self.quantile(p, -1.0)
    }

    fn quantile(&self, p: f64, sign: f64) -> Option<f64> {
        let c = self.cuts.as_ref()?;
        let (cut, excess) = Self::side(c, sign);
        let at_cut = Self::beyond(c, cut, sign);
        if p < at_cut {
            let mut x = cut + sign * excess * (at_cut / p).ln();
            // Where the history itself holds more than p beyond, the quantile lies further out.
            let (mut i, _) = locate(x);
            while Self::beyond(c, x, sign) > p
                && Self::beyond(c, x, sign) * c.total >= HABIT
                && 0 < i
                && i < BINS - 1
            {
                i = if sign > 0.0 { i + 1 } else { i - 1 };
                x = if sign > 0.0 { edge(i) } else { edge(i + 1) };
            }
            return Some(x);
        }
        // Within the bulk: walk inwards bin by bin until the tail weight reaches p.
        let (mut i, _) = locate(cut);
        loop {
            let x = if sign > 0.0 { edge(i) } else { edge(i + 1) };
            if Self::beyond(c, x, sign) >= p || i == 0 || i == BINS - 1 {
                return Some(x);
            }
            i = if sign > 0.0 { i - 1 } else { i + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Exp, Normal};

    use super::*;

    fn learnt(values: impl Iterator<Item = f64>) -> TailModel {
        let mut t = TailModel::default();
        for v in values {
            t.add(v, 1.0);
        }
        t.refresh();
        t
    }

    #[test]
    fn the_bulk_matches_the_empirical_distribution() {
        let mut rng = StdRng::seed_from_u64(1);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let t = learnt((0..100_000).map(|_| normal.sample(&mut rng)));
        // P(Z ≥ 1) = 0.159, P(Z ≤ -1.5) = 0.067 for a standard normal.
        assert!((t.upper(1.0) - 0.159).abs() < 0.01, "{}", t.upper(1.0));
        assert!((t.lower(-1.5) - 0.067).abs() < 0.01, "{}", t.lower(-1.5));
        assert!((t.upper(-10.0) - 1.0).abs() < 1e-9);
        // Far beyond the data, the extrapolated tail is tiny but not zero, and monotone.
        let (p6, p9) = (t.upper(6.0), t.upper(9.0));
        assert!(p6 < 1e-5 && p9 < p6 && p9 >= MIN_P, "{p6} {p9}");
        // The quantile inverts the tail.
        let x = t.upper_quantile(1e-4).unwrap();
        assert!(
            (t.upper(x) / 1e-4 - 1.0).abs() < 0.05,
            "{x}: {}",
            t.upper(x)
        );
        let x = t.lower_quantile(0.1).unwrap();
        assert!((t.lower(x) - 0.1).abs() < 0.02, "{x}: {}", t.lower(x));
    }

    #[test]
    fn a_habit_of_large_excursions_makes_them_unremarkable() {
        let mut rng = StdRng::seed_from_u64(2);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let bursts = Exp::new(0.2).unwrap(); // mean 5 units above the bulk
        let calm = learnt((0..50_000).map(|_| normal.sample(&mut rng)));
        let bursty = learnt((0..50_000).map(|i| {
            let z = normal.sample(&mut rng);
            if i % 20 == 0 {
                3.0 + bursts.sample(&mut rng)
            } else {
                z
            }
        }));
        // Excursions hundreds of units out (a mostly idle counter's bursts, in the units of
        // its tiny noise) are resolved as well: beyond the largest, the tail falls fast.
        let huge = learnt((0..10_000).map(|i| {
            if i % 10 == 0 {
                100.0 + f64::from(i % 7) * 20.0
            } else {
                0.0
            }
        }));
        assert!(huge.upper(150.0) > 0.03, "{}", huge.upper(150.0));
        assert!(huge.upper(1000.0) < 1e-9, "{}", huge.upper(1000.0));
        // A value 8 units up: extraordinary for the calm series, routine for the bursty one.
        assert!(calm.upper(8.0) < 1e-8, "{}", calm.upper(8.0));
        assert!(bursty.upper(8.0) > 1e-3, "{}", bursty.upper(8.0));
        // The lower side of the bursty series is still normal.
        assert!(bursty.lower(-6.0) < 1e-5, "{}", bursty.lower(-6.0));
    }

    #[test]
    fn decay_forgets_and_an_empty_model_judges_nothing() {
        let mut t = TailModel::default();
        assert_eq!(t.upper(100.0), 1.0);
        assert_eq!(t.upper_quantile(0.01), None);
        for _ in 0..1000 {
            t.add(0.0, 1.0);
        }
        t.decay(0.001);
        for _ in 0..1000 {
            t.add(5.0, 1.0);
        }
        t.refresh();
        assert!(
            t.upper(4.5) > 0.99,
            "old zeros have faded: {}",
            t.upper(4.5)
        );
        assert!((t.total() - 1001.0).abs() < 1e-6);
    }
}
