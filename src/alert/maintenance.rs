//! Maintenance windows: while one covers a journey, its notifications are muted (stored as
//! `muted`); runs, incidents and their timeline carry on as usual.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::journey::model::CronSchedule;
use crate::journey::schedule::{CronError, parse_cron};
use serde::Deserialize;

/// A period during which notifications are muted (runs and incidents are still recorded).
/// One-off (`start` + `end`) or recurring (`cron` + `duration`, in `timezone`). Applies to
/// the listed journeys and tags, or to everything when both are empty.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub name: String,
    #[serde(default)]
    pub journeys: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Five fields (`0 2 * * SUN`), when each occurrence starts.
    pub cron: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// IANA name; default UTC.
    pub timezone: Option<String>,
}

/// A validated [`MaintenanceWindow`].
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    journeys: Vec<String>,
    tags: Vec<String>,
    when: When,
}

#[derive(Debug, Clone)]
enum When {
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Recurring {
        cron: Box<CronSchedule>,
        duration: Duration,
    },
}

/// Why a [`MaintenanceWindow`] is not valid; the message names the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("maintenance window `{name}`: end is before start")]
    EndBeforeStart { name: String },
    #[error("maintenance window `{name}`: {source}")]
    Cron { name: String, source: CronError },
    #[error(
        "maintenance window `{name}` needs either `start` and `end`, or `cron` and a non-zero `duration`"
    )]
    Shape { name: String },
    #[error(
        "maintenance window `{name}`: `timezone` applies to `cron` only (write `start`/`end` with an offset)"
    )]
    TimezoneWithoutCron { name: String },
}

impl WindowError {
    /// The window's field at fault, when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WindowError::EndBeforeStart { .. } => Some("end"),
            WindowError::Cron { source, .. } if source.is_timezone() => Some("timezone"),
            WindowError::Cron { .. } => Some("cron"),
            WindowError::Shape { .. } => None,
            WindowError::TimezoneWithoutCron { .. } => Some("timezone"),
        }
    }
}

impl Window {
    pub fn new(w: &MaintenanceWindow) -> Result<Window, WindowError> {
        let name = || w.name.clone();
        let when = match (&w.start, &w.end, &w.cron, &w.duration) {
            (Some(start), Some(end), None, None) if start < end => When::Once {
                start: *start,
                end: *end,
            },
            (Some(_), Some(_), None, None) => {
                return Err(WindowError::EndBeforeStart { name: name() });
            }
            (None, None, Some(cron), Some(duration)) if !duration.is_zero() => When::Recurring {
                cron: Box::new(parse_cron(cron, w.timezone.as_deref()).map_err(|source| {
                    WindowError::Cron {
                        name: name(),
                        source,
                    }
                })?),
                duration: *duration,
            },
            _ => return Err(WindowError::Shape { name: name() }),
        };
        if w.timezone.is_some() && matches!(when, When::Once { .. }) {
            return Err(WindowError::TimezoneWithoutCron { name: name() });
        }
        Ok(Window {
            name: w.name.clone(),
            journeys: w.journeys.clone(),
            tags: w.tags.clone(),
            when,
        })
    }

    /// Whether it covers the journey `name` with `tags`.
    pub fn applies_to(&self, name: &str, tags: &[String]) -> bool {
        (self.journeys.is_empty() && self.tags.is_empty())
            || self.journeys.iter().any(|j| j == name)
            || tags.iter().any(|t| self.tags.contains(t))
    }

    /// The end of the occurrence covering `now`, if one does.
    pub fn active_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Once { start, end } => (*start <= now && now < *end).then_some(*end),
            When::Recurring { cron, duration } => {
                let duration = chrono::Duration::from_std(*duration).ok()?;
                // The first occurrence after `now - duration` covers `now` if it has started.
                let from = (now - duration).with_timezone(&cron.timezone);
                let start = cron.schedule.after(&from).next()?.with_timezone(&Utc);
                (start <= now).then_some(start + duration)
            }
        }
    }
}

/// The windows muting the journey `name` with `tags` at `now` (names, for the timeline).
pub fn muting<'a>(
    windows: &'a [Window],
    name: &str,
    tags: &[String],
    now: DateTime<Utc>,
) -> Vec<&'a str> {
    windows
        .iter()
        .filter(|w| w.applies_to(name, tags) && w.active_until(now).is_some())
        .map(|w| w.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(toml_text: &str) -> Result<Window, String> {
        let w: MaintenanceWindow = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Window::new(&w).map_err(|e| e.to_string())
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// At each instant, until when `w` is active (`None`: it is not).
    #[track_caller]
    fn assert_active_until(w: &Window, cases: &[(&str, Option<&str>)]) {
        for &(at, until) in cases {
            assert_eq!(w.active_until(t(at)), until.map(t), "at {at}");
        }
    }

    #[test]
    fn one_off_windows_are_half_open() {
        let w = window(
            "name = \"db\"\nstart = \"2026-11-22T02:00:00Z\"\nend = \"2026-11-22T03:00:00Z\"\n",
        )
        .unwrap();
        assert_active_until(
            &w,
            &[
                ("2026-11-22T01:59:59Z", None),
                ("2026-11-22T02:00:00Z", Some("2026-11-22T03:00:00Z")),
                ("2026-11-22T03:00:00Z", None),
            ],
        );
    }

    #[test]
    fn recurring_windows_follow_their_timezone() {
        // Sundays 02:00–04:00 in Paris: 01:00–03:00 UTC in winter.
        let w = window(
            "name = \"weekly\"\ncron = \"0 2 * * SUN\"\nduration = \"2h\"\ntimezone = \"Europe/Paris\"\n",
        )
        .unwrap();
        assert_active_until(
            &w,
            &[
                ("2026-11-22T00:59:00Z", None),
                ("2026-11-22T01:00:00Z", Some("2026-11-22T03:00:00Z")),
                ("2026-11-22T02:59:59Z", Some("2026-11-22T03:00:00Z")),
                ("2026-11-22T03:00:00Z", None),
                ("2026-11-23T01:30:00Z", None),
            ],
        );
    }

    #[test]
    fn scope_and_mistakes() {
        let w = window(
            "name = \"m\"\ntags = [\"checkout\"]\ncron = \"* * * * *\"\nduration = \"1m\"\n",
        )
        .unwrap();
        assert!(!w.applies_to("j", &[]));
        assert!(w.applies_to("j", &["checkout".to_string()]));
        let global = window("name = \"g\"\ncron = \"* * * * *\"\nduration = \"1m\"\n").unwrap();
        assert!(global.applies_to("j", &[]));
        assert!(
            window(
                "name = \"m\"\nstart = \"2026-11-22T03:00:00Z\"\nend = \"2026-11-22T02:00:00Z\"\n"
            )
            .unwrap_err()
            .contains("end is before start")
        );
        assert!(
            window("name = \"m\"\ncron = \"61 * * * *\"\nduration = \"1h\"\n")
                .unwrap_err()
                .contains("invalid cron")
        );
    }
}
