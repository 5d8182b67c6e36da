//! The digest's figures: plain data, serialised as the API's JSON and stored with the digest.
//! Percentages are 0–100, durations in milliseconds (latency) or seconds (incidents).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::baseline::shift::Shift;
use crate::store::digest::PhaseMeans;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Digest {
    pub owner: String,
    /// The period, `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The previous period of the same length, for comparisons.
    pub previous_from: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub summary: Summary,
    pub journeys: Vec<JourneyDigest>,
    pub incidents: Vec<IncidentDigest>,
    pub dependencies: Vec<DependencyScore>,
    pub coverage: Vec<CoverageGap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub journeys: usize,
    pub runs: u64,
    /// Over every run of the owner's journeys.
    pub availability: Option<f64>,
    pub incidents: usize,
    /// Mean time to detect (first bad run → incident opened), seconds.
    pub mttd_s: Option<f64>,
    /// Mean time to recover (first bad run → resolved), over resolved incidents, seconds.
    pub mttr_s: Option<f64>,
    pub regressions: usize,
    pub improvements: usize,
    pub new_failure_modes: usize,
    pub flaky_steps: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JourneyDigest {
    pub name: String,
    pub slo: Option<f64>,
    pub runs: u64,
    pub failed: u64,
    pub availability: Option<f64>,
    pub previous_availability: Option<f64>,
    /// Share of the error budget (100 − SLO) the failures used: 1.0 = all of it.
    pub error_budget_used: Option<f64>,
    pub steps: Vec<StepDigest>,
    pub failure_modes: Vec<FailureMode>,
    pub flaky: Vec<FlakyStep>,
    pub chart: Chart,
}

/// The latency chart's data: whole-run duration per bucket, the baseline band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chart {
    pub bucket_hours: u32,
    pub p50: Vec<(DateTime<Utc>, f64)>,
    pub p95: Vec<(DateTime<Utc>, f64)>,
    /// The previous period's p25..p75 of whole-run duration.
    pub band: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepDigest {
    pub name: String,
    pub dependency: Option<String>,
    /// Times it ran (passed or failed) this period.
    pub ran: u64,
    pub latency: Option<Quantiles>,
    pub previous: Option<Quantiles>,
    /// The level-shift test between the two periods (None with too few runs).
    pub shift: Option<Shift>,
    /// `regression`, `improvement` or `none`.
    pub trend: Trend,
    /// Where its time goes (means over the period).
    pub phases: PhaseMeans,
    /// A run in which this step took about its p95: what "slow" looks like, with its trace.
    #[serde(default)]
    pub sample: Option<Sample>,
}

/// One run to open, as an example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sample {
    pub run_id: uuid::Uuid,
    pub trace_id: String,
    /// The step's duration in that run.
    pub ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Regression,
    Improvement,
    None,
}

/// Failures with one signature: step, failure class and message with its variable parts
/// (numbers, ids) masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailureMode {
    pub step: String,
    pub class: String,
    pub signature: String,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// Not seen in the previous period.
    pub new: bool,
    pub sample_run_id: uuid::Uuid,
    pub sample_trace_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlakyStep {
    pub step: String,
    /// Passed only after a fast retry.
    pub passed_after_retry: u64,
    pub ran: u64,
    /// `passed_after_retry / ran`, percent.
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentDigest {
    pub id: i64,
    pub journey: String,
    pub severity: String,
    pub summary: String,
    pub started_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub time_to_detect_s: f64,
    pub time_to_acknowledge_s: Option<f64>,
    pub time_to_resolve_s: Option<f64>,
    pub dependency: Option<String>,
    pub run_id: Option<uuid::Uuid>,
    pub trace_id: Option<String>,
    /// `channel: kind (status)` for each notification.
    pub notifications: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DependencyScore {
    pub label: String,
    pub journeys: Vec<String>,
    /// Step results that ran.
    pub ran: u64,
    pub failed: u64,
    pub availability: Option<f64>,
    pub p95_ms: Option<f64>,
    pub incidents: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoverageGap {
    pub journey: String,
    /// None: the whole journey.
    pub step: Option<String>,
    /// `never ran` or `always skipped`.
    pub what: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One journey with a hostile step name, a regression, a new failure mode and an incident.
    pub(crate) fn sample(owner: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Digest {
        // Days as in the render tests, where `from` is the 9th.
        let t = |day: i64| from + chrono::Duration::days(day - 9);
        let step = StepDigest {
            name: "<script>alert(1)</script>".into(),
            dependency: None,
            ran: 1344,
            latency: Some(Quantiles {
                p50: 160.0,
                p95: 190.0,
                p99: 210.0,
            }),
            previous: Some(Quantiles {
                p50: 100.0,
                p95: 120.0,
                p99: 130.0,
            }),
            shift: Some(crate::baseline::shift::Shift {
                before_p50_ms: 100.0,
                after_p50_ms: 160.0,
                change: 0.6,
                p_value: 1e-12,
                significant: true,
            }),
            trend: Trend::Regression,
            phases: PhaseMeans {
                dns: Some(1.0),
                ttfb: Some(157.0),
                total: Some(160.0),
                ..PhaseMeans::default()
            },
            sample: Some(Sample {
                run_id: uuid::Uuid::from_u128(9),
                trace_id: "def456".into(),
                ms: 190.0,
            }),
        };
        let run = uuid::Uuid::from_u128(7);
        Digest {
            owner: owner.into(),
            from,
            to,
            previous_from: from - (to - from),
            generated_at: to,
            summary: Summary {
                journeys: 1,
                runs: 1344,
                availability: Some(99.4),
                incidents: 1,
                mttd_s: Some(1800.0),
                mttr_s: Some(8100.0),
                regressions: 1,
                improvements: 0,
                new_failure_modes: 1,
                flaky_steps: 0,
            },
            journeys: vec![JourneyDigest {
                name: "checkout".into(),
                slo: Some(99.5),
                runs: 1344,
                failed: 8,
                availability: Some(99.4),
                previous_availability: Some(99.7),
                error_budget_used: Some(1.19),
                steps: vec![step],
                failure_modes: vec![FailureMode {
                    step: "pay".into(),
                    class: "http_status".into(),
                    signature: "HTTP <n> & co".into(),
                    count: 8,
                    first: t(20),
                    last: t(20),
                    new: true,
                    sample_run_id: run,
                    sample_trace_id: "abc123".into(),
                }],
                flaky: vec![],
                chart: Chart {
                    bucket_hours: 6,
                    p50: vec![(t(9), 150.0), (t(10), 170.0)],
                    p95: vec![(t(9), 180.0), (t(10), 200.0)],
                    band: Some((90.0, 110.0)),
                },
            }],
            incidents: vec![IncidentDigest {
                id: 4,
                journey: "checkout".into(),
                severity: "failure".into(),
                summary: "step \"pay\" failed".into(),
                started_at: t(20),
                opened_at: t(20),
                acknowledged_at: None,
                resolved_at: Some(t(21)),
                time_to_detect_s: 1800.0,
                time_to_acknowledge_s: None,
                time_to_resolve_s: Some(8100.0),
                dependency: Some("payments".into()),
                run_id: Some(run),
                trace_id: Some("abc123".into()),
                notifications: vec!["pager: triggered (delivered)".into()],
            }],
            dependencies: vec![],
            coverage: vec![CoverageGap {
                journey: "archive".into(),
                step: None,
                what: "never ran".into(),
            }],
        }
    }
}
