//! The digest's figures, from the store: hourly rollups (availability, latency quantiles and
//! the chart, for this period and the previous one), per-step aggregates of raw results
//! (phases, retries, coverage), failure groups, and incidents with their notifications.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Duration, Utc};
use regex::Regex;

use super::model::*;
use crate::baseline::ShiftParams;
use crate::baseline::shift;
use crate::baseline::sketch::Sketch;
use crate::journey::{Journey, Sensitivity};
use crate::store::alerts::IncidentFilter;
use crate::store::digest::{FailureGroup, StepStats};
use crate::store::{Result, Rollup, Store};

/// About this many chart points per period: 6-hour buckets over two weeks. Rollups are hourly,
/// so a bucket is at least an hour.
const CHART_POINTS: i64 = 56;

/// Computes the digest of `owner` for `[from, to)` over the journeys they own.
pub async fn compute(
    store: &Store,
    owner: &str,
    journeys: &[&Journey],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Digest> {
    let previous_from = from - (to - from);
    let owned: Vec<&Journey> = journeys
        .iter()
        .copied()
        .filter(|j| j.owner.as_deref() == Some(owner))
        .collect();
    let mut out = Vec::new();
    let mut coverage = Vec::new();
    let mut deps: BTreeMap<String, DependencyAcc> = BTreeMap::new();
    for journey in &owned {
        let (digest, rollups, stats) = journey_data(store, journey, from, to).await?;
        coverage.extend(coverage_gaps(journey, &digest, &stats));
        for step in &journey.steps {
            let Some(label) = &step.dependency else {
                continue;
            };
            let acc = deps.entry(label.clone()).or_default();
            acc.journeys.insert(journey.name.clone());
            if let Some(s) = stats.iter().find(|s| s.step == step.name) {
                acc.ran += s.passed + s.failed;
                acc.failed += s.failed;
            }
            for r in rollups
                .iter()
                .filter(|r| r.hour >= from && r.step.as_deref() == Some(step.name.as_str()))
            {
                acc.sketch.merge(&r.sketch);
            }
        }
        out.push(digest);
    }
    let incidents = incidents(store, &owned, from, to).await?;
    let dependencies = deps
        .into_iter()
        .map(|(label, acc)| DependencyScore {
            incidents: incidents
                .iter()
                .filter(|i| i.dependency.as_deref() == Some(label.as_str()))
                .count(),
            availability: percent(acc.ran - acc.failed, acc.ran),
            p95_ms: acc.sketch.quantile(0.95),
            journeys: acc.journeys.into_iter().collect(),
            ran: acc.ran,
            failed: acc.failed,
            label,
        })
        .collect();
    let summary = summary(&out, &incidents);
    Ok(Digest {
        owner: owner.to_string(),
        from,
        to,
        previous_from,
        generated_at: now,
        summary,
        journeys: out,
        incidents,
        dependencies,
        coverage,
    })
}

/// A step's latencies from `from` on, and before it.
fn split(rollups: &[Rollup], step: &str, from: DateTime<Utc>) -> (Sketch, Sketch) {
    let (mut now, mut before) = (Sketch::new(), Sketch::new());
    for r in rollups.iter().filter(|r| r.step.as_deref() == Some(step)) {
        if r.hour >= from {
            now.merge(&r.sketch);
        } else {
            before.merge(&r.sketch);
        }
    }
    (now, before)
}

/// One step's latency on the dashboard's journey page.
pub struct StepSeries {
    pub name: String,
    pub chart: Chart,
    /// Every latency of the period, and of the period before (for the histogram).
    pub now: Sketch,
    pub before: Sketch,
}

/// One journey over `[from, to)` compared with the period before, for the dashboard's journey
/// page: the digest's figures for it, and each step's chart and distributions.
pub async fn journey_view(
    store: &Store,
    journey: &Journey,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(JourneyDigest, Vec<StepSeries>)> {
    let (digest, rollups, _) = journey_data(store, journey, from, to).await?;
    let steps = journey
        .steps
        .iter()
        .map(|s| {
            let (now, before) = split(&rollups, &s.name, from);
            StepSeries {
                name: s.name.clone(),
                chart: series_chart(&rollups, Some(&s.name), from, to),
                now,
                before,
            }
        })
        .collect();
    Ok((digest, steps))
}

/// A journey's figures, with the rollups (this period and the previous) and step aggregates
/// they came from.
async fn journey_data(
    store: &Store,
    journey: &Journey,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(JourneyDigest, Vec<Rollup>, Vec<StepStats>)> {
    let previous_from = from - (to - from);
    let rollups = store
        .runs()
        .rollups(&journey.name, previous_from, to)
        .await?;
    let stats = store.digests().step_stats(&journey.name, from, to).await?;
    let groups = store
        .digests()
        .failure_groups(&journey.name, from, to)
        .await?;
    let previous_groups = store
        .digests()
        .failure_groups(&journey.name, previous_from, from)
        .await?;
    let mut digest = journey_digest(
        journey,
        &rollups,
        &stats,
        &groups,
        &previous_groups,
        (from, to),
    );
    add_samples(store, &mut digest, from, to).await?;
    Ok((digest, rollups, stats))
}

#[derive(Default)]
struct DependencyAcc {
    journeys: BTreeSet<String>,
    ran: u64,
    failed: u64,
    sketch: Sketch,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

fn quantiles(sketch: &Sketch) -> Option<Quantiles> {
    Some(Quantiles {
        p50: sketch.quantile(0.5)?,
        p95: sketch.quantile(0.95)?,
        p99: sketch.quantile(0.99)?,
    })
}

fn journey_digest(
    journey: &Journey,
    rollups: &[Rollup],
    stats: &[StepStats],
    groups: &[FailureGroup],
    previous_groups: &[FailureGroup],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> JourneyDigest {
    let (runs, failed) = rollups
        .iter()
        .filter(|r| r.step.is_none() && r.hour >= from)
        .fold((0, 0), |(n, f), r| (n + r.count, f + r.failures));
    let (previous_runs, previous_failed) = rollups
        .iter()
        .filter(|r| r.step.is_none() && r.hour < from)
        .fold((0, 0), |(n, f), r| (n + r.count, f + r.failures));
    let availability = percent(runs - failed, runs);
    let error_budget_used = match (journey.slo, runs) {
        (Some(slo), 1..) if slo < 100.0 => {
            Some((failed as f64 / runs as f64) / (1.0 - slo / 100.0))
        }
        _ => None,
    };
    let steps = journey
        .steps
        .iter()
        .map(|step| step_digest(journey, step, rollups, stats, from))
        .collect();
    let flaky = stats
        .iter()
        .filter(|s| s.passed_after_retry > 0)
        .map(|s| {
            let ran = s.passed + s.failed;
            FlakyStep {
                step: s.step.clone(),
                passed_after_retry: s.passed_after_retry,
                ran,
                rate: percent(s.passed_after_retry, ran).unwrap_or(0.0),
            }
        })
        .collect();
    JourneyDigest {
        name: journey.name.clone(),
        slo: journey.slo,
        runs,
        failed,
        availability,
        previous_availability: percent(previous_runs - previous_failed, previous_runs),
        error_budget_used,
        steps,
        failure_modes: failure_modes(groups, previous_groups),
        flaky,
        chart: chart(rollups, from, to),
    }
}

fn step_digest(
    journey: &Journey,
    step: &crate::journey::Step,
    rollups: &[Rollup],
    stats: &[StepStats],
    from: DateTime<Utc>,
) -> StepDigest {
    let (now, before) = split(rollups, &step.name, from);
    let sensitivity = step
        .anomaly
        .or(journey.anomaly)
        .sensitivity
        .unwrap_or(Sensitivity::Medium);
    let shift = ShiftParams::preset(sensitivity).and_then(|p| shift::compare(&before, &now, &p));
    let trend = match shift {
        Some(s) if s.significant && s.change > 0.0 => Trend::Regression,
        Some(s) if s.significant => Trend::Improvement,
        _ => Trend::None,
    };
    let stat = stats.iter().find(|s| s.step == step.name);
    StepDigest {
        name: step.name.clone(),
        dependency: step.dependency.clone(),
        ran: stat.map_or(0, |s| s.passed + s.failed),
        latency: quantiles(&now),
        previous: quantiles(&before),
        shift,
        trend,
        phases: stat.map(|s| s.phases.clone()).unwrap_or_default(),
        sample: None,
    }
}

/// Fills each step's sample: the quickest run at or above its p95 (less 2 %, the sketch's
/// error), so the example is a typical slow run rather than the worst outlier.
async fn add_samples(
    store: &Store,
    digest: &mut JourneyDigest,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<()> {
    for step in &mut digest.steps {
        if let Some(q) = &step.latency {
            step.sample = store
                .digests()
                .step_sample(&digest.name, &step.name, from, to, q.p95 * 0.98)
                .await?
                .map(|(run_id, trace_id, ms)| Sample {
                    run_id,
                    trace_id,
                    ms,
                });
        }
    }
    Ok(())
}

/// Whole-run duration per bucket of the period, and the previous period's interquartile band.
fn chart(rollups: &[Rollup], from: DateTime<Utc>, to: DateTime<Utc>) -> Chart {
    series_chart(rollups, None, from, to)
}

/// The chart of whole runs (`step == None`) or of one step.
fn series_chart(
    rollups: &[Rollup],
    step: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Chart {
    let bucket_hours = ((to - from).num_hours() / CHART_POINTS).clamp(1, 24 * 7);
    let bucket_s = bucket_hours * 3600;
    let mut buckets: BTreeMap<i64, Sketch> = BTreeMap::new();
    let mut before = Sketch::new();
    for r in rollups.iter().filter(|r| r.step.as_deref() == step) {
        if r.hour >= from {
            let start =
                from.timestamp() + (r.hour - from).num_seconds().div_euclid(bucket_s) * bucket_s;
            buckets.entry(start).or_default().merge(&r.sketch);
        } else {
            before.merge(&r.sketch);
        }
    }
    let series = |q: f64| {
        buckets
            .iter()
            .filter_map(|(start, s)| Some((DateTime::from_timestamp(*start, 0)?, s.quantile(q)?)))
            .collect()
    };
    Chart {
        bucket_hours: bucket_hours as u32,
        p50: series(0.5),
        p95: series(0.95),
        band: before.quantile(0.25).zip(before.quantile(0.75)),
    }
}

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("valid regex")
});
static HEX_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b").expect("valid regex")
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(\.\d+)?").expect("valid regex"));

/// A failure message with what varies between occurrences masked: ids become `<id>`, numbers
/// `<n>`. `timed out after 1503 ms` and `timed out after 1498 ms` are one failure mode.
pub fn signature(message: &str) -> String {
    let s = UUID.replace_all(message, "<id>");
    let s = HEX_ID.replace_all(&s, |c: &regex::Captures| {
        if c[0].len() >= 8 {
            "<id>".to_string()
        } else {
            c[0].to_string()
        }
    });
    let s = NUMBER.replace_all(&s, "<n>");
    let mut out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > 200 {
        out = out.chars().take(199).collect::<String>() + "…";
    }
    out
}

fn failure_modes(groups: &[FailureGroup], previous: &[FailureGroup]) -> Vec<FailureMode> {
    let key = |g: &FailureGroup| (g.step.clone(), g.class.clone(), signature(&g.message));
    let seen_before: BTreeSet<_> = previous.iter().map(key).collect();
    let mut modes: BTreeMap<(String, String, String), FailureMode> = BTreeMap::new();
    for g in groups {
        let k = key(g);
        let new = !seen_before.contains(&k);
        let mode = modes.entry(k.clone()).or_insert_with(|| FailureMode {
            step: k.0.clone(),
            class: k.1.clone(),
            signature: k.2.clone(),
            count: 0,
            first: g.first,
            last: g.last,
            new,
            sample_run_id: g.sample_run_id,
            sample_trace_id: g.sample_trace_id.clone(),
        });
        mode.count += g.count;
        mode.first = mode.first.min(g.first);
        if g.last > mode.last {
            mode.last = g.last;
            mode.sample_run_id = g.sample_run_id;
            mode.sample_trace_id = g.sample_trace_id.clone();
        }
    }
    let mut out: Vec<FailureMode> = modes.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(b.last.cmp(&a.last)));
    out
}

fn coverage_gaps(
    journey: &Journey,
    digest: &JourneyDigest,
    stats: &[StepStats],
) -> Vec<CoverageGap> {
    let gap = |step: Option<&str>, what: &str| CoverageGap {
        journey: journey.name.clone(),
        step: step.map(str::to_string),
        what: what.to_string(),
    };
    if digest.runs == 0 {
        return vec![gap(None, "never ran")];
    }
    journey
        .steps
        .iter()
        .filter_map(|step| match stats.iter().find(|s| s.step == step.name) {
            None => Some(gap(Some(&step.name), "never ran")),
            Some(s) if s.skipped == s.results => Some(gap(Some(&step.name), "always skipped")),
            Some(_) => None,
        })
        .collect()
}

async fn incidents(
    store: &Store,
    journeys: &[&Journey],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<IncidentDigest>> {
    let names: BTreeSet<&str> = journeys.iter().map(|j| j.name.as_str()).collect();
    let all = store
        .incidents()
        .incidents(&IncidentFilter {
            since: Some(from),
            ..IncidentFilter::default()
        })
        .await?;
    let seconds = |d: Duration| d.num_milliseconds() as f64 / 1000.0;
    let mut out = Vec::new();
    for i in all
        .into_iter()
        .filter(|i| names.contains(i.journey.as_str()) && i.opened_at < to)
    {
        let notifications = store
            .incidents()
            .incident_notifications(i.id)
            .await?
            .iter()
            .map(|r| {
                let n = &r.notification;
                format!("{}: {} ({})", n.channel, n.kind.as_str(), r.status.as_str())
            })
            .collect();
        out.push(IncidentDigest {
            id: i.id,
            journey: i.journey.clone(),
            severity: i.severity.as_str().to_string(),
            summary: i.cause.headline(i.severity),
            started_at: i.started_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            resolved_at: i.resolved_at,
            time_to_detect_s: seconds(i.opened_at - i.started_at),
            time_to_acknowledge_s: i.acknowledged_at.map(|a| seconds(a - i.opened_at)),
            time_to_resolve_s: i.resolved_at.map(|r| seconds(r - i.started_at)),
            dependency: i.cause.dependency.clone(),
            run_id: i.cause.run_id,
            trace_id: i.cause.trace_id.clone(),
            notifications,
        });
    }
    out.sort_by_key(|i| (i.started_at, i.id));
    Ok(out)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

fn summary(journeys: &[JourneyDigest], incidents: &[IncidentDigest]) -> Summary {
    let runs: u64 = journeys.iter().map(|j| j.runs).sum();
    let failed: u64 = journeys.iter().map(|j| j.failed).sum();
    let steps = || journeys.iter().flat_map(|j| &j.steps);
    Summary {
        journeys: journeys.len(),
        runs,
        availability: percent(runs - failed, runs),
        incidents: incidents.len(),
        mttd_s: mean(incidents.iter().map(|i| i.time_to_detect_s)),
        mttr_s: mean(incidents.iter().filter_map(|i| i.time_to_resolve_s)),
        regressions: steps().filter(|s| s.trend == Trend::Regression).count(),
        improvements: steps().filter(|s| s.trend == Trend::Improvement).count(),
        new_failure_modes: journeys
            .iter()
            .flat_map(|j| &j.failure_modes)
            .filter(|m| m.new)
            .count(),
        flaky_steps: journeys.iter().map(|j| j.flaky.len()).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signatures_mask_what_varies() {
        assert_eq!(
            signature("step did not finish after 1503 ms"),
            signature("step did not finish after 1498.5 ms")
        );
        assert_eq!(
            signature(
                "order 3f2a9c1e-0b4d-4e8a-9f7c-1d2e3f4a5b6c not found (trace 4bf92f3577b34da6)"
            ),
            "order <id> not found (trace <id>)"
        );
        assert_eq!(
            signature("[STATUS] == 200 (actual: 503)"),
            "[STATUS] == <n> (actual: <n>)"
        );
        assert_eq!(signature("connection   refused"), "connection refused");
        assert_ne!(signature("cafe not found"), signature("bad gateway"));
    }
}
