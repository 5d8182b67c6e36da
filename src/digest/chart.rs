//! A journey's latency over the digest period as a small chart: SVG built here, rasterised to
//! PNG with resvg for email. It has no text at all: email clients get a PNG, and resvg is built
//! without fonts (no text feature, no system fonts), so the axis range and gridline values are
//! stated by the HTML caption around the image instead.

use chrono::{DateTime, Utc};
use resvg::tiny_skia::{Color, Pixmap, Transform};
use resvg::usvg::{Options, Tree};

use crate::svg::{self, Element, element};

#[derive(Debug, Clone, PartialEq)]
pub struct ChartInput {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Median run duration (ms) per time bucket; the instant is the bucket's start.
    pub p50: Vec<(DateTime<Utc>, f64)>,
    /// p95 run duration (ms) per bucket.
    pub p95: Vec<(DateTime<Utc>, f64)>,
    /// The previous period's interquartile range (low, high) in ms: the "baseline band".
    pub band: Option<(f64, f64)>,
    /// Incidents (start, end), to shade.
    pub incidents: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 160;

/// Where y = y_max and y = 0 are drawn: a margin above and below so that the top gridline and
/// the baseline are whole lines rather than half-clipped at the image edge.
const PLOT_TOP: f64 = 8.0;
const PLOT_BOTTOM: f64 = HEIGHT as f64 - 8.0;

/// The axis top when there is nothing to scale to: a blank chart still needs a range to name.
const EMPTY_Y_MAX: f64 = 100.0;
/// The caption prints y_max rounded to whole ms, so a smaller axis would read "0 to 0 ms".
const MIN_Y_MAX: f64 = 1.0;
/// Durations past this (about 30 years) are corrupt data; scaling to them would flatten every
/// real value onto the baseline and push the axis towards infinity.
const MAX_MS: f64 = 1e12;

/// A brief incident over a week is a fraction of a pixel wide; it must still be visible.
const MIN_INCIDENT_WIDTH: f64 = 2.0;

const BACKGROUND: &str = "#fbfcfd";
const GRID: &str = "#e3e8ee";
const BASELINE: &str = "#afb8c1";
const BAND: &str = "#b6cbe3";
const BAND_OPACITY: &str = "0.45";
const INCIDENT: &str = "#f9d7d7";
const P95: &str = "#7fa7d9";
const P50: &str = "#0b3d91";

/// A standalone SVG document, `WIDTH` x `HEIGHT`.
pub fn svg(input: &ChartInput) -> String {
    let top = y_max(input);
    let frame = Frame::new(input, top);
    let p50 = clean(&input.p50, &frame);
    let p95 = clean(&input.p95, &frame);
    let spacing = typical_spacing(&[&p50, &p95]);

    let mut parts = vec![rect(
        0.0,
        0.0,
        f64::from(WIDTH),
        f64::from(HEIGHT),
        BACKGROUND,
    )];
    parts.extend(incidents(input, &frame));
    parts.extend(band(input.band, &frame));
    parts.extend(
        gridlines(input)
            .into_iter()
            .map(|v| hline(frame.y(v), GRID)),
    );
    parts.push(hline(PLOT_BOTTOM, BASELINE));
    parts.extend(series(&p95, spacing, &frame, &P95_STYLE));
    parts.extend(series(&p50, spacing, &frame, &P50_STYLE));

    format!("{}\n", svg::document(WIDTH, HEIGHT).lines(parts))
}

/// The SVG rasterised to a `WIDTH` x `HEIGHT` PNG. Never panics: should rendering or encoding
/// fail (it should not: the SVG is ours), the result is a blank PNG of the same size, so the
/// email still lays out.
pub fn png(input: &ChartInput) -> Vec<u8> {
    pixmap(input)
        .and_then(|p| p.encode_png().ok())
        .unwrap_or_else(blank_png)
}

/// The top of the y axis in ms: the smallest of 1, 2, 2.5, 5 × 10^k (k ≥ 0) at or above every
/// p95, p50 and band value, so that the caption's "0 to {y_max} ms" is a round number.
pub fn y_max(input: &ChartInput) -> f64 {
    let band = input.band.filter(|&(lo, hi)| valid(lo) && valid(hi));
    let largest = input
        .p50
        .iter()
        .chain(&input.p95)
        .map(|&(_, v)| v)
        .chain(band.map(|(lo, hi)| lo.max(hi)))
        .filter(|&v| valid(v))
        .reduce(f64::max);
    largest.map_or(EMPTY_Y_MAX, nice_ceiling)
}

/// The ms values of the horizontal gridlines, bottom to top, ending at `y_max` (the 0 ms
/// baseline is drawn as the axis and not listed). Steps are round for every nice `y_max`:
/// 100 → 25, 50, 75, 100; 250 → 50 … 250; 500 → 100 … 500.
pub fn gridlines(input: &ChartInput) -> Vec<f64> {
    let top = y_max(input);
    let (step, count) = grid_step(top);
    (1..=count).map(|i| step * f64::from(i)).collect()
}

/// The chart rendered at 1:1, shared by [`png`] and the pixel tests.
fn pixmap(input: &ChartInput) -> Option<Pixmap> {
    let tree = Tree::from_str(&svg(input), &Options::default()).ok()?;
    let mut pixmap = Pixmap::new(WIDTH, HEIGHT)?;
    resvg::render(&tree, Transform::identity(), &mut pixmap.as_mut());
    Some(pixmap)
}

/// A white PNG of the chart's size. Nothing here depends on input, so it cannot fail in
/// practice; if it somehow did, an empty body is still better than a panic in the mailer.
fn blank_png() -> Vec<u8> {
    Pixmap::new(WIDTH, HEIGHT)
        .and_then(|mut p| {
            p.fill(Color::WHITE);
            p.encode_png().ok()
        })
        .unwrap_or_default()
}

/// A value that can be drawn: non-finite, negative and absurd values are skipped, not clamped,
/// because they are not latencies at all.
fn valid(v: f64) -> bool {
    v.is_finite() && (0.0..=MAX_MS).contains(&v)
}

/// Stepping through the nice values decade by decade keeps them exact (no logarithms, no
/// rounding error in 10^k), so equal inputs always give the same axis. Bounded by `MAX_MS`
/// (itself nice) so that no input, even one that slipped past [`valid`], can loop forever.
fn nice_ceiling(v: f64) -> f64 {
    let v = v.max(MIN_Y_MAX);
    let mut decade = 1.0_f64;
    while decade < MAX_MS {
        for m in [1.0, 2.0, 2.5, 5.0] {
            if m * decade >= v {
                return m * decade;
            }
        }
        decade *= 10.0;
    }
    MAX_MS
}

/// Gridline step and count for a nice `top`: quarters of 1 and 2, fifths of 2.5 and 5, so each
/// line falls on a value a reader would name.
fn grid_step(top: f64) -> (f64, u32) {
    let mut decade = 1.0_f64;
    while decade * 10.0 <= top {
        decade *= 10.0;
    }
    let mantissa = top / decade;
    if mantissa > 2.0 {
        (top / 5.0, 5)
    } else {
        (top / 4.0, 4)
    }
}

/// Maps time and ms to pixels. A period that is empty or reversed has no time axis: nothing
/// time-based is drawn, rather than dividing by zero.
struct Frame {
    from_ms: i64,
    to_ms: i64,
    y_max: f64,
}

impl Frame {
    fn new(input: &ChartInput, y_max: f64) -> Self {
        Frame {
            from_ms: input.from.timestamp_millis(),
            to_ms: input.to.timestamp_millis(),
            y_max,
        }
    }

    fn has_time(&self) -> bool {
        self.to_ms > self.from_ms
    }

    fn contains(&self, t_ms: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&t_ms)
    }

    /// x of an instant in ms since the epoch, clamped to the image.
    fn x(&self, t_ms: f64) -> f64 {
        let span = (self.to_ms - self.from_ms) as f64;
        let x = (t_ms - self.from_ms as f64) / span * f64::from(WIDTH);
        x.clamp(0.0, f64::from(WIDTH))
    }

    fn y(&self, v: f64) -> f64 {
        let share = (v / self.y_max).clamp(0.0, 1.0);
        PLOT_BOTTOM - share * (PLOT_BOTTOM - PLOT_TOP)
    }
}

/// Drawable points of a series as (ms since epoch, value), sorted by time. Points whose bucket
/// starts outside the period are dropped: they belong to another chart.
fn clean(points: &[(DateTime<Utc>, f64)], frame: &Frame) -> Vec<(i64, f64)> {
    if !frame.has_time() {
        return Vec::new();
    }
    let mut out: Vec<(i64, f64)> = points
        .iter()
        .map(|&(t, v)| (t.timestamp_millis(), v))
        .filter(|&(t, v)| valid(v) && frame.contains(t))
        .collect();
    out.sort_by_key(|&(t, _)| t);
    out
}

/// The bucket width, as the median gap between consecutive instants of both series. The input
/// does not carry it, and a median is not fooled by the holes it is used to detect. `None` when
/// there are fewer than two distinct instants.
fn typical_spacing(series: &[&[(i64, f64)]]) -> Option<i64> {
    let mut times: Vec<i64> = series.iter().flat_map(|s| s.iter().map(|p| p.0)).collect();
    times.sort_unstable();
    times.dedup();
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len().saturating_sub(1) / 2).copied()
}

/// Splits a series where buckets are missing, so the line does not pretend to know the values
/// across a hole (no runs, or the scheduler was down).
fn runs(points: &[(i64, f64)], spacing: Option<i64>) -> Vec<&[(i64, f64)]> {
    let Some(spacing) = spacing else {
        return points.chunks(1).collect();
    };
    let limit = 1.5 * spacing as f64;
    points
        .chunk_by(|a, b| ((b.0 - a.0) as f64) <= limit)
        .collect()
}

struct LineStyle {
    class: &'static str,
    colour: &'static str,
    width: &'static str,
    /// Dashed p95 against solid p50, so the two lines differ without colour.
    dash: Option<&'static str>,
    dot_radius: &'static str,
}

const P50_STYLE: LineStyle = LineStyle {
    class: "p50",
    colour: P50,
    width: "2.5",
    dash: None,
    dot_radius: "2.5",
};

const P95_STYLE: LineStyle = LineStyle {
    class: "p95",
    colour: P95,
    width: "1.5",
    dash: Some("5 4"),
    dot_radius: "1.5",
};

/// A series as polylines, one per unbroken run. Each point sits at the middle of its bucket
/// (start + half the spacing): the value describes the whole bucket, and this keeps the line
/// aligned with the incidents shaded at their real times. (The spacing is inferred, so if only
/// every k-th bucket has data the offset is k/2 buckets.) A run of one point is a dot, since a
/// one-point polyline draws nothing.
fn series(
    points: &[(i64, f64)],
    spacing: Option<i64>,
    frame: &Frame,
    style: &LineStyle,
) -> Vec<Element> {
    let half = spacing.map_or(0.0, |s| s as f64 / 2.0);
    runs(points, spacing)
        .into_iter()
        .map(|run| {
            let xy: Vec<(f64, f64)> = run
                .iter()
                .map(|&(t, v)| (frame.x(t as f64 + half), frame.y(v)))
                .collect();
            match xy.as_slice() {
                [(x, y)] => dot(*x, *y, style),
                _ => polyline(&xy, style),
            }
        })
        .collect()
}

fn polyline(xy: &[(f64, f64)], style: &LineStyle) -> Element {
    let points: Vec<String> = xy
        .iter()
        .map(|&(x, y)| format!("{},{}", num(x), num(y)))
        .collect();
    let line = element("polyline")
        .class(style.class)
        .attr("points", points.join(" "))
        .attr("fill", "none")
        .attr("stroke", style.colour)
        .attr("stroke-width", style.width)
        .attr("stroke-linejoin", "round");
    match style.dash {
        Some(d) => line.attr("stroke-dasharray", d),
        None => line,
    }
}

fn dot(x: f64, y: f64, style: &LineStyle) -> Element {
    element("circle")
        .class(style.class)
        .attr("cx", num(x))
        .attr("cy", num(y))
        .attr("r", style.dot_radius)
        .attr("fill", style.colour)
}

/// Incident spans, clipped to the period, full height.
fn incidents(input: &ChartInput, frame: &Frame) -> Vec<Element> {
    if !frame.has_time() {
        return Vec::new();
    }
    input
        .incidents
        .iter()
        .filter_map(|&(start, end)| {
            let start = start.timestamp_millis().max(frame.from_ms);
            let end = end.timestamp_millis().min(frame.to_ms);
            (end > start).then(|| {
                let x0 = frame.x(start as f64);
                let width = (frame.x(end as f64) - x0).max(MIN_INCIDENT_WIDTH);
                let x0 = x0.min(f64::from(WIDTH) - width);
                rect(x0, 0.0, width, f64::from(HEIGHT), INCIDENT)
            })
        })
        .collect()
}

/// The previous period's middle half, across the whole width: "normal" to compare against.
/// Translucent so incident shading shows through it.
fn band(band: Option<(f64, f64)>, frame: &Frame) -> Option<Element> {
    let (lo, hi) = band.filter(|&(lo, hi)| valid(lo) && valid(hi))?;
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let top = frame.y(hi);
    let height = (frame.y(lo) - top).max(1.0);
    Some(rect(0.0, top, f64::from(WIDTH), height, BAND).attr("fill-opacity", BAND_OPACITY))
}

fn rect(x: f64, y: f64, width: f64, height: f64, fill: &str) -> Element {
    element("rect")
        .attr("x", num(x))
        .attr("y", num(y))
        .attr("width", num(width))
        .attr("height", num(height))
        .attr("fill", fill)
}

/// A 1 px horizontal line centred on a pixel row, so it renders crisp rather than as two
/// half-tone rows.
fn hline(y: f64, colour: &str) -> Element {
    let y = num(y.floor().min(f64::from(HEIGHT) - 1.0) + 0.5);
    element("line")
        .attr("x1", 0)
        .attr("y1", &y)
        .attr("x2", WIDTH)
        .attr("y2", &y)
        .attr("stroke", colour)
        .attr("stroke-width", 1)
}

/// At most one decimal: keeps the SVG small and byte-stable.
fn num(v: f64) -> String {
    crate::format::number(v, 1)
}

#[cfg(test)]
mod tests;
