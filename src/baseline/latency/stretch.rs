//! How improbable a stretch of unusual runs is, from each run's tail probability alone: the
//! window's half of the anomaly likelihood, as pure functions.

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
