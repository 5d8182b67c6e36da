//! How Waymark writes figures for people: counts, numbers, durations, milliseconds,
//! percentages, instants and shortened labels. Every page, email, digest, chat message, SVG and
//! terminal report formats through here, so one figure reads the same wherever it is shown.
//!
//! The lowest layer: it uses no other module of the crate. Each function is named for what it
//! shows, and where two similar figures deliberately differ (a latency in a table against a tick
//! label) each has its own function saying why.

#![deny(clippy::disallowed_methods)]

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a figure without a value reads as.
pub const NONE: &str = "–";

/// `f(v)`, or [`NONE`] without a value.
pub fn optional<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| NONE.to_string(), f)
}

/// `1 run`, `2 runs`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `v` with at most `decimals` decimals, without trailing zeros or a trailing point, and never
/// `-0`: `250`, `2.5`. Keeps SVG coordinates short and byte-stable, and axis values as a reader
/// would say them.
pub fn number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// An availability (uptime, share of passing runs) with two decimals: `99.95%`.
///
/// A value below 100 never reads as `100.00%`: everything from 99.995 up to (not including)
/// 100 is written `99.99%`, since a journey that failed once in 100,000 runs was not always up.
/// Exactly 100 is `100.00%`.
pub fn percent(v: f64) -> String {
    if (99.995..100.0).contains(&v) {
        "99.99%".to_string()
    } else {
        format!("{v:.2}%")
    }
}

/// A latency in a table or a sentence: whole milliseconds from 100 ms (`250 ms`), one decimal
/// below (`42.5 ms`), so small values keep their precision and large ones no false one.
pub fn ms(v: f64) -> String {
    millis(v, 100.0)
}

/// A latency where space is short (waterfall ticks and bars): seconds with one decimal from
/// 1 s (`1.5 s`), whole milliseconds from 10 ms, one decimal below.
pub fn ms_short(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        millis(v, 10.0)
    }
}

/// A timing in the terminal report of one run: one decimal of milliseconds below 1 s, two
/// decimals of seconds above (`1.25 s`); someone comparing two runs by eye wants the digits.
pub fn ms_precise(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

/// Milliseconds, whole from `whole_from` up and with one decimal below: the two precisions
/// of [`ms`] and [`ms_short`], which differ only in where one gives way to the other.
fn millis(v: f64, whole_from: f64) -> String {
    if v >= whole_from {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A duration as people write it, its two largest units: `1h 4m`, `42s`, `2d 3h`.
pub fn duration(d: Duration) -> String {
    let mut rest = d.as_secs();
    let parts: Vec<String> = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .into_iter()
        .map(|(size, unit)| {
            let value = rest / size;
            rest %= size;
            (value, unit)
        })
        .skip_while(|(value, _)| *value == 0)
        .take(2)
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// [`duration`] of a number of seconds as stored (negative is 0, beyond `Duration` is its
/// maximum): stored figures are data, and a bad one must not panic a page.
pub fn duration_secs(secs: f64) -> String {
    let secs = if secs.is_nan() { 0.0 } else { secs.max(0.0) };
    duration(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// An instant to the second, `2026-11-29 12:00:05 UTC`: when something happened, in an
/// incident's facts, a certificate's validity, when a page's data is from.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An instant to the minute, `2026-11-29 12:00 UTC`: in lists and tables of runs, incidents
/// and digests, where seconds are noise.
pub fn timestamp_minutes(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A day, `2026-11-29`: period bounds, status page days.
pub fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// RFC 3339 to the second, `2026-11-29T12:00:05Z`: for programs that read what we write (Atom
/// feeds), not for people.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `text` if it has at most `max` characters, else its first `max - 1` and `…`: a label that
/// must fit a box or a field limit.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_availability_below_100_never_reads_100() {
        for below in [99.994, 99.995, 99.999, 99.999_999] {
            assert_eq!(percent(below), "99.99%", "{below}");
        }
        for (value, shown) in [
            (100.0, "100.00%"),
            (99.95, "99.95%"),
            (99.4, "99.40%"),
            (0.0, "0.00%"),
        ] {
            assert_eq!(percent(value), shown);
        }
        assert_eq!(optional(None, percent), "–");
        assert_eq!(optional(Some(97.0), percent), "97.00%");
    }

    #[test]
    fn milliseconds_by_purpose() {
        assert_eq!(ms(42.46), "42.5 ms");
        assert_eq!(ms(99.9), "99.9 ms");
        assert_eq!(ms(100.0), "100 ms");
        assert_eq!(ms(1234.5), "1234 ms");
        assert_eq!(ms_short(7.25), "7.2 ms");
        assert_eq!(ms_short(180.0), "180 ms");
        assert_eq!(ms_short(1500.0), "1.5 s");
        assert_eq!(ms_precise(412.34), "412.3 ms");
        assert_eq!(ms_precise(1234.5), "1.23 s");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let s = Duration::from_secs;
        assert_eq!(duration(s(0)), "0s");
        assert_eq!(duration(s(42)), "42s");
        assert_eq!(duration(s(303)), "5m 3s");
        assert_eq!(duration(s(3852)), "1h 4m");
        assert_eq!(duration(s(3605)), "1h");
        assert_eq!(duration(s(2 * 86_400 + 3 * 3600 + 59)), "2d 3h");
        assert_eq!(duration_secs(-5.0), "0s");
        assert_eq!(duration_secs(f64::NAN), "0s");
        assert_eq!(duration_secs(8100.0), "2h 15m");
        assert!(duration_secs(f64::INFINITY).ends_with('h'));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(250.0, 2), "250");
        assert_eq!(number(2.5, 2), "2.5");
        assert_eq!(number(0.25, 2), "0.25");
        assert_eq!(number(12.04, 1), "12");
        assert_eq!(number(-0.04, 1), "0");
        assert_eq!(number(120.0, 0), "120");
        assert_eq!(count(1, "run"), "1 run");
        assert_eq!(count(0, "incident"), "0 incidents");
    }

    #[test]
    fn instants_in_a_few_fixed_shapes() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 5).unwrap();
        assert_eq!(timestamp(t), "2026-11-29 12:00:05 UTC");
        assert_eq!(timestamp_minutes(t), "2026-11-29 12:00 UTC");
        assert_eq!(date(t), "2026-11-29");
        assert_eq!(rfc3339(t), "2026-11-29T12:00:05Z");
    }

    #[test]
    fn truncation_keeps_the_start() {
        assert_eq!(truncate("checkout", 30), "checkout");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 5), "ééééé");
    }
}
