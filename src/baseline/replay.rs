//! `waymark anomaly replay`: runs the production detectors over a CSV history so users can
//! see what each sensitivity would have flagged, and so the detectors can be evaluated.
//!
//! Input rows are `timestamp,value[,ok]`: RFC 3339 or unix seconds, any finite number (a
//! latency in milliseconds, a count, a gauge: see [`ValueKind`]), and optionally 1/0 for
//! passed/failed. Output timestamps keep the input's own form (unix seconds stay numbers).

use serde::Serialize;

use super::{
    DetectorKind, DetectorParams, Episode, Observation, SeriesDetector, Transition, ValueKind,
};

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

/// A timestamp as the input wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Stamp {
    Unix(serde_json::Number),
    Text(String),
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stamp::Unix(n) => write!(f, "{n}"),
            Stamp::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stamp: Stamp,
    pub at_ms: i64,
    pub value: f64,
    pub ok: bool,
}

/// Parses the CSV text: an optional header line, then `timestamp,value[,ok]` rows; blank
/// lines and `#` comments are skipped. Rows are returned in time order (stable).
pub fn parse_csv(text: &str) -> Result<Vec<Row>, CsvError> {
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let err = |message: String| CsvError { line, message };
        let stamp = match parse_stamp(fields[0]) {
            Some(s) => s,
            None if rows.is_empty() && line_is_header(&fields) => continue,
            None => {
                return Err(err(format!(
                    "`{}` is not a timestamp (RFC 3339 such as 2026-01-05T10:00:00Z, or unix seconds)",
                    fields[0]
                )));
            }
        };
        if !(2..=3).contains(&fields.len()) {
            return Err(err(format!(
                "expected `timestamp,value[,ok]`, found {} fields",
                fields.len()
            )));
        }
        let value = fields[1]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| err(format!("`{}` is not a number", fields[1])))?;
        let ok = match fields.get(2) {
            None | Some(&"1") | Some(&"true") => true,
            Some(&"0") | Some(&"false") => false,
            Some(other) => return Err(err(format!("`ok` must be 1 or 0, found `{other}`"))),
        };
        rows.push(Row {
            at_ms: stamp.1,
            stamp: stamp.0,
            value,
            ok,
        });
    }
    rows.sort_by_key(|r| r.at_ms);
    Ok(rows)
}

fn line_is_header(fields: &[&str]) -> bool {
    fields.iter().all(|f| f.parse::<f64>().is_err())
}

fn parse_stamp(text: &str) -> Option<(Stamp, i64)> {
    if let Ok(n) = text.parse::<i64>() {
        return Some((Stamp::Unix(n.into()), n.checked_mul(1000)?));
    }
    if let Ok(x) = text.parse::<f64>() {
        let number = serde_json::Number::from_f64(x)?;
        return Some((Stamp::Unix(number), (x * 1000.0).round() as i64));
    }
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some((Stamp::Text(text.to_string()), t.timestamp_millis()))
}

/// A judged run: every run with `--all-points`, else only those either detector flagged.
#[derive(Debug, Clone, Serialize)]
pub struct FlaggedPoint {
    pub timestamp: Stamp,
    pub value: f64,
    pub ok: bool,
    /// The larger of the detectors' anomaly likelihoods, in [0, 1] (0 while warming up).
    pub likelihood: f64,
    pub anomalous: bool,
    /// The detector behind `likelihood`; absent while both are warming up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Value detector: what the baseline expected, and the values beyond which a run alone
    /// is anomalous (absent on a side that is not watched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_threshold_ms: Option<f64>,
    /// Failure rate: failures among the recent runs, and the baseline rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_runs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_rate: Option<f64>,
}

impl FlaggedPoint {
    fn of(row: &Row, obs: &Observation) -> FlaggedPoint {
        let finite = |v: f64| Some(v).filter(|v| v.is_finite());
        let latency = obs.latency.map(|p| (p.likelihood, p));
        let failure = obs.failure.map(|p| (1.0 - 10f64.powf(-p.score), p));
        let mut point = FlaggedPoint {
            timestamp: row.stamp.clone(),
            value: row.value,
            ok: row.ok,
            likelihood: 0.0,
            anomalous: obs.is_anomalous(),
            detector: None,
            score: None,
            expected_ms: None,
            threshold_ms: None,
            lower_threshold_ms: None,
            recent_failures: None,
            recent_runs: None,
            baseline_rate: None,
        };
        if let Some((likelihood, p)) = latency {
            point.likelihood = likelihood;
            point.detector = Some(if p.score < 0.0 {
                DetectorKind::LatencyDrop
            } else {
                DetectorKind::Latency
            });
            point.score = Some(p.score);
            point.expected_ms = Some(p.expected_ms);
            point.threshold_ms = finite(p.threshold_ms);
            point.lower_threshold_ms = finite(p.lower_threshold_ms);
        }
        if let Some((likelihood, p)) = failure {
            point.recent_failures = Some(p.recent_failures);
            point.recent_runs = Some(p.recent_runs);
            point.baseline_rate = Some(p.baseline_rate);
            // The failure detector speaks for the run when it is the more certain, or the
            // one that flagged it.
            let flagged_here = p.anomalous && !obs.latency.is_some_and(|l| l.anomalous);
            if point.detector.is_none() || likelihood > point.likelihood || flagged_here {
                point.likelihood = point.likelihood.max(likelihood);
                point.detector = Some(DetectorKind::FailureRate);
                point.score = Some(p.score);
            }
        }
        point
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayEpisode {
    pub detector: DetectorKind,
    pub start: Stamp,
    pub detected: Stamp,
    /// `null` when the episode is still open at the end of the input.
    pub end: Option<Stamp>,
    /// Runs from `start` to `detected`, both included: the detection delay.
    pub delay_runs: usize,
    pub peak: f64,
    pub peak_value: f64,
    pub baseline: f64,
    pub anomalous_runs: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub points: Vec<FlaggedPoint>,
    pub episodes: Vec<ReplayEpisode>,
    /// The value kind the rows were modelled as.
    pub value_kind: ValueKind,
    /// The period shorter than a day the series was found to repeat with (seconds), if any.
    pub period_s: Option<f64>,
}

/// What to replay with.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub params: DetectorParams,
    /// Report every row, not only the flagged ones.
    pub all_points: bool,
}

/// The value kind rows fit when none is given: a gauge when any value is negative.
pub fn guess_kind(rows: &[Row]) -> ValueKind {
    ValueKind::guess(rows.iter().map(|r| r.value))
}

/// Runs one [`SeriesDetector`] over `rows` (already in time order).
pub fn replay(rows: &[Row], options: Options) -> Report {
    let mut detector = SeriesDetector::new(options.params);
    let mut points = Vec::new();
    let mut episodes: Vec<(Episode, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let obs = detector.observe(row.at_ms, row.value, row.ok);
        if options.all_points || obs.is_anomalous() {
            points.push(FlaggedPoint::of(row, &obs));
        }
        for t in obs.transitions {
            match t {
                Transition::Started(e) => episodes.push((e, i)),
                Transition::Ended(e) => {
                    if let Some(slot) = episodes
                        .iter_mut()
                        .rev()
                        .find(|(o, _)| o.detector == e.detector && o.end_ms.is_none())
                    {
                        slot.0 = e;
                    }
                }
            }
        }
    }
    // Episodes report their state when they ended; an open one its state at detection, so
    // take peaks from the detectors for those.
    for (e, _) in episodes.iter_mut().filter(|(e, _)| e.end_ms.is_none()) {
        let open = match e.detector {
            DetectorKind::Latency | DetectorKind::LatencyDrop => detector.latency.open_episode(),
            DetectorKind::FailureRate => detector.failure.open_episode(),
        };
        if let Some(open) = open {
            *e = open.clone();
        }
    }
    let stamp_at = |ms: i64| {
        let i = rows.partition_point(|r| r.at_ms < ms).min(rows.len() - 1);
        (rows[i].stamp.clone(), i)
    };
    let episodes = episodes
        .into_iter()
        .map(|(e, detected_row)| {
            let (start, start_row) = stamp_at(e.start_ms);
            ReplayEpisode {
                detector: e.detector,
                start,
                detected: rows[detected_row].stamp.clone(),
                end: e.end_ms.map(|ms| stamp_at(ms).0),
                delay_runs: detected_row.saturating_sub(start_row) + 1,
                peak: e.peak_score,
                peak_value: e.peak_value,
                baseline: e.baseline,
                anomalous_runs: e.anomalous_runs,
            }
        })
        .collect();
    Report {
        points,
        episodes,
        value_kind: options.params.latency.kind,
        period_s: detector.latency.period_ms().map(|ms| ms as f64 / 1000.0),
    }
}

/// The human-readable form of a report.
pub fn render_text(report: &Report, rows: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for p in &report.points {
        let flag = if p.anomalous { "flagged" } else { "judged " };
        let score = p.score.map_or("-".to_string(), |s| format!("{s:.2}"));
        let _ = match p.detector {
            None => writeln!(out, "warming  {}  {:.3}", p.timestamp, p.value),
            Some(DetectorKind::FailureRate) => writeln!(
                out,
                "{flag}  {}  failure_rate  {}/{} recent runs failed, baseline rate {:.2} %, likelihood {:.6}, score {score}",
                p.timestamp,
                p.recent_failures.unwrap_or(0),
                p.recent_runs.unwrap_or(0),
                100.0 * p.baseline_rate.unwrap_or(0.0),
                p.likelihood,
            ),
            Some(kind) => writeln!(
                out,
                "{flag}  {}  {:<12}  {:.3}, expected {:.3}, thresholds {} .. {}, likelihood {:.6}, score {score}",
                p.timestamp,
                kind.as_str(),
                p.value,
                p.expected_ms.unwrap_or(0.0),
                p.lower_threshold_ms
                    .map_or("-".to_string(), |t| format!("{t:.3}")),
                p.threshold_ms
                    .map_or("-".to_string(), |t| format!("{t:.3}")),
                p.likelihood,
            ),
        };
    }
    for e in &report.episodes {
        let end = e
            .end
            .as_ref()
            .map_or("(open)".to_string(), ToString::to_string);
        let (peak_value, baseline) = match e.detector {
            DetectorKind::Latency | DetectorKind::LatencyDrop => {
                (format!("{:.3}", e.peak_value), format!("{:.3}", e.baseline))
            }
            DetectorKind::FailureRate => (
                format!("{:.1} % failing", 100.0 * e.peak_value),
                format!("{:.2} %", 100.0 * e.baseline),
            ),
        };
        let _ = writeln!(
            out,
            "episode  {} .. {}  {}  detected at {} (run {} of the episode), peak {:.2} ({}), baseline {}, {} anomalous runs",
            e.start,
            end,
            e.detector.as_str(),
            e.detected,
            e.delay_runs,
            e.peak,
            peak_value,
            baseline,
            e.anomalous_runs
        );
    }
    if let Some(period) = report.period_s {
        let _ = writeln!(
            out,
            "period   {} (a pattern that repeats, learnt as normal)",
            crate::format::duration_secs(period)
        );
    }
    let _ = writeln!(
        out,
        "{rows} rows, {} points flagged, {} episodes",
        report.points.iter().filter(|p| p.anomalous).count(),
        report.episodes.len()
    );
    out
}
