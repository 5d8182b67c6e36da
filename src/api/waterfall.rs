//! A run's waterfall as inline SVG: one row per step, placed at its offset in the run, split
//! into its phases (DNS, connect, TLS, handshake, TTFB, download). SVG attributes position the
//! bars, and classes from `ui/static/waymark.css` colour them, so the page needs no inline
//! style or script under its Content-Security-Policy.
//!
//! Every phase has a `<title>` (its name and duration), and each row says its status in words:
//! colour is never the only signal. Step names are escaped.

use crate::format::{ms_short, truncate};
use crate::run::{RunResult, StepStatus};
use crate::svg::{self, element};

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
    let mut out = svg::figure(
        "waterfall",
        width,
        format_args!("{height:.0}"),
        &format!(
            "Waterfall of the run: {} steps over {}",
            run.steps.len(),
            ms_short(run.duration_ms)
        ),
    );
    let mut t = 0.0;
    while t <= end + step / 2.0 {
        out.push(
            element("line")
                .class("grid")
                .attr("x1", format_args!("{:.1}", x(t)))
                .attr("x2", format_args!("{:.1}", x(t)))
                .attr("y1", TOP - 4.0)
                .attr("y2", format_args!("{height:.0}")),
        );
        out.push(svg::text(
            "tick",
            format_args!("{:.1}", x(t)),
            14,
            &ms_short(t),
        ));
        t += step;
    }
    for (i, s) in run.steps.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let status = s.status.as_str();
        let mark = match s.status {
            StepStatus::Passed => "✔",
            StepStatus::Skipped => "–",
            _ => "✖",
        };
        out.push(svg::text(
            &format!("label {status}"),
            4,
            format_args!("{:.1}", y + 17.0),
            &format!("{mark} {}", truncate(&s.name, 26)),
        ));
        if s.status == StepStatus::Skipped {
            out.push(svg::text(
                "tick",
                LABEL_W,
                format_args!("{:.1}", y + 17.0),
                "skipped",
            ));
            continue;
        }
        let bar = |class: String, from: f64, ms: f64, title: String| {
            element("rect")
                .class(&class)
                .attr("x", format_args!("{:.1}", x(from)))
                .attr("y", format_args!("{:.1}", y + 5.0))
                .attr(
                    "width",
                    format_args!("{:.1}", (x(from + ms) - x(from)).max(1.0)),
                )
                .attr("height", ROW_H - 10.0)
                .title(&title)
        };
        let mut at = s.offset_ms;
        let mut drew = false;
        for (phase, d) in s.timings.phases() {
            let ms = d.as_secs_f64() * 1e3;
            out.push(bar(
                format!("ph ph-{phase} {status}"),
                at,
                ms,
                format!("{} {phase}: {}", s.name, ms_short(ms)),
            ));
            at += ms;
            drew = true;
        }
        let total = s.timings.total.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        if !drew {
            out.push(bar(
                format!("ph ph-total {status}"),
                s.offset_ms,
                total,
                format!("{}: {}", s.name, ms_short(total)),
            ));
        }
        out.push(svg::text(
            "tick",
            format_args!("{:.1}", (x(s.offset_ms + total) + 4.0).min(width - 60.0)),
            format_args!("{:.1}", y + 17.0),
            &format!("{} ({status})", ms_short(total)),
        ));
    }
    out.to_string()
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
