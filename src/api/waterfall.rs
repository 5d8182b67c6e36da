//! A run's waterfall as inline SVG: one row per step, placed at its offset in the run, split
//! into its phases (DNS, connect, TLS, handshake, TTFB, download). SVG attributes position the
//! bars, and classes from `ui/static/waymark.css` colour them, so the page needs no inline
//! style or script under its Content-Security-Policy.
//!
//! Every phase has a `<title>` (its name and duration), and each row says its status in words:
//! colour is never the only signal. Step names are escaped.

use std::fmt::Write as _;

use crate::digest::render::esc;
use crate::run::{RunResult, StepStatus};

const LABEL_W: f64 = 200.0;
const PLOT_W: f64 = 560.0;
const ROW_H: f64 = 26.0;
const TOP: f64 = 22.0;

/// A round axis step (1, 2 or 5 × 10^k ms) giving about five ticks over `max`.
fn tick_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(0.001);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

pub fn svg(run: &RunResult) -> String {
    let end = run
        .steps
        .iter()
        .map(|s| s.offset_ms + s.timings.total.map_or(0.0, |d| d.as_secs_f64() * 1e3))
        .fold(run.duration_ms, f64::max)
        .max(0.001);
    let step = tick_step(end);
    let scale = PLOT_W / (end / step).ceil().max(1.0) / step;
    let x = |ms: f64| LABEL_W + (ms.max(0.0) * scale).min(PLOT_W);
    let height = TOP + ROW_H * run.steps.len() as f64 + 6.0;
    let width = LABEL_W + PLOT_W + 10.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"waterfall\" viewBox=\"0 0 {width} {height:.0}\" role=\"img\" \
         aria-label=\"Waterfall of the run: {} steps over {}\">",
        run.steps.len(),
        ms_label(run.duration_ms)
    );
    let mut t = 0.0;
    while t <= end + step / 2.0 {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{height:.0}\"/>\
             <text class=\"tick\" x=\"{0:.1}\" y=\"14\">{2}</text>",
            x(t),
            TOP - 4.0,
            ms_label(t)
        );
        t += step;
    }
    for (i, s) in run.steps.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let status = match s.status {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::Error => "error",
            StepStatus::Skipped => "skipped",
        };
        let mark = match s.status {
            StepStatus::Passed => "✔",
            StepStatus::Skipped => "–",
            _ => "✖",
        };
        let _ = write!(
            out,
            "<text class=\"label {status}\" x=\"4\" y=\"{:.1}\">{mark} {}</text>",
            y + 17.0,
            esc(&truncate(&s.name, 26))
        );
        if s.status == StepStatus::Skipped {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{LABEL_W}\" y=\"{:.1}\">skipped</text>",
                y + 17.0
            );
            continue;
        }
        let mut at = s.offset_ms;
        let mut drew = false;
        for (phase, d) in s.timings.phases() {
            let ms = d.as_secs_f64() * 1e3;
            let _ = write!(
                out,
                "<rect class=\"ph ph-{phase} {status}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\"><title>{} {phase}: {}</title></rect>",
                x(at),
                y + 5.0,
                (x(at + ms) - x(at)).max(1.0),
                ROW_H - 10.0,
                esc(&s.name),
                ms_label(ms)
            );
            at += ms;
            drew = true;
        }
        let total = s.timings.total.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        if !drew {
            let _ = write!(
                out,
                "<rect class=\"ph ph-total {status}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\"><title>{}: {}</title></rect>",
                x(s.offset_ms),
                y + 5.0,
                (x(s.offset_ms + total) - x(s.offset_ms)).max(1.0),
                ROW_H - 10.0,
                esc(&s.name),
                ms_label(total)
            );
        }
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{} ({status})</text>",
            (x(s.offset_ms + total) + 4.0).min(width - 60.0),
            y + 17.0,
            ms_label(total)
        );
    }
    out.push_str("</svg>");
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max - 1).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::testkit::{self, StepBuilder};
    use crate::step::Timings;
    use std::time::Duration;

    fn step(name: &str, status: StepStatus, offset_ms: f64, phases: &[u64]) -> StepBuilder {
        let ms = Duration::from_millis;
        let s = testkit::step(name).status(status).offset_ms(offset_ms);
        match phases {
            [dns, connect, ttfb, download] => s.timings(Timings {
                dns: Some(ms(*dns)),
                connect: Some(ms(*connect)),
                ttfb: Some(ms(*ttfb)),
                download: Some(ms(*download)),
                total: Some(ms(dns + connect + ttfb + download)),
                ..Timings::default()
            }),
            _ => s,
        }
    }

    #[test]
    fn steps_sit_at_their_offset_split_into_phases() {
        let run = testkit::run("checkout")
            .failed()
            .duration_ms(400.0)
            .step(step("<login>", StepStatus::Passed, 0.0, &[10, 20, 150, 20]))
            .step(step("pay", StepStatus::Failed, 200.0, &[0, 10, 180, 10]))
            .step(step("cleanup", StepStatus::Skipped, 400.0, &[]))
            .build();
        let svg = svg(&run);
        assert!(svg.contains("&lt;login&gt;") && !svg.contains("<login>"));
        // 400 ms over 560 px at 100 ms a tick: 1.4 px a millisecond, from x = 200.
        assert!(
            svg.contains("<rect class=\"ph ph-dns passed\" x=\"200.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("<rect class=\"ph ph-connect passed\" x=\"214.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("<rect class=\"ph ph-ttfb failed\" x=\"494.0\""),
            "{svg}"
        );
        assert!(svg.contains("<title>pay ttfb: 180 ms</title>"));
        assert!(
            svg.contains("✖ pay")
                && svg.contains("200 ms (failed)")
                && svg.contains(">skipped</text>")
        );
        assert!(svg.matches("class=\"tick\" x=").count() >= 5);
        assert_eq!(tick_step(400.0), 100.0);
        assert_eq!(tick_step(7.0), 2.0);
    }
}
