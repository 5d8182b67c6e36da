//! The HTML sections of the digest: summary tiles, one section per journey (chart, steps,
//! slowest steps, failure modes, flaky steps), incidents, dependencies, coverage gaps.

use super::*;

pub(super) fn summary_html(s: &Summary) -> String {
    let tiles = [
        ("Availability", pct(s.availability)),
        ("Runs", s.runs.to_string()),
        ("Incidents", s.incidents.to_string()),
        ("MTTD", s.mttd_s.map_or("–".into(), secs)),
        ("MTTR", s.mttr_s.map_or("–".into(), secs)),
        ("Regressions", s.regressions.to_string()),
        ("New failure modes", s.new_failure_modes.to_string()),
        ("Flaky steps", s.flaky_steps.to_string()),
    ];
    let mut out = String::from(
        "<table role=\"presentation\" style=\"width:100%;border-collapse:collapse;\"><tr>",
    );
    for (i, (label, value)) in tiles.iter().enumerate() {
        if i == 4 {
            out.push_str("</tr><tr>");
        }
        out.push_str(&format!(
            "<td style=\"padding:8px;border:1px solid #eaeef2;width:25%;\"><div style=\"font-size:11px;color:#59636e;\">{}</div><div style=\"font-size:18px;font-weight:600;\">{}</div></td>",
            esc(label),
            esc(value)
        ));
    }
    out.push_str("</tr></table>");
    out
}

pub(super) fn journey_html(
    d: &Digest,
    j: &JourneyDigest,
    src: Option<&str>,
    links: &LinkBase,
) -> String {
    let mut out = h2(&format!("Journey {}", j.name));
    let open = link(
        links.page(&crate::links::journey_page(&j.name)),
        "Open in Waymark",
    );
    let Some(src) = src else {
        out.push_str(&format!(
            "<p style=\"margin:4px 0;\">It did not run in this period. {open}</p>"
        ));
        return out;
    };
    let slo = j.slo.map_or("no SLO".to_string(), |s| format!("SLO {s}%"));
    let budget = j.error_budget_used.map_or(String::new(), |b| {
        format!(", {:.0}% of the error budget used", b * 100.0)
    });
    out.push_str(&format!(
        "<p style=\"margin:4px 0;\">{} available ({slo}{budget}); {}; {} runs, {} failed. {}</p>",
        esc(&pct(j.availability)),
        esc(&change(j.availability, j.previous_availability)),
        j.runs,
        j.failed,
        open
    ));
    out.push_str(&chart_html(d, j, src));
    let q = |x: &Option<Quantiles>| {
        x.as_ref().map_or("–".to_string(), |q| {
            format!("{} / {} / {}", ms(q.p50), ms(q.p95), ms(q.p99))
        })
    };
    let rows = j
        .steps
        .iter()
        .map(|s| {
            let example = s.sample.as_ref().map_or(String::new(), |x| {
                run_and_trace(links, x.run_id, &x.trace_id)
            });
            vec![
                esc(&s.name),
                esc(&q(&s.latency)),
                esc(&q(&s.previous)),
                esc(&trend(s)),
                example,
            ]
        })
        .collect();
    out.push_str(&table(
        &["Step", "p50 / p95 / p99", "Previous", "Trend", "A p95 run"],
        rows,
    ));
    out.push_str(&phases_html(j));
    if !j.failure_modes.is_empty() {
        let rows = j
            .failure_modes
            .iter()
            .map(|m| {
                vec![
                    format!(
                        "{}{}",
                        if m.new { "<strong>NEW</strong> " } else { "" },
                        esc(&m.step)
                    ),
                    format!("{}: {}", esc(&m.class), esc(&m.signature)),
                    m.count.to_string(),
                    format!("{} – {}", esc(&stamp(m.first)), esc(&stamp(m.last))),
                    run_and_trace(links, m.sample_run_id, &m.sample_trace_id),
                ]
            })
            .collect();
        out.push_str("<p style=\"margin:8px 0 0;font-weight:600;\">Failure modes</p>");
        out.push_str(&table(
            &["Step", "Failure", "Count", "First – last", "Example"],
            rows,
        ));
    }
    if !j.flaky.is_empty() {
        let rows = j
            .flaky
            .iter()
            .map(|f| {
                vec![
                    esc(&f.step),
                    format!(
                        "{} of {} runs ({:.1}%)",
                        f.passed_after_retry, f.ran, f.rate
                    ),
                ]
            })
            .collect();
        out.push_str("<p style=\"margin:8px 0 0;font-weight:600;\">Flaky steps (passed only after a retry)</p>");
        out.push_str(&table(&["Step", "Passed after retry"], rows));
    }
    out
}

/// The chart, with a caption that states what the picture cannot (axes, line styles).
fn chart_html(d: &Digest, j: &JourneyDigest, src: &str) -> String {
    let input = chart_input(d, j);
    format!(
        "<img src=\"{}\" width=\"{}\" height=\"{}\" style=\"display:block;max-width:100%;height:auto;border:1px solid #eaeef2;\" alt=\"{}\">\
         <p style=\"margin:2px 0 8px;font-size:11px;color:#59636e;\">Run duration per {} hours: median (solid line) and p95 (dashed line), from 0 to {} ms (gridlines at {} ms); shaded band: the previous period's middle half; red spans: incidents.</p>",
        esc(src),
        chart::WIDTH,
        chart::HEIGHT,
        esc(&format!(
            "Latency of {} from {} to {}",
            j.name,
            date(d.from),
            date(d.to)
        )),
        j.chart.bucket_hours,
        axis_value(chart::y_max(&input)),
        chart::gridlines(&input)
            .iter()
            .map(|v| axis_value(*v))
            .collect::<Vec<_>>()
            .join(", ")
    )
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

fn phases_html(j: &JourneyDigest) -> String {
    let rows: Vec<Vec<String>> = slowest(j)
        .into_iter()
        .map(|s| {
            vec![
                esc(&s.name),
                esc(&ms(s.phases.total.unwrap_or(0.0))),
                esc(&phase_list(s)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<p style=\"margin:8px 0 0;font-weight:600;\">Slowest steps</p>{}",
        table(&["Step", "Mean", "Where the time goes"], rows)
    )
}

pub(super) fn incidents_html(incidents: &[IncidentDigest], links: &LinkBase) -> String {
    let mut out = h2("Incidents");
    if incidents.is_empty() {
        out.push_str("<p>None this period.</p>");
        return out;
    }
    let rows = incidents
        .iter()
        .map(|i| {
            vec![
                link(
                    links.page(&format!("/app/incidents/{}", i.id)),
                    &format!("#{} {}", i.id, i.journey),
                ),
                match (i.run_id, &i.trace_id) {
                    (Some(run), Some(trace)) => format!(
                        "{}: {} ({})",
                        esc(&i.severity),
                        esc(&i.summary),
                        run_and_trace(links, run, trace)
                    ),
                    _ => format!("{}: {}", esc(&i.severity), esc(&i.summary)),
                },
                esc(&stamp(i.started_at)),
                esc(&format!(
                    "{} / {} / {}",
                    secs(i.time_to_detect_s),
                    i.time_to_acknowledge_s.map_or("–".into(), secs),
                    i.time_to_resolve_s.map_or("open".into(), secs)
                )),
                esc(&i.notifications.join(", ")),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "Incident",
            "What",
            "Started",
            "Detect / ack / resolve",
            "Notifications",
        ],
        rows,
    ));
    out
}

pub(super) fn dependencies_html(deps: &[DependencyScore], links: &LinkBase) -> String {
    if deps.is_empty() {
        return String::new();
    }
    let rows = deps
        .iter()
        .map(|s| {
            vec![
                link(
                    links.page(&crate::links::dependency_row(&s.label)),
                    &s.label,
                ),
                esc(&pct(s.availability)),
                esc(&s.p95_ms.map_or("–".into(), ms)),
                s.incidents.to_string(),
                esc(&s.journeys.join(", ")),
            ]
        })
        .collect();
    h2("Third-party dependencies")
        + &table(
            &["Dependency", "Availability", "p95", "Incidents", "Used by"],
            rows,
        )
}

pub(super) fn coverage_html(gaps: &[CoverageGap], links: &LinkBase) -> String {
    if gaps.is_empty() {
        return String::new();
    }
    let rows = gaps
        .iter()
        .map(|g| {
            vec![
                link(
                    links.page(&crate::links::journey_page(&g.journey)),
                    &g.journey,
                ),
                esc(g.step.as_deref().unwrap_or("(whole journey)")),
                esc(&g.what),
            ]
        })
        .collect();
    h2("Coverage gaps") + &table(&["Journey", "Step", "What"], rows)
}
