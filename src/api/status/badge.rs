//! Uptime badges: a small flat SVG, `uptime | 99.95%`, for READMEs and wikis. The figure is
//! written in the badge; its colour (green from 99.9 %, yellow from 99 %, red below, grey
//! without data) only repeats it.

use crate::svg::{self, element};

/// Width of a text in the badge's 11 px sans-serif, roughly: 6.5 px a character.
fn text_width(text: &str) -> u32 {
    (text.chars().count() as u32) * 13 / 2 + 10
}

pub fn uptime(percent: Option<f64>) -> String {
    let (value, colour) = match percent {
        None => ("no data".to_string(), "#9f9f9f"),
        Some(p) if p >= 99.9 => (crate::format::percent(p), "#2e8540"),
        Some(p) if p >= 99.0 => (crate::format::percent(p), "#b08800"),
        Some(p) => (crate::format::percent(p), "#cf222e"),
    };
    let label = "uptime";
    let (lw, vw) = (text_width(label), text_width(&value));
    let said = format!("{label}: {value}");
    svg::document(lw + vw, 20)
        .attr("role", "img")
        .attr("aria-label", &said)
        .title(&said)
        .child(
            element("rect")
                .attr("width", lw)
                .attr("height", 20)
                .attr("fill", "#555"),
        )
        .child(
            element("rect")
                .attr("x", lw)
                .attr("width", vw)
                .attr("height", 20)
                .attr("fill", colour),
        )
        .child(
            element("g")
                .attr("fill", "#fff")
                .attr("font-family", "Verdana,DejaVu Sans,sans-serif")
                .attr("font-size", 11)
                .attr("text-anchor", "middle")
                .child(svg::text("", lw / 2, 14, label))
                .child(svg::text("", lw + vw / 2, 14, &value)),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figure_is_in_the_badge_and_its_colour_follows_it() {
        let good = uptime(Some(99.95));
        assert!(
            good.contains(">99.95%</text>") && good.contains("#2e8540"),
            "{good}"
        );
        assert!(good.contains("aria-label=\"uptime: 99.95%\""));
        assert!(uptime(Some(99.5)).contains("#b08800"));
        assert!(uptime(Some(97.0)).contains("#cf222e"));
        assert!(uptime(None).contains(">no data</text>"));
        // A wider value makes a wider badge.
        let width = |svg: &str| {
            svg.split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        };
        assert!(width(&uptime(Some(100.0))) > width(&uptime(Some(9.5))));
    }
}
