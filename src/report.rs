//! Human-readable rendering of a [`RunResult`] for the terminal (`waymark run`).
//!
//! It reads only the already-redacted result, so it cannot print a secret.

use std::fmt::Write;

use crate::runner::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::Timings;

pub fn text(result: &RunResult) -> String {
    text_with_trace_url(result, None)
}

/// [`text`], with a link to the run's trace when a URL template (`{trace_id}` in it) is given.
pub fn text_with_trace_url(result: &RunResult, trace_url: Option<&str>) -> String {
    let mut out = String::new();
    let verdict = match result.outcome {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Error => "ERROR",
    };
    let _ = writeln!(
        out,
        "{} {verdict} in {}  (run {}, location {})",
        result.journey,
        fmt_ms(result.duration_ms),
        result.run_id,
        result.location
    );
    if !result.trace_id.is_empty() {
        match trace_url {
            Some(t) => {
                let url = crate::telemetry::trace_url(t, &result.trace_id);
                let _ = writeln!(out, "  trace {}  {url}", result.trace_id);
            }
            None => {
                let _ = writeln!(out, "  trace {}", result.trace_id);
            }
        }
    }
    let width = result
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for step in &result.steps {
        write_step(&mut out, step, width);
    }
    write_dependencies(&mut out, &result.steps);
    out
}

/// One line per third-party `dependency` label: how its steps did in this run.
fn write_dependencies(out: &mut String, steps: &[StepResult]) {
    let mut labels: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.dependency.as_deref())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.is_empty() {
        return;
    }
    out.push_str("  dependencies:\n");
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for label in labels {
        let of_label: Vec<&StepResult> = steps
            .iter()
            .filter(|s| s.dependency.as_deref() == Some(label))
            .collect();
        let count = |status| of_label.iter().filter(|s| s.status == status).count();
        let (passed, failed) = (count(StepStatus::Passed), count(StepStatus::Failed));
        let verdict = if failed > 0 {
            "FAILING"
        } else if passed > 0 {
            "healthy"
        } else {
            "not checked"
        };
        let time: f64 = of_label
            .iter()
            .filter_map(|s| s.timings.total)
            .map(|d| d.as_secs_f64() * 1000.0)
            .sum();
        let _ = writeln!(
            out,
            "    {label:<width$}  {verdict}  {passed}/{} step(s) passed  {}",
            of_label.len(),
            fmt_ms(time)
        );
    }
}

fn mark(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Passed => "✔ pass",
        StepStatus::Failed => "✘ FAIL",
        StepStatus::Skipped => "- skip",
        StepStatus::Error => "! ERR ",
    }
}

fn write_step(out: &mut String, s: &StepResult, width: usize) {
    let mut line = format!("  {} {:<width$}", mark(s.status), s.name);
    if let Some(resp) = &s.response {
        let _ = write!(line, "  {}", resp.status);
    }
    if let Some(total) = s.timings.total {
        let _ = write!(line, "  {}", fmt_ms(total.as_secs_f64() * 1000.0));
    }
    if s.attempts > 1 {
        let _ = write!(line, "  ({} attempts)", s.attempts);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    let phases = phases(&s.timings);
    if !phases.is_empty() {
        let _ = writeln!(out, "      {phases}");
    }
    if !s.actions.is_empty() {
        let actions: Vec<String> = s
            .actions
            .iter()
            .map(|a| {
                let took = a.duration.map(|d| fmt_ms(d.as_secs_f64() * 1000.0));
                let mark = if a.passed { "" } else { " ✘" };
                format!("{}{mark} {}", a.action, took.unwrap_or_default())
            })
            .collect();
        let _ = writeln!(out, "      actions: {}", actions.join(" · "));
    }
    if let Some(req) = &s.request {
        let _ = writeln!(out, "      {} {}", req.method, req.url);
    }
    if let Some(f) = &s.failure {
        let class = serde_json::to_value(f.class).ok();
        let class = class.as_ref().and_then(|c| c.as_str()).unwrap_or("?");
        let _ = writeln!(out, "      {class}: {}", f.message);
    }
    if s.status != StepStatus::Passed {
        for c in s.conditions.iter().filter(|c| !c.passed) {
            let _ = writeln!(out, "      ✘ {}   actual: {}", c.expression, c.actual);
        }
    }
    if let Some(reason) = &s.skip_reason {
        let _ = writeln!(out, "      skipped: {reason}");
    }
}

fn phases(t: &Timings) -> String {
    t.phases()
        .map(|(name, d)| format!("{name} {}", fmt_ms(d.as_secs_f64() * 1000.0)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}
