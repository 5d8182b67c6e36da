//! The complete plain-text part: everything the HTML says, for mail readers and pagers that
//! show no HTML.

use super::html::{phase_list, slowest};
use super::*;

pub(super) fn text(d: &Digest, links: &LinkBase) -> String {
    let s = &d.summary;
    let mut out = format!(
        "Waymark feedback digest: {}\n{} to {}, compared with the {} before.\n\n\
         Availability {} over {}; {} (MTTD {}, MTTR {}); {}, {}; {}; {}.\n",
        d.owner,
        date(d.from),
        date(d.to),
        period_words(d),
        pct(s.availability),
        count(s.runs, "run"),
        count(s.incidents as u64, "incident"),
        s.mttd_s.map_or("–".into(), secs),
        s.mttr_s.map_or("–".into(), secs),
        count(s.regressions as u64, "regression"),
        count(s.improvements as u64, "improvement"),
        count(s.new_failure_modes as u64, "new failure mode"),
        count(s.flaky_steps as u64, "flaky step"),
    );
    for j in &d.journeys {
        out.push_str(&format!("\n== {} ==\n", j.name));
        if j.runs == 0 {
            out.push_str("It did not run in this period.\n");
        } else {
            out.push_str(&format!(
                "Availability {} ({}; SLO {}; error budget used {}); {}, {} failed.\n",
                pct(j.availability),
                change(j.availability, j.previous_availability),
                j.slo.map_or("none".into(), |v| format!("{v}%")),
                j.error_budget_used
                    .map_or("–".into(), |b| format!("{:.0}%", b * 100.0)),
                count(j.runs, "run"),
                j.failed
            ));
        }
        if let Some(url) = links.page(&crate::links::journey_page(&j.name)) {
            out.push_str(&format!("{url}\n"));
        }
        if j.runs == 0 {
            continue;
        }
        for st in &j.steps {
            match &st.latency {
                Some(q) => out.push_str(&format!(
                    "  {}: p50 {} p95 {} p99 {}; {}\n",
                    st.name,
                    ms(q.p50),
                    ms(q.p95),
                    ms(q.p99),
                    trend(st)
                )),
                None => out.push_str(&format!("  {}: {}\n", st.name, trend(st))),
            }
        }
        for st in slowest(j) {
            out.push_str(&format!(
                "  slowest: {} {} ({})\n",
                st.name,
                ms(st.phases.total.unwrap_or(0.0)),
                phase_list(st)
            ));
        }
        for m in &j.failure_modes {
            out.push_str(&format!(
                "  failure{}: {} {}: {} ×{} ({} – {})",
                if m.new { " [NEW]" } else { "" },
                m.step,
                m.class,
                m.signature,
                m.count,
                stamp(m.first),
                stamp(m.last)
            ));
            if let Some(url) = links.page(&format!("/app/runs/{}", m.sample_run_id)) {
                out.push_str(&format!(" {url}"));
            }
            out.push('\n');
        }
        for f in &j.flaky {
            out.push_str(&format!(
                "  flaky: {} passed only after a retry in {} of {} runs ({:.1}%)\n",
                f.step, f.passed_after_retry, f.ran, f.rate
            ));
        }
    }
    out.push_str("\n== Incidents ==\n");
    if d.incidents.is_empty() {
        out.push_str("None this period.\n");
    }
    for i in &d.incidents {
        out.push_str(&format!(
            "#{} {} {}: {}; started {}; detected in {}, acknowledged {}, resolved {}; notifications: {}\n",
            i.id,
            i.journey,
            i.severity,
            i.summary,
            stamp(i.started_at),
            secs(i.time_to_detect_s),
            i.time_to_acknowledge_s.map_or("never".into(), |s| format!("after {}", secs(s))),
            i.time_to_resolve_s.map_or("not yet".into(), |s| format!("after {}", secs(s))),
            if i.notifications.is_empty() { "none".into() } else { i.notifications.join(", ") }
        ));
    }
    section(&mut out, "Third-party dependencies", &d.dependencies, |s| {
        format!(
            "{}: availability {}, p95 {}, {} (used by {})\n",
            s.label,
            pct(s.availability),
            s.p95_ms.map_or("–".into(), ms),
            count(s.incidents as u64, "incident"),
            s.journeys.join(", ")
        )
    });
    section(&mut out, "Coverage gaps", &d.coverage, |g| {
        format!(
            "{} {}: {}\n",
            g.journey,
            g.step.as_deref().unwrap_or("(whole journey)"),
            g.what
        )
    });
    out
}

/// The section `title`, one `line` per item; nothing at all without items.
fn section<T>(out: &mut String, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("\n== {title} ==\n"));
    for item in items {
        out.push_str(&line(item));
    }
}
