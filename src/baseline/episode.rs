//! Anomaly episodes: when a series' anomalous runs add up to something worth telling, and
//! when it is over. One stray slow run is not an episode; `k` of the last `n` are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most recent runs an episode rule can look at.
pub const MAX_RECENT: u32 = 16;

crate::words::words! {
    /// Which detector raised an episode.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DetectorKind {
        Latency,
        FailureRate,
    }
}

/// One episode, open (`end_ms == None`) or over. Instants are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub detector: DetectorKind,
    /// The first anomalous run of the episode.
    pub start_ms: i64,
    /// The run that made it an episode.
    pub detected_ms: i64,
    /// The first normal run after the last anomalous one, once the episode is over.
    pub end_ms: Option<i64>,
    /// Largest score seen: robust deviations (latency) or −log10 p (failure rate).
    pub peak_score: f64,
    /// The observation at the peak: milliseconds, or the recent failure rate.
    pub peak_value: f64,
    /// What the baseline expected when the episode was detected: milliseconds, or a failure rate.
    pub baseline: f64,
    /// Runs judged anomalous during the episode.
    pub anomalous_runs: u32,
}

/// A change of a series' episode state, as returned by a detector.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started(Episode),
    Ended(Episode),
}

impl Transition {
    pub fn episode(&self) -> &Episode {
        match self {
            Transition::Started(e) | Transition::Ended(e) => e,
        }
    }
}

/// The k-of-n start and m-consecutive-normal end rule over a stream of judged runs.
#[derive(Debug, Clone, Default)]
pub struct KOfN {
    /// Bit i set: the run i places back was anomalous (bit 0 is the newest).
    flags: u16,
    /// Instants of the last runs, newest first (as many as `n`).
    times: [i64; MAX_RECENT as usize],
    judged: u32,
    normal_streak: u32,
    /// Instant of the first normal run after the last anomalous one.
    first_normal_ms: Option<i64>,
}

/// What [`KOfN::push`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Quiet,
    /// `k` of the last `n` are anomalous; the first of them ran at this instant.
    Start(i64),
    /// `m` normal runs in a row; the first of them ran at this instant.
    End(i64),
}

impl KOfN {
    /// Adds one judged run. `open` says whether an episode is currently open.
    pub fn push(
        &mut self,
        at_ms: i64,
        anomalous: bool,
        open: bool,
        k: u32,
        n: u32,
        m: u32,
    ) -> Rule {
        let n = n.clamp(1, MAX_RECENT);
        self.flags = (self.flags << 1) | u16::from(anomalous);
        self.times.copy_within(0..MAX_RECENT as usize - 1, 1);
        self.times[0] = at_ms;
        self.judged = (self.judged + 1).min(MAX_RECENT);
        let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        if anomalous {
            self.normal_streak = 0;
            self.first_normal_ms = None;
        } else {
            self.normal_streak += 1;
            self.first_normal_ms.get_or_insert(at_ms);
        }
        if !open {
            if (self.flags & mask).count_ones() >= k.max(1) {
                let oldest = (0..n.min(self.judged))
                    .rev()
                    .find(|&i| self.flags & (1 << i) != 0)
                    .unwrap_or(0);
                return Rule::Start(self.times[oldest as usize]);
            }
        } else if self.normal_streak >= m.max(1) {
            return Rule::End(self.first_normal_ms.unwrap_or(at_ms));
        }
        Rule::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh rule fed `flags` a minute apart: what it said at each, and whether an episode
    /// is open at the end.
    fn feed(flags: &[u8]) -> (Vec<Rule>, bool) {
        let mut rule = KOfN::default();
        let mut open = false;
        let mut out = Vec::new();
        for (i, &f) in flags.iter().enumerate() {
            let r = rule.push(i as i64 * 60_000, f == 1, open, 3, 5, 4);
            match r {
                Rule::Start(_) => open = true,
                Rule::End(_) => open = false,
                Rule::Quiet => {}
            }
            out.push(r);
        }
        (out, open)
    }

    #[test]
    fn three_of_five_start_and_four_normal_end() {
        let (rules, open) = feed(&[0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0]);
        // Runs 4, 6, 7 are three of the last five at run 7: the episode starts at run 4.
        let starts: Vec<usize> = (0..rules.len())
            .filter(|&i| matches!(rules[i], Rule::Start(_)))
            .collect();
        assert_eq!(starts, vec![7]);
        assert_eq!(rules[7], Rule::Start(4 * 60_000));
        assert_eq!(rules[12], Rule::End(9 * 60_000));
        assert!(!open);
    }

    #[test]
    fn isolated_spikes_never_start_an_episode() {
        let (rules, _) = feed(&[1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
        assert!(rules.iter().all(|r| *r == Rule::Quiet), "{rules:?}");
    }
}

/// The series an episode belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub journey: String,
    pub step: String,
    pub location: String,
}

/// An episode as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEpisode {
    pub id: i64,
    #[serde(flatten)]
    pub series: SeriesKey,
    pub detector: DetectorKind,
    pub sensitivity: String,
    pub start: DateTime<Utc>,
    pub detected: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// Robust deviations (latency) or −log10 p (failure rate) at the episode's peak.
    pub peak_score: f64,
    /// Milliseconds (latency) or the recent failure rate, at the peak.
    pub peak_value: f64,
    /// What the baseline expected when the episode was detected (ms, or a failure rate).
    pub baseline: f64,
    pub anomalous_runs: u32,
}

impl StoredEpisode {
    /// The detector-side view, to resume an open episode after a restart.
    pub fn episode(&self) -> Episode {
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        Episode {
            detector: self.detector,
            start_ms: ms(self.start),
            detected_ms: ms(self.detected),
            end_ms: self.end.map(ms),
            peak_score: self.peak_score,
            peak_value: self.peak_value,
            baseline: self.baseline,
            anomalous_runs: self.anomalous_runs,
        }
    }
}

/// An episode that started or ended, as stored (`id`) — what alerting will consume.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeEvent {
    pub id: i64,
    pub series: SeriesKey,
    pub transition: Transition,
}
