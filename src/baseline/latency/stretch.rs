//! The window's half of the anomaly likelihood: how improbable a stretch of unusual runs is,
//! from each run's tail probability alone; the autocorrelation that discounts it; and the
//! series' habitual bursts that a stretch must outlast.

/// A stretch is at least this many unusual runs of the window.
pub(super) const STRETCH_FROM: usize = 3;

/// The probability that `qs.len()` independent runs hold a stretch this unusual: for each
/// k of at least [`STRETCH_FROM`], that k of them have a tail probability at most the k-th
/// smallest seen (a binomial tail), the smallest of those, paid for the number of k tried.
/// Read from the deviations' own distribution, so it needs no model of its own that a missed
/// stretch could teach, and a burst of fewer than [`STRETCH_FROM`] runs (a slow request
/// and its retry) never makes a stretch: lone runs are judged as spikes.
pub(super) fn stretch_p(qs: &mut [f64]) -> f64 {
    let n = qs.len();
    if n < STRETCH_FROM {
        return 1.0;
    }
    qs.sort_by(f64::total_cmp);
    let tries = (n + 1 - STRETCH_FROM) as f64;
    let best = (STRETCH_FROM..=n)
        .map(|k| binomial_tail(n, k, qs[k - 1]))
        .fold(1.0, f64::min);
    (best * tries).min(1.0)
}

/// P(at least k of n successes), each with probability q.
pub(super) fn binomial_tail(n: usize, k: usize, q: f64) -> f64 {
    let q = q.clamp(0.0, 1.0);
    let mut choose = 1.0f64;
    let mut total = 0.0;
    for j in 0..=n {
        if j >= k {
            total += choose * q.powi(j as i32) * (1.0 - q).powi((n - j) as i32);
        }
        choose = choose * (n - j) as f64 / (j + 1) as f64;
    }
    total.min(1.0)
}

/// The deviations' lag-one autocorrelation, from how often consecutive learnt runs deviate
/// the same way: for a normal pair that share is 1/2 + asin(ρ)/π. Signs, not products, so
/// neither slow runs nor a stretch that was learnt before it was recognised can dominate it.
#[derive(Debug, Clone, Default)]
pub(super) struct Autocorrelation {
    /// Decayed number of pairs that deviated the same way, and of all pairs.
    same: f64,
    pairs: f64,
    /// The last learnt run's deviation and value.
    last: Option<(f64, f64)>,
}

/// The autocorrelation counts as at most this.
const MAX_RHO: f64 = 0.9;

impl Autocorrelation {
    /// Learns run `z` (deviation) of value `y` following the last one learnt.
    pub(super) fn learn(&mut self, z: f64, y: f64) {
        // Equal values (a counter's zeros) say nothing about how runs follow each other.
        if let Some((prev, _)) = self.last.filter(|&(_, prev_y)| prev_y != y) {
            self.same += f64::from(u8::from((z > 0.0) == (prev > 0.0)));
            self.pairs += 1.0;
        }
        self.last = Some((z, y));
    }

    pub(super) fn decay(&mut self, factor: f64) {
        self.same *= factor;
        self.pairs *= factor;
    }

    /// ρ in `0..=MAX_RHO`, 0 until `min_pairs` (decayed) pairs are known.
    pub(super) fn rho(&self, min_pairs: f64) -> f64 {
        if self.pairs < min_pairs {
            return 0.0;
        }
        (std::f64::consts::PI * (self.same / self.pairs - 0.5))
            .sin()
            .clamp(0.0, MAX_RHO)
    }
}

/// An episode of at most this many runs that ends on its own is a burst; the last [`BURSTS`]
/// are remembered, and [`HABIT_BURSTS`] of them make a habit.
const BURST_RUNS: u32 = 32;
const BURSTS: usize = 8;
const HABIT_BURSTS: usize = 3;

/// The series' latest short episodes that ended on their own: (end, runs they lasted).
#[derive(Debug, Clone, Default)]
pub(super) struct Bursts(std::collections::VecDeque<(i64, u32)>);

impl Bursts {
    /// Notes an episode that ended on its own at `end_ms` after `runs` unusual runs (only a
    /// short one is a burst).
    pub(super) fn ended(&mut self, end_ms: i64, runs: u32) {
        if !(STRETCH_FROM as u32..=BURST_RUNS).contains(&runs) {
            return;
        }
        if self.0.len() == BURSTS {
            self.0.pop_front();
        }
        self.0.push_back((end_ms, runs));
    }

    /// How many runs a stretch must outlast to open an episode at `at_ms`: once at least
    /// [`HABIT_BURSTS`] bursts ended within `horizon_ms`, the longest of them (on train, the
    /// longest scored 81.9 against 81.5 for the third-longest). A counter's routine bursts
    /// and a pattern not yet learnt stop paging, while a change that persists still does, a
    /// little later.
    pub(super) fn habit(&self, at_ms: i64, horizon_ms: i64) -> u32 {
        let recent = || {
            self.0
                .iter()
                .filter(move |(end, _)| at_ms - end <= horizon_ms)
        };
        if recent().count() < HABIT_BURSTS {
            return 0;
        }
        recent().map(|&(_, runs)| runs).max().unwrap_or(0)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(i64, u32)>()
    }
}
