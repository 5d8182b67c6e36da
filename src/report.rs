//! Human-readable rendering of a [`RunResult`] for the terminal (`waymark run`).
//!
//! It reads only the already-redacted result, so it cannot print a secret; and it prints
//! every text from a journey file or a target through [`terminal_safe`], so neither can move
//! the cursor, recolour or reorder what the terminal shows (ANSI escapes, bidi controls).

#![deny(clippy::disallowed_methods)]

use std::borrow::Cow;
use std::fmt::Write;

use crate::format::ms_precise;
use crate::run::{Outcome, RunResult, StepResult, StepStatus};
use crate::step::Timings;

/// `text` with control characters (C0, DEL, C1: ANSI escapes start with one) and Unicode bidi
/// controls (which can make a line read differently from what it contains) written as Rust
/// escapes (`\u{1b}`, `\u{202e}`), so the terminal shows them instead of obeying them.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

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
        terminal_safe(&result.journey),
        ms_precise(result.duration_ms),
        result.run_id,
        terminal_safe(&result.location)
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
        .map(|s| terminal_safe(&s.name).chars().count())
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
    let width = labels
        .iter()
        .map(|l| terminal_safe(l).chars().count())
        .max()
        .unwrap_or(0);
    for label in labels {
        let shown = terminal_safe(label);
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
            "    {shown:<width$}  {verdict}  {passed}/{} step(s) passed  {}",
            of_label.len(),
            ms_precise(time)
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
    let mut line = format!("  {} {:<width$}", mark(s.status), terminal_safe(&s.name));
    if let Some(resp) = &s.response {
        let _ = write!(line, "  {}", resp.status);
    }
    if let Some(total) = s.timings.total {
        let _ = write!(line, "  {}", ms_precise(total.as_secs_f64() * 1000.0));
    }
    if s.attempts > 1 {
        let _ = write!(line, "  ({} attempts)", s.attempts);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    // The lines under the step's, all indented alike.
    let mut details = Vec::new();
    let phases = phases(&s.timings);
    if !phases.is_empty() {
        details.push(phases);
    }
    if !s.actions.is_empty() {
        let actions: Vec<String> = s
            .actions
            .iter()
            .map(|a| {
                let took = a.duration.map(|d| ms_precise(d.as_secs_f64() * 1000.0));
                let mark = if a.passed { "" } else { " ✘" };
                format!(
                    "{}{mark} {}",
                    terminal_safe(&a.action),
                    took.unwrap_or_default()
                )
            })
            .collect();
        details.push(format!("actions: {}", actions.join(" · ")));
    }
    if let Some(req) = &s.request {
        let (method, url) = (terminal_safe(&req.method), terminal_safe(&req.url));
        details.push(format!("{method} {url}"));
    }
    if let Some(f) = &s.failure {
        details.push(format!(
            "{}: {}",
            f.class.as_str(),
            terminal_safe(&f.message)
        ));
    }
    if s.status != StepStatus::Passed {
        for c in s.conditions.iter().filter(|c| !c.passed) {
            let (expression, actual) = (terminal_safe(&c.expression), terminal_safe(&c.actual));
            details.push(format!("✘ {expression}   actual: {actual}"));
        }
    }
    if let Some(reason) = &s.skip_reason {
        details.push(format!("skipped: {}", terminal_safe(reason)));
    }
    for line in details {
        let _ = writeln!(out, "      {line}");
    }
}

fn phases(t: &Timings) -> String {
    t.phases()
        .map(|(name, d)| format!("{name} {}", ms_precise(d.as_secs_f64() * 1000.0)))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_safe_escapes_ansi_c1_and_bidi_controls_only() {
        assert!(matches!(terminal_safe("plain – é ✔"), Cow::Borrowed(_)));
        assert_eq!(
            terminal_safe("\x1b[31mred\x1b[0m"),
            "\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(
            terminal_safe("a\u{202e}cba\u{2066}"),
            "a\\u{202e}cba\\u{2066}"
        );
        assert_eq!(
            terminal_safe("bell\x07 nl\n tab\t c1\u{9b}"),
            "bell\\u{7} nl\\u{a} tab\\u{9} c1\\u{9b}"
        );
        assert_eq!(
            terminal_safe("\u{200f}\u{061c}\u{7f}"),
            "\\u{200f}\\u{61c}\\u{7f}"
        );
    }
}
