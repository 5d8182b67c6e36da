//! Schedules: `every:` intervals and crontab expressions, validated at load.
//!
//! Users write standard crontab (5 fields, day-of-week 0–7 with 0 and 7 = Sunday), optionally
//! with a leading seconds field. The `cron` crate wants seconds first and numbers Sunday as 1,
//! so expressions are normalised here once; nothing else in Waymark sees the crate's dialect.

use std::str::FromStr;

use super::model::CronSchedule;

/// Why a cron expression or its timezone is not accepted; the messages quote what the user
/// wrote, never the `cron` crate's normalised form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron expression `{expression}` has {fields} fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)"
    )]
    FieldCount { expression: String, fields: usize },
    #[error(
        "invalid cron expression `{expression}`: step `/{step}` of the {field} field must be between 1 and {max}"
    )]
    Step {
        expression: String,
        step: String,
        field: &'static str,
        max: u32,
    },
    #[error(
        "invalid cron expression `{expression}`: {field} `{number}` is out of range (valid: {min}-{max})"
    )]
    OutOfRange {
        expression: String,
        field: &'static str,
        number: String,
        min: u32,
        max: u32,
    },
    /// The `cron` crate's explanation.
    #[error("invalid cron expression `{expression}`: {reason}")]
    Rejected { expression: String, reason: String },
    #[error("invalid day of week `{0}` (expected 0-7 or SUN-SAT)")]
    DayOfWeek(String),
    #[error("invalid day-of-week range `{0}`")]
    DayOfWeekRange(String),
    #[error("invalid step `{0}` in day of week")]
    DayOfWeekStep(String),
    #[error("unknown timezone `{0}` (expected an IANA name such as `Europe/Paris`)")]
    UnknownTimezone(String),
}

impl CronError {
    /// Whether the timezone, rather than the expression, is at fault.
    pub fn is_timezone(&self) -> bool {
        matches!(self, CronError::UnknownTimezone(_))
    }
}

/// Parses a user's cron expression and timezone into a [`CronSchedule`].
pub fn parse_cron(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, CronError> {
    let normalised = normalise(expression)?;
    let schedule = cron::Schedule::from_str(&normalised).map_err(|e| {
        // The crate's message quotes its own normalised form; keep only the explanation.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        CronError::Rejected {
            expression: expression.to_string(),
            reason,
        }
    })?;
    let timezone = match timezone {
        None => chrono_tz::UTC,
        Some(tz) => tz
            .parse::<chrono_tz::Tz>()
            .map_err(|_| CronError::UnknownTimezone(tz.to_string()))?,
    };
    Ok(CronSchedule {
        expression: expression.trim().to_string(),
        schedule,
        timezone,
    })
}

/// Turns crontab syntax into the `cron` crate's: seconds first, Sunday = 1.
fn normalise(expression: &str) -> Result<String, CronError> {
    let expression = expression.trim();
    if expression.starts_with('@') {
        return Ok(expression.to_string());
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        fields => {
            return Err(CronError::FieldCount {
                expression: expression.to_string(),
                fields,
            });
        }
    };
    if fields.len() == 6 {
        check_range(expression, seconds, "second", 0, 59)?;
    }
    for (field, (what, min, max)) in rest.iter().zip(FIELD_RANGES) {
        check_range(expression, field, what, min, max)?;
    }
    let dow = day_of_week(rest[4])?;
    Ok(format!(
        "{seconds} {} {} {} {} {dow}",
        rest[0], rest[1], rest[2], rest[3]
    ))
}

/// Crontab's fields after the optional seconds: name and valid numbers (day of week is
/// checked by [`day_of_week`]).
const FIELD_RANGES: [(&str, u32, u32); 4] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
];

/// Checks every number of a field (`5`, `1-5`, `*/15`, `10-50/5`, lists of them) against the
/// field's range, so the message names the valid range (the `cron` crate says "Minutes must be
/// less than 59" about 60). Names (`JAN`) and `*`/`?` are left to the crate.
fn check_range(
    expr: &str,
    field: &str,
    what: &'static str,
    min: u32,
    max: u32,
) -> Result<(), CronError> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step
            && step
                .parse::<u32>()
                .map_or(true, |s| s == 0 || s > max.max(1))
        {
            return Err(CronError::Step {
                expression: expr.to_string(),
                step: step.to_string(),
                field: what,
                max: max.max(1),
            });
        }
        if matches!(range, "*" | "?") {
            continue;
        }
        for number in range.split('-') {
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            match number.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => {}
                _ => {
                    return Err(CronError::OutOfRange {
                        expression: expr.to_string(),
                        field: what,
                        number: number.to_string(),
                        min,
                        max,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Converts a crontab day-of-week field (0–7, Sunday = 0 or 7) to the crate's 1–7, Sunday = 1.
/// Named days pass through; numeric items are expanded to explicit lists.
fn day_of_week(field: &str) -> Result<String, CronError> {
    let mut out = Vec::new();
    for item in field.split(',') {
        if item.starts_with('*') || item.chars().any(|c| c.is_ascii_alphabetic()) {
            out.push(item.to_string());
            continue;
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let num = |s: &str| -> Result<u32, CronError> {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n <= 7)
                .ok_or_else(|| CronError::DayOfWeek(s.to_string()))
        };
        let (start, end) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None if step.is_some() => (num(range)?, 6),
            None => (num(range)?, num(range)?),
        };
        if start > end {
            return Err(CronError::DayOfWeekRange(range.to_string()));
        }
        let step = match step {
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| CronError::DayOfWeekStep(s.to_string()))?,
            None => 1,
        };
        for day in (start..=end).step_by(step) {
            out.push(((day % 7) + 1).to_string());
        }
    }
    out.dedup();
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike};

    fn next_after(expr: &str, tz: Option<&str>, from: &str) -> chrono::DateTime<chrono::Utc> {
        let s = parse_cron(expr, tz).unwrap();
        let from = chrono::DateTime::parse_from_rfc3339(from).unwrap();
        s.schedule
            .after(&from.with_timezone(&s.timezone))
            .next()
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn five_fields_get_a_zero_seconds_field() {
        assert_eq!(normalise("*/5 * * * *").unwrap(), "0 */5 * * * *");
        let t = next_after("*/5 * * * *", None, "2026-01-01T10:03:30Z");
        assert_eq!((t.minute(), t.second()), (5, 0));
    }

    #[test]
    fn six_fields_keep_seconds() {
        assert_eq!(normalise("*/10 * * * * *").unwrap(), "*/10 * * * * *");
        let t = next_after("*/10 * * * * *", None, "2026-01-01T10:03:31Z");
        assert_eq!((t.minute(), t.second()), (3, 40));
    }

    #[test]
    fn crontab_weekday_numbers_mean_what_crontab_means() {
        // 2026-01-01 is a Thursday. `1` is Monday in crontab.
        let t = next_after("0 9 * * 1", None, "2026-01-01T00:00:00Z");
        assert_eq!(t.weekday(), chrono::Weekday::Mon);
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            assert_eq!(
                next_after(sunday, None, "2026-01-01T00:00:00Z").weekday(),
                chrono::Weekday::Sun
            );
        }
        assert_eq!(normalise("0 9 * * 1-5").unwrap(), "0 0 9 * * 2,3,4,5,6");
        assert_eq!(normalise("0 9 * * 5-7").unwrap(), "0 0 9 * * 6,7,1");
        assert_eq!(normalise("0 9 * * MON-FRI").unwrap(), "0 0 9 * * MON-FRI");
    }

    #[test]
    fn timezone_is_honoured() {
        // 09:00 in Paris in January is 08:00 UTC.
        let t = next_after("0 9 * * *", Some("Europe/Paris"), "2026-01-01T00:00:00Z");
        assert_eq!(
            t,
            chrono::Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap()
        );
    }

    /// Issue #19: the crate said "Minutes must be less than 59" about `60`, and 59 is valid.
    #[test]
    fn out_of_range_fields_name_their_real_range() {
        for expr in [
            "59 23 31 12 7",
            "0 59 23 * * *",
            "*/59 * * * *",
            "0-59/5 0-23 1-31 1-12 *",
        ] {
            parse_cron(expr, None).unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
        for (expr, want) in [
            ("60 * * * *", "minute `60` is out of range (valid: 0-59)"),
            ("0 24 * * *", "hour `24` is out of range (valid: 0-23)"),
            (
                "0 0 0 * *",
                "day of month `0` is out of range (valid: 1-31)",
            ),
            ("0 0 32 * *", "day of month `32` is out of range"),
            ("0 0 * 13 *", "month `13` is out of range (valid: 1-12)"),
            ("60 0 * * * *", "second `60` is out of range (valid: 0-59)"),
            ("10-61 * * * *", "minute `61` is out of range"),
            (
                "*/0 * * * *",
                "step `/0` of the minute field must be between 1 and 59",
            ),
        ] {
            let e = parse_cron(expr, None).unwrap_err().to_string();
            assert!(e.contains(want), "{expr}: {e}");
            assert!(!e.contains("less than"), "{expr}: {e}");
        }
    }

    #[test]
    fn bad_expressions_are_rejected() {
        assert!(
            parse_cron("* * *", None)
                .unwrap_err()
                .to_string()
                .contains("3 fields")
        );
        assert!(parse_cron("61 * * * *", None).is_err());
        assert!(parse_cron("0 9 * * 8", None).is_err());
        assert!(
            parse_cron("0 9 * * *", Some("Mars/Olympus"))
                .unwrap_err()
                .to_string()
                .contains("timezone")
        );
    }
}
