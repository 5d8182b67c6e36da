//! A journey's latency over the digest period as a small chart: SVG built here, rasterised to
//! PNG with resvg for email. It has no text at all: email clients get a PNG, and resvg is built
//! without fonts (no text feature, no system fonts), so the axis range and gridline values are
//! stated by the HTML caption around the image instead.

use chrono::{DateTime, Utc};
use resvg::tiny_skia::{Color, Pixmap, Transform};
use resvg::usvg::{Options, Tree};

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

    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\">\n{}\n</svg>\n",
        parts.join("\n")
    )
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
) -> Vec<String> {
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

fn polyline(xy: &[(f64, f64)], style: &LineStyle) -> String {
    let points: Vec<String> = xy
        .iter()
        .map(|&(x, y)| format!("{},{}", num(x), num(y)))
        .collect();
    let dash = style
        .dash
        .map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
    format!(
        "<polyline class=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" \
         stroke-linejoin=\"round\"{dash}/>",
        style.class,
        points.join(" "),
        style.colour,
        style.width
    )
}

fn dot(x: f64, y: f64, style: &LineStyle) -> String {
    format!(
        "<circle class=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>",
        style.class,
        num(x),
        num(y),
        style.dot_radius,
        style.colour
    )
}

/// Incident spans, clipped to the period, full height.
fn incidents(input: &ChartInput, frame: &Frame) -> Vec<String> {
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
fn band(band: Option<(f64, f64)>, frame: &Frame) -> Option<String> {
    let (lo, hi) = band.filter(|&(lo, hi)| valid(lo) && valid(hi))?;
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let top = frame.y(hi);
    let height = (frame.y(lo) - top).max(1.0);
    Some(format!(
        "<rect x=\"0\" y=\"{}\" width=\"{WIDTH}\" height=\"{}\" fill=\"{BAND}\" \
         fill-opacity=\"{BAND_OPACITY}\"/>",
        num(top),
        num(height)
    ))
}

fn rect(x: f64, y: f64, width: f64, height: f64, fill: &str) -> String {
    format!(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"/>",
        num(x),
        num(y),
        num(width),
        num(height)
    )
}

/// A 1 px horizontal line centred on a pixel row, so it renders crisp rather than as two
/// half-tone rows.
fn hline(y: f64, colour: &str) -> String {
    let y = y.floor().min(f64::from(HEIGHT) - 1.0) + 0.5;
    format!(
        "<line x1=\"0\" y1=\"{}\" x2=\"{WIDTH}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"1\"/>",
        num(y),
        num(y)
    )
}

/// At most one decimal, no trailing ".0" and no "-0": keeps the SVG small and byte-stable.
fn num(v: f64) -> String {
    let s = format!("{:.1}", v);
    let s = s.strip_suffix(".0").unwrap_or(&s);
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
            .single()
            .expect("valid date")
            + chrono::Duration::hours(hour)
    }

    /// A week with 6-hour buckets, like the weekly digest.
    fn week(p50: Vec<(DateTime<Utc>, f64)>, p95: Vec<(DateTime<Utc>, f64)>) -> ChartInput {
        ChartInput {
            from: t(0),
            to: t(168),
            p50,
            p95,
            band: None,
            incidents: vec![],
        }
    }

    fn constant(value: f64) -> Vec<(DateTime<Utc>, f64)> {
        (0..28).map(|i| (t(i * 6), value)).collect()
    }

    fn png_size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&png[12..16], b"IHDR", "first chunk is IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&png[16..20]), be(&png[20..24]))
    }

    fn rgb(p: &Pixmap, x: u32, y: u32) -> (u8, u8, u8) {
        let c = p.pixel(x, y).expect("pixel inside the pixmap");
        assert_eq!(c.alpha(), 255, "the background makes every pixel opaque");
        (c.red(), c.green(), c.blue())
    }

    fn hex(colour: &str) -> (u8, u8, u8) {
        let c = |i: usize| u8::from_str_radix(&colour[i..i + 2], 16).expect("hex colour");
        (c(1), c(3), c(5))
    }

    fn close(a: (u8, u8, u8), b: (u8, u8, u8)) -> bool {
        a.0.abs_diff(b.0) <= 12 && a.1.abs_diff(b.1) <= 12 && a.2.abs_diff(b.2) <= 12
    }

    fn count_in_rows(p: &Pixmap, rows: std::ops::RangeInclusive<u32>, colour: &str) -> usize {
        let want = hex(colour);
        rows.flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .filter(|&(x, y)| close(rgb(p, x, y), want))
            .count()
    }

    #[test]
    fn png_is_a_png_of_the_chart_size() {
        let mut input = week(constant(120.0), constant(300.0));
        input.band = Some((100.0, 140.0));
        input.incidents = vec![(t(30), t(40))];
        let png = png(&input);
        assert_eq!(png_size(&png), (WIDTH, HEIGHT));
        assert_eq!(
            &png[png.len() - 8..png.len() - 4],
            b"IEND",
            "ends with IEND"
        );
    }

    #[test]
    fn y_max_is_the_smallest_nice_value_at_or_above_the_data() {
        for (value, expected) in [
            (0.7, 1.0),
            (9.9, 10.0),
            (10.0, 10.0),
            (101.0, 200.0),
            (2400.0, 2500.0),
            (0.0, 1.0),
            (2.1, 2.5),
            (3000.0, 5000.0),
        ] {
            let got = y_max(&week(vec![(t(0), value / 2.0)], vec![(t(0), value)]));
            assert_eq!(got, expected, "y_max for {value}");
            assert!(got >= value);
            let decade = 10f64.powf(got.log10().floor());
            assert!(
                [1.0, 2.0, 2.5, 5.0].contains(&(got / decade)),
                "{got} is nice"
            );
        }
    }

    #[test]
    fn y_max_covers_the_band_and_ignores_junk() {
        let mut input = week(constant(100.0), constant(150.0));
        input.band = Some((420.0, 380.0));
        assert_eq!(y_max(&input), 500.0);
        input.p95.push((t(3), f64::INFINITY));
        input.p95.push((t(4), 1e300));
        input.band = Some((f64::NAN, 900.0));
        assert_eq!(y_max(&input), 200.0);
        assert_eq!(y_max(&week(vec![], vec![])), 100.0);
        assert_eq!(
            y_max(&week(vec![(t(1), f64::NAN)], vec![(t(1), -5.0)])),
            100.0
        );
    }

    #[test]
    fn nice_ceiling_is_total() {
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(f64::INFINITY), MAX_MS);
        assert_eq!(nice_ceiling(MAX_MS), MAX_MS);
        assert_eq!(nice_ceiling(-4.0), 1.0);
    }

    #[test]
    fn gridlines_are_round_and_end_at_y_max() {
        let at = |top: f64| gridlines(&week(vec![], vec![(t(0), top)]));
        assert_eq!(at(100.0), [25.0, 50.0, 75.0, 100.0]);
        assert_eq!(at(200.0), [50.0, 100.0, 150.0, 200.0]);
        assert_eq!(at(250.0), [50.0, 100.0, 150.0, 200.0, 250.0]);
        assert_eq!(at(5000.0), [1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        assert_eq!(at(1.0), [0.25, 0.5, 0.75, 1.0]);
        assert_eq!(gridlines(&week(vec![], vec![])), [25.0, 50.0, 75.0, 100.0]);
    }

    #[test]
    fn pixels_show_p50_at_its_height_and_incidents_in_their_span() {
        let mut input = week(constant(50.0), constant(75.0));
        input.band = Some((40.0, 60.0)); // keeps y_max at 100: 100 is already the nice ceiling
        // From a quarter to half of the week: x 150..300.
        input.incidents = vec![(t(42), t(84))];
        assert_eq!(y_max(&input), 100.0);
        let p = pixmap(&input).expect("renders");

        // 50 of 100 ms is half the plot's height: y 80.
        assert!(
            count_in_rows(&p, 79..=81, P50) > 400,
            "p50 line across the middle row"
        );
        assert_eq!(
            count_in_rows(&p, 0..=40, P50),
            0,
            "no p50 in the upper rows"
        );
        // p95 (75 ms, y 44) is dashed: its blue shows along the row, but not everywhere. The
        // 1.5 px stroke straddles two rows, so its pixels are blended: match the hue, not the
        // exact colour.
        let bluish = |x: u32| {
            let (r, _, b) = rgb(&p, x, 44);
            b > r.saturating_add(40)
        };
        let p95 = (0..WIDTH).filter(|&x| bluish(x)).count();
        assert!(p95 > 150 && p95 < 550, "dashed p95 row, got {p95} pixels");

        let reddish =
            |(r, g, b): (u8, u8, u8)| r > g.saturating_add(20) && r > b.saturating_add(20);
        assert!(reddish(rgb(&p, 225, 3)), "inside the incident");
        assert!(reddish(rgb(&p, 225, 156)), "full height");
        assert!(!reddish(rgb(&p, 100, 3)), "before the incident");
        assert!(!reddish(rgb(&p, 450, 3)), "after the incident");
    }

    #[test]
    fn a_hole_breaks_the_line() {
        let mut p50 = constant(100.0);
        p50.retain(|(at, _)| *at < t(60) || *at >= t(96));
        let svg = svg(&week(p50, vec![]));
        assert_eq!(svg.matches("<polyline class=\"p50\"").count(), 2, "{svg}");

        let whole = svg_polylines(&week(constant(100.0), vec![]));
        assert_eq!(whole, 1);
    }

    fn svg_polylines(input: &ChartInput) -> usize {
        svg(input).matches("<polyline class=\"p50\"").count()
    }

    #[test]
    fn a_lone_bucket_is_a_dot() {
        let mut p50 = constant(100.0);
        p50.retain(|(at, _)| *at < t(60) || *at == t(78) || *at >= t(96));
        let svg = svg(&week(p50, vec![]));
        assert_eq!(svg.matches("<polyline class=\"p50\"").count(), 2);
        assert_eq!(svg.matches("<circle class=\"p50\"").count(), 1);
    }

    #[test]
    fn svg_is_deterministic_with_short_numbers() {
        let mut input = week(
            (0..28)
                .map(|i| (t(i * 6), 100.0 + f64::from(i as u32) / 3.0))
                .collect(),
            constant(333.333),
        );
        input.incidents = vec![(t(7), t(11))];
        let a = svg(&input);
        assert_eq!(a, svg(&input));
        assert_eq!(png(&input), png(&input));
        for n in a.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            if let Some((_, decimals)) = n.split_once('.') {
                assert!(decimals.len() <= 1, "{n} in {a}");
            }
        }
        assert!(a.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\""));
        assert!(!a.contains("<text"));
    }

    #[test]
    fn hostile_input_still_gives_a_chart() {
        let cases = [
            week(vec![], vec![]),
            week(
                vec![
                    (t(0), f64::NAN),
                    (t(6), f64::INFINITY),
                    (t(12), -3.0),
                    (t(18), 80.0),
                ],
                vec![
                    (t(0), f64::NEG_INFINITY),
                    (t(6), 1e308),
                    (t(500), 90.0),
                    (t(-50), 9.0),
                ],
            ),
            ChartInput {
                from: t(10),
                to: t(10),
                p50: constant(50.0),
                p95: constant(f64::NAN),
                band: Some((f64::NAN, f64::INFINITY)),
                incidents: vec![(t(0), t(20))],
            },
            ChartInput {
                from: DateTime::<Utc>::MAX_UTC,
                to: DateTime::<Utc>::MIN_UTC,
                p50: vec![
                    (DateTime::<Utc>::MIN_UTC, 1.0),
                    (DateTime::<Utc>::MAX_UTC, 2.0),
                ],
                p95: vec![],
                band: Some((-1.0, 5.0)),
                incidents: vec![(DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC)],
            },
            ChartInput {
                from: DateTime::<Utc>::MIN_UTC,
                to: DateTime::<Utc>::MAX_UTC,
                p50: vec![(DateTime::<Utc>::MIN_UTC, 1.0), (t(0), 2.0), (t(0), 3.0)],
                p95: vec![(t(0), 0.0)],
                band: Some((5.0, 5.0)),
                incidents: vec![
                    (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
                    (t(5), t(1)),
                ],
            },
            ChartInput {
                incidents: vec![
                    (t(-100), t(-50)),
                    (t(200), t(300)),
                    (t(-10), t(500)),
                    (t(167), t(900)),
                ],
                ..week(constant(0.0), constant(0.0))
            },
        ];
        for input in &cases {
            assert!(pixmap(input).is_some(), "renders: {input:?}");
            assert_eq!(png_size(&png(input)), (WIDTH, HEIGHT), "{input:?}");
            let svg = svg(input);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn the_blank_fallback_is_a_png_too() {
        assert_eq!(png_size(&blank_png()), (WIDTH, HEIGHT));
    }
}
