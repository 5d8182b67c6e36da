//! A step's latency distribution, this week against last week, as inline SVG: the share of
//! runs in each of [`BINS`] logarithmic latency bins (latency spreads over orders of
//! magnitude), two bars per bin. The weeks differ by fill *and* pattern (solid against
//! outlined), and every bar has a `<title>` with its range and both shares.

use crate::baseline::sketch::Sketch;
use crate::baseline::sketch::bucket_value;
use crate::format::ms;
use crate::svg::{self, element};

pub const BINS: usize = 24;
const W: f64 = 600.0;
const H: f64 = 140.0;
const BOTTOM: f64 = 18.0;

/// Share of each bin (percent) of a sketch, bins spaced logarithmically from `lo` to `hi`.
fn shares(s: &Sketch, lo: f64, hi: f64) -> [f64; BINS] {
    let mut out = [0.0; BINS];
    let total = s.count();
    if total == 0 {
        return out;
    }
    let span = (hi / lo).ln().max(1e-9);
    let mut place = |value: f64, n: u64| {
        let bin = (((value / lo).ln() / span) * BINS as f64).floor();
        let bin = (bin.max(0.0) as usize).min(BINS - 1);
        out[bin] += 100.0 * n as f64 / total as f64;
    };
    place(lo, s.zeros());
    for (index, n) in s.buckets() {
        place(bucket_value(index), n);
    }
    out
}

/// One bin of the distribution: a latency range and the share of each week's runs in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Bin {
    pub from_ms: f64,
    pub to_ms: f64,
    /// Percent of this week's runs.
    pub this_week: f64,
    /// Percent of last week's runs.
    pub last_week: f64,
}

/// [`BINS`] bins spanning both weeks' latencies; empty when neither week has one.
pub fn bins(now: &Sketch, before: &Sketch) -> Vec<Bin> {
    let q = |s: &Sketch, p: f64| s.quantile(p);
    let lo = [q(now, 0.0), q(before, 0.0)]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min);
    let hi = [q(now, 1.0), q(before, 1.0)]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return Vec::new();
    }
    let lo = (lo * 0.95).max(0.001);
    let hi = (hi * 1.05).max(lo * 1.1);
    let (a, b) = (shares(now, lo, hi), shares(before, lo, hi));
    let edge = |i: usize| lo * (hi / lo).powf(i as f64 / BINS as f64);
    (0..BINS)
        .map(|i| Bin {
            from_ms: edge(i),
            to_ms: edge(i + 1),
            this_week: a[i],
            last_week: b[i],
        })
        .collect()
}

/// None without bins.
pub fn svg(bins: &[Bin]) -> Option<String> {
    let (first, last) = (bins.first()?, bins.last()?);
    let (lo, hi) = (first.from_ms, last.to_ms);
    let top = bins
        .iter()
        .fold(1.0f64, |m, b| m.max(b.this_week).max(b.last_week));
    let bin_w = W / bins.len() as f64;
    let mut out = svg::figure(
        "histogram",
        W,
        H,
        &format!(
            "Latency distribution from {} to {}, this week and last week",
            ms(lo),
            ms(hi)
        ),
    );
    for (i, bin) in bins.iter().enumerate() {
        let title = format!(
            "{}–{}: {:.1}% of runs this week, {:.1}% last week",
            ms(bin.from_ms),
            ms(bin.to_ms),
            bin.this_week,
            bin.last_week
        );
        for (k, (share, class)) in [(bin.this_week, "now"), (bin.last_week, "before")]
            .into_iter()
            .enumerate()
        {
            let h = (H - BOTTOM - 4.0) * share / top;
            let x = i as f64 * bin_w + 1.0 + k as f64 * (bin_w / 2.0 - 1.0);
            out.push(
                element("rect")
                    .class(class)
                    .attr("x", format_args!("{x:.1}"))
                    .attr("y", format_args!("{:.1}", H - BOTTOM - h))
                    .attr("width", format_args!("{:.1}", bin_w / 2.0 - 1.5))
                    .attr("height", format_args!("{h:.1}"))
                    .title(&title),
            );
        }
    }
    let y = format!("{:.1}", H - BOTTOM);
    out.push(
        element("line")
            .class("axis")
            .attr("x1", 0)
            .attr("x2", W)
            .attr("y1", &y)
            .attr("y2", &y),
    );
    out.push(svg::text("tick", 0, H, &ms(lo)));
    out.push(
        svg::text(
            "tick",
            format_args!("{:.1}", W / 2.0),
            H,
            &ms(bins[bins.len() / 2].from_ms),
        )
        .attr("text-anchor", "middle"),
    );
    out.push(svg::text("tick", W, H, &ms(hi)).attr("text-anchor", "end"));
    Some(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_week_moves_its_bars_right() {
        let (mut now, mut before) = (Sketch::new(), Sketch::new());
        for i in 0..1000 {
            before.add(100.0 + (i % 10) as f64);
            now.add(200.0 + (i % 10) as f64);
        }
        let (lo, hi) = (90.0, 230.0);
        let (a, b) = (shares(&now, lo, hi), shares(&before, lo, hi));
        assert!((a.iter().sum::<f64>() - 100.0).abs() < 1e-6);
        assert!((b.iter().sum::<f64>() - 100.0).abs() < 1e-6);
        let centre =
            |s: &[f64; BINS]| s.iter().enumerate().map(|(i, v)| i as f64 * v).sum::<f64>() / 100.0;
        assert!(centre(&a) > centre(&b) + 10.0, "{a:?} vs {b:?}");
        let bins = bins(&now, &before);
        assert_eq!(bins.len(), BINS);
        assert!(bins.windows(2).all(|w| w[0].to_ms == w[1].from_ms));
        let svg = svg(&bins).unwrap();
        assert_eq!(svg.matches("<rect class=\"now\"").count(), BINS);
        assert_eq!(svg.matches("<rect class=\"before\"").count(), BINS);
        assert!(svg.contains("% of runs this week"));
        assert!(super::bins(&Sketch::new(), &Sketch::new()).is_empty());
        assert_eq!(super::svg(&[]), None);
    }
}
