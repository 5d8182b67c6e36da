//! What the digest's HTML template (`ui/templates/digest/`) is given: summary tiles, one
//! section per journey (chart, steps, slowest steps, failure modes, flaky steps), incidents,
//! dependencies and coverage gaps, as plain words and figures that the template escapes.

use minijinja::{Value, context};

use super::*;

pub(super) fn tiles(s: &Summary) -> Vec<(&'static str, String)> {
    let secs = |v: Option<f64>| crate::format::optional(v, secs);
    vec![
        ("Availability", pct(s.availability)),
        ("Runs", s.runs.to_string()),
        ("Incidents", s.incidents.to_string()),
        ("MTTD", secs(s.mttd_s)),
        ("MTTR", secs(s.mttr_s)),
        ("Regressions", s.regressions.to_string()),
        ("New failure modes", s.new_failure_modes.to_string()),
        ("Flaky steps", s.flaky_steps.to_string()),
    ]
}

pub(super) fn journey(
    d: &Digest,
    j: &JourneyDigest,
    src: Option<String>,
    links: &LinkBase,
) -> Value {
    let heading = format!("Journey {}", j.name);
    let open = page_cell(
        links,
        &crate::links::journey_page(&j.name),
        "Open in Waymark",
    );
    let Some(src) = src else {
        return context! { heading, open, ran => false };
    };
    let q = |x: &Option<Quantiles>| {
        x.as_ref().map_or("–".to_string(), |q| {
            format!("{} / {} / {}", ms(q.p50), ms(q.p95), ms(q.p99))
        })
    };
    let steps = j
        .steps
        .iter()
        .map(|s| {
            let example = s
                .sample
                .as_ref()
                .map_or(Vec::new(), |x| run_and_trace(links, x.run_id, &x.trace_id));
            vec![
                plain(&s.name),
                plain(q(&s.latency)),
                plain(q(&s.previous)),
                plain(trend(s)),
                example,
            ]
        })
        .collect();
    let failure_modes = j
        .failure_modes
        .iter()
        .map(|m| {
            let step = if m.new {
                vec![strong("NEW"), text_part(format!(" {}", m.step))]
            } else {
                plain(&m.step)
            };
            vec![
                step,
                plain(format!("{}: {}", m.class, m.signature)),
                plain(m.count.to_string()),
                plain(format!("{} – {}", stamp(m.first), stamp(m.last))),
                run_and_trace(links, m.sample_run_id, &m.sample_trace_id),
            ]
        })
        .collect();
    let flaky = j
        .flaky
        .iter()
        .map(|f| {
            vec![
                plain(&f.step),
                plain(format!(
                    "{} of {} runs ({:.1}%)",
                    f.passed_after_retry, f.ran, f.rate
                )),
            ]
        })
        .collect();
    let slowest_rows = slowest(j)
        .into_iter()
        .map(|s| {
            vec![
                plain(&s.name),
                plain(ms(s.phases.total.unwrap_or(0.0))),
                plain(phase_list(s)),
            ]
        })
        .collect();
    context! {
        heading,
        open,
        ran => true,
        availability => pct(j.availability),
        slo => j.slo.map_or("no SLO".to_string(), |s| format!("SLO {s}%")),
        budget => j.error_budget_used.map_or(String::new(), |b| {
            format!(", {:.0}% of the error budget used", b * 100.0)
        }),
        change => change(j.availability, j.previous_availability),
        runs => j.runs,
        failed => j.failed,
        chart => chart(d, j, src),
        steps => Table::new(&["Step", "p50 / p95 / p99", "Previous", "Trend", "A p95 run"], steps),
        slowest => table(&["Step", "Mean", "Where the time goes"], slowest_rows),
        failure_modes => table(&["Step", "Failure", "Count", "First – last", "Example"], failure_modes),
        flaky => table(&["Step", "Passed after retry"], flaky),
    }
}

/// The chart, with what its caption states that the picture cannot (axes, line styles).
fn chart(d: &Digest, j: &JourneyDigest, src: String) -> Value {
    let input = chart_input(d, j);
    context! {
        src,
        width => chart::WIDTH,
        height => chart::HEIGHT,
        alt => format!("Latency of {} from {} to {}", j.name, date(d.from), date(d.to)),
        bucket_hours => j.chart.bucket_hours,
        y_max => axis_value(chart::y_max(&input)),
        gridlines => chart::gridlines(&input)
            .iter()
            .map(|v| axis_value(*v))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The two slowest steps and where their time goes.
pub(super) fn slowest(j: &JourneyDigest) -> Vec<&StepDigest> {
    let mut steps: Vec<&StepDigest> = j
        .steps
        .iter()
        .filter(|s| s.phases.total.is_some())
        .collect();
    steps.sort_by(|a, b| {
        b.phases
            .total
            .partial_cmp(&a.phases.total)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    steps.truncate(2);
    steps
}

pub(super) fn phase_list(s: &StepDigest) -> String {
    let p = &s.phases;
    [
        ("DNS", p.dns),
        ("connect", p.connect),
        ("TLS", p.tls),
        ("handshake", p.handshake),
        ("TTFB", p.ttfb),
        ("download", p.download),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some(format!("{name} {}", ms(v?))))
    .collect::<Vec<_>>()
    .join(", ")
}

pub(super) fn incidents(incidents: &[IncidentDigest], links: &LinkBase) -> Option<Table> {
    let rows = incidents
        .iter()
        .map(|i| {
            let mut what = plain(format!("{}: {}", i.severity, i.summary));
            if let (Some(run), Some(trace)) = (i.run_id, &i.trace_id) {
                what.push(text_part(" ("));
                what.extend(run_and_trace(links, run, trace));
                what.push(text_part(")"));
            }
            vec![
                page_cell(
                    links,
                    &format!("/app/incidents/{}", i.id),
                    &format!("#{} {}", i.id, i.journey),
                ),
                what,
                plain(stamp(i.started_at)),
                plain(format!(
                    "{} / {} / {}",
                    secs(i.time_to_detect_s),
                    i.time_to_acknowledge_s.map_or("–".into(), secs),
                    i.time_to_resolve_s.map_or("open".into(), secs)
                )),
                plain(i.notifications.join(", ")),
            ]
        })
        .collect();
    table(
        &[
            "Incident",
            "What",
            "Started",
            "Detect / ack / resolve",
            "Notifications",
        ],
        rows,
    )
}

pub(super) fn dependencies(deps: &[DependencyScore], links: &LinkBase) -> Option<Table> {
    let rows = deps
        .iter()
        .map(|s| {
            vec![
                page_cell(links, &crate::links::dependency_row(&s.label), &s.label),
                plain(pct(s.availability)),
                plain(crate::format::optional(s.p95_ms, ms)),
                plain(s.incidents.to_string()),
                plain(s.journeys.join(", ")),
            ]
        })
        .collect();
    table(
        &["Dependency", "Availability", "p95", "Incidents", "Used by"],
        rows,
    )
}

pub(super) fn coverage(gaps: &[CoverageGap], links: &LinkBase) -> Option<Table> {
    let rows = gaps
        .iter()
        .map(|g| {
            vec![
                page_cell(links, &crate::links::journey_page(&g.journey), &g.journey),
                plain(g.step.as_deref().unwrap_or("(whole journey)")),
                plain(&g.what),
            ]
        })
        .collect();
    table(&["Journey", "Step", "What"], rows)
}
