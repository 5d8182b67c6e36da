//! The window score of the anomaly benchmark: how a detector's detection instants are
//! scored against labelled anomalies, in the spirit of the public streaming-anomaly
//! benchmarks (one window per anomaly, early detections rewarded, false alarms charged,
//! misses charged, normalised so that "detect nothing" is 0 and "perfect" is 100).
//!
//! Pure: no IO, no clock. Instants are plain integers in one unit of the caller's choice
//! (the benchmark uses unix seconds); only their differences and ratios matter.
//!
//! The rules, and why (docs/anomaly-detection.md has the same in prose):
//! - **Windows.** Each labelled anomaly gets one window that starts at the anomaly's start
//!   and lasts `WINDOW_SHARE` (10 %) of the series divided by the series' number of
//!   anomalies, or the anomaly's own extent when that is longer (a permanent change counts
//!   no extent). The labels are exact, so the window is not centred: a causal detector
//!   cannot see an anomaly before it starts, and a detection before it is a false alarm
//!   that happened to be close. A window ends where the next one starts, and at the end of
//!   the series; anomalies starting at the same instant share one window.
//! - **Reward.** The first detection in a window earns `true_positive × σ(p)`, where `p` is
//!   its relative position in the window (0 at the start, 1 at the end) and
//!   `σ(p) = 2 / (1 + e^(5 (p − 1))) − 1`: about 0.99 at the start, 0 at the end. Further
//!   detections in the same window count nothing: one anomaly is one page.
//! - **False alarms.** A detection outside every window costs `false_positive`, scaled by
//!   `−σ(1 + d)` when it comes `d` window lengths after the end of the previous window, so
//!   a late detection just after a window costs little and one a window length later costs
//!   nearly the full weight. Before the first window it costs the full weight.
//! - **Misses.** A window without a detection costs `false_negative`.
//! - **Normalisation.** Over a whole corpus, `score = 100 (raw − null) / (perfect − null)`,
//!   where `null` is what detecting nothing earns (`−false_negative` per window) and
//!   `perfect` what one detection at the start of every window earns.

use std::ops::Range;

/// The weights of one scoring profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    /// Weight of the reward for the first detection in a window.
    pub true_positive: f64,
    /// Cost of a detection outside every window (before the late-detection discount).
    pub false_positive: f64,
    /// Cost of a window without a detection.
    pub false_negative: f64,
}

/// False alarms and misses weighed as in the public benchmarks' standard profile.
pub const STANDARD: Profile = Profile {
    name: "standard",
    true_positive: 1.0,
    false_positive: 0.11,
    false_negative: 1.0,
};

/// For users who would rather miss something than be paged for nothing.
pub const REWARD_LOW_FP: Profile = Profile {
    name: "reward_low_fp",
    false_positive: 0.22,
    ..STANDARD
};

/// For users who would rather be paged for nothing than miss something.
pub const REWARD_LOW_FN: Profile = Profile {
    name: "reward_low_fn",
    false_negative: 2.0,
    ..STANDARD
};

pub const PROFILES: [Profile; 3] = [STANDARD, REWARD_LOW_FP, REWARD_LOW_FN];

/// Share of a series covered by its anomaly windows, before windows are stretched to their
/// anomaly's extent.
pub const WINDOW_SHARE: f64 = 0.1;

/// Steepness of the reward sigmoid: with 5, a detection at the start of its window earns
/// 0.99 of the weight, one halfway 0.85.
const STEEPNESS: f64 = 5.0;

/// A labelled anomaly: `[start, end)`, `end` `None` for a permanent change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labelled {
    pub start: i64,
    pub end: Option<i64>,
}

/// The scoring window of one anomaly: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    fn len(&self) -> f64 {
        (self.end - self.start) as f64
    }
}

/// The windows of a series spanning `series` (first run to end of the series) with these
/// anomalies, in time order.
pub fn windows(series: Range<i64>, anomalies: &[Labelled]) -> Vec<Window> {
    let mut starts: Vec<&Labelled> = anomalies
        .iter()
        .filter(|a| series.contains(&a.start))
        .collect();
    starts.sort_by_key(|a| a.start);
    starts.dedup_by_key(|a| a.start);
    if starts.is_empty() {
        return Vec::new();
    }
    let share =
        ((series.end - series.start) as f64 * WINDOW_SHARE / starts.len() as f64).ceil() as i64;
    let share = share.max(1);
    let mut out: Vec<Window> = Vec::with_capacity(starts.len());
    for (i, a) in starts.iter().enumerate() {
        let extent = a.end.map_or(0, |e| e - a.start);
        let next = starts.get(i + 1).map_or(series.end, |n| n.start);
        out.push(Window {
            start: a.start,
            end: (a.start + share.max(extent)).min(next).min(series.end),
        });
    }
    out
}

/// `σ(p)`: 1 before the window's start (never used there), about 0.99 at the start, 0 at
/// the end, and towards −1 past it.
fn sigmoid(p: f64) -> f64 {
    2.0 / (1.0 + (STEEPNESS * (p - 1.0)).exp()) - 1.0
}

/// What a corpus (or one series) scored under one profile. Add series together with
/// [`Outcome::add`], then read [`Outcome::normalised`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    pub raw: f64,
    /// What detecting nothing would have scored.
    pub null: f64,
    /// What one detection at the start of every window would have scored.
    pub perfect: f64,
    pub windows: usize,
    /// Windows with at least one detection.
    pub hits: usize,
    /// Detections outside every window.
    pub false_positives: usize,
}

impl Outcome {
    pub fn add(&mut self, other: &Outcome) {
        self.raw += other.raw;
        self.null += other.null;
        self.perfect += other.perfect;
        self.windows += other.windows;
        self.hits += other.hits;
        self.false_positives += other.false_positives;
    }

    /// 0 for detecting nothing, 100 for perfect; below 0 when false alarms outweigh the
    /// hits. `None` without any window to normalise by.
    pub fn normalised(&self) -> Option<f64> {
        let span = self.perfect - self.null;
        (span > 0.0).then(|| 100.0 * (self.raw - self.null) / span)
    }
}

/// Scores one series' detection instants against its windows (from [`windows`]).
pub fn score(windows: &[Window], detections: &[i64], profile: &Profile) -> Outcome {
    let mut detections = detections.to_vec();
    detections.sort_unstable();
    let n = windows.len();
    let mut out = Outcome {
        null: -profile.false_negative * n as f64,
        perfect: profile.true_positive * sigmoid(0.0) * n as f64,
        windows: n,
        ..Outcome::default()
    };
    let mut hit = vec![false; n];
    for t in detections {
        // Windows are in time order and disjoint: the last one starting at or before t.
        let i = windows.partition_point(|w| w.start <= t);
        match i.checked_sub(1).map(|j| (j, &windows[j])) {
            Some((j, w)) if t < w.end => {
                if !hit[j] {
                    hit[j] = true;
                    out.hits += 1;
                    out.raw += profile.true_positive * sigmoid((t - w.start) as f64 / w.len());
                }
            }
            Some((_, w)) => {
                out.false_positives += 1;
                let after = (t - w.end) as f64 / w.len();
                out.raw -= profile.false_positive * -sigmoid(1.0 + after);
            }
            None => {
                out.false_positives += 1;
                out.raw -= profile.false_positive;
            }
        }
    }
    out.raw -= profile.false_negative * (n - out.hits) as f64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const SERIES: Range<i64> = 0..30 * DAY;

    fn transient(start: i64, len: i64) -> Labelled {
        Labelled {
            start,
            end: Some(start + len),
        }
    }

    /// Three series: two with anomalies, one without.
    fn corpus() -> Vec<Vec<Window>> {
        let a = [transient(3 * DAY, 3600), transient(10 * DAY, 600)];
        let b = [Labelled {
            start: 15 * DAY,
            end: None,
        }];
        vec![windows(SERIES, &a), windows(SERIES, &b), Vec::new()]
    }

    fn corpus_score(detections: &[Vec<i64>], profile: &Profile) -> f64 {
        let mut total = Outcome::default();
        for (w, d) in corpus().iter().zip(detections) {
            total.add(&score(w, d, profile));
        }
        total.normalised().unwrap()
    }

    fn starts() -> Vec<Vec<i64>> {
        corpus()
            .iter()
            .map(|ws| ws.iter().map(|w| w.start).collect())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn window_width_is_a_tenth_of_the_series_over_the_anomalies_at_least_the_extent() {
        let w = windows(
            SERIES,
            &[transient(3 * DAY, 3600), transient(10 * DAY, 600)],
        );
        // 30 days × 10 % / 2 anomalies = 1.5 days.
        assert_eq!(
            w[0],
            Window {
                start: 3 * DAY,
                end: 3 * DAY + 3 * DAY / 2
            }
        );
        let long = windows(SERIES, &[transient(3 * DAY, 5 * DAY)]);
        assert_eq!(long[0].end, 8 * DAY, "a long anomaly keeps its extent");
        let permanent = windows(
            SERIES,
            &[Labelled {
                start: 20 * DAY,
                end: None,
            }],
        );
        assert_eq!(
            permanent[0].end,
            23 * DAY,
            "a permanent change counts no extent"
        );
        let crowded = windows(SERIES, &[transient(DAY, 4 * DAY), transient(2 * DAY, 60)]);
        assert_eq!(
            crowded[0].end,
            2 * DAY,
            "a window ends where the next starts"
        );
        let late = windows(SERIES, &[transient(29 * DAY, 60)]);
        assert_eq!(late[0].end, 30 * DAY, "and at the end of the series");
    }

    #[test]
    fn a_perfect_detector_scores_100_and_a_silent_one_0() {
        for profile in &PROFILES {
            assert!(
                close(corpus_score(&starts(), profile), 100.0),
                "{profile:?}"
            );
            let nothing = vec![Vec::new(); 3];
            assert!(close(corpus_score(&nothing, profile), 0.0), "{profile:?}");
        }
    }

    #[test]
    fn one_false_alarm_per_series_lowers_the_score() {
        let mut d = starts();
        for (i, s) in d.iter_mut().enumerate() {
            s.push(25 * DAY + i as i64);
        }
        let s = corpus_score(&d, &STANDARD);
        assert!(s < 100.0 - 1.0, "{s}");
        let before = corpus_score(&[vec![DAY], vec![], vec![]], &STANDARD);
        assert!(
            before < 0.0,
            "an alarm before any window costs the full weight: {before}"
        );
    }

    #[test]
    fn a_false_alarm_just_after_a_window_costs_less_than_a_far_one() {
        let w = corpus()[0].clone();
        let mut near = starts()[0].clone();
        near.push(w[0].end + 60);
        let mut far = starts()[0].clone();
        far.push(w[0].end + 2 * (w[0].end - w[0].start));
        let (near, far) = (score(&w, &near, &STANDARD), score(&w, &far, &STANDARD));
        assert_eq!((near.false_positives, far.false_positives), (1, 1));
        assert!(near.raw > far.raw, "{near:?} {far:?}");
    }

    #[test]
    fn earlier_detection_scores_more_than_late() {
        let later = |delay: i64| {
            let d: Vec<Vec<i64>> = starts()
                .iter()
                .map(|s| s.iter().map(|t| t + delay).collect())
                .collect();
            corpus_score(&d, &STANDARD)
        };
        let (early, mid, late) = (later(180), later(DAY / 2), later(DAY));
        assert!(early > mid && mid > late, "{early} {mid} {late}");
        assert!(late > 0.0, "a late detection still beats none");
    }

    #[test]
    fn a_second_detection_in_a_window_adds_nothing() {
        let mut d = starts();
        d[0].push(3 * DAY + 120);
        d[1].push(15 * DAY + 1);
        assert!(close(corpus_score(&d, &STANDARD), 100.0));
        let w = &corpus()[0];
        assert_eq!(score(w, &d[0], &STANDARD).hits, 2);
    }

    #[test]
    fn profiles_order_sensibly() {
        // Every anomaly found halfway through its window, and two false alarms per series.
        let noisy: Vec<Vec<i64>> = corpus()
            .iter()
            .map(|ws| {
                let mut d: Vec<i64> = ws.iter().map(|w| (w.start + w.end) / 2).collect();
                d.extend([DAY / 2, 28 * DAY]);
                d
            })
            .collect();
        let [std, low_fp, low_fn] = PROFILES.map(|p| corpus_score(&noisy, &p));
        assert!(low_fp < std && std < low_fn, "{low_fp} {std} {low_fn}");
        // Without false alarms, weighing them differently changes nothing.
        let quiet = vec![starts()[0].clone(), Vec::new(), Vec::new()];
        let (std, low_fp) = (
            corpus_score(&quiet, &STANDARD),
            corpus_score(&quiet, &REWARD_LOW_FP),
        );
        assert!(
            close(std, low_fp) && std > 0.0 && std < 100.0,
            "{std} {low_fp}"
        );
    }
}
