//! The chart's scale, its SVG and the pixels resvg draws from it.

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

    let reddish = |(r, g, b): (u8, u8, u8)| r > g.saturating_add(20) && r > b.saturating_add(20);
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
