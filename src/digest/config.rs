//! The `[digest]` section of `waymark.toml`: the period, when digests go out, and to which
//! channels (named in `[alerting.channels]`, email, Slack or log). Validated at load.
//!
//! Periods are fixed, back to back, counted from `start`: `[start + k·every, start + (k+1)·every)`,
//! each boundary at `send_at` in `timezone`. A period of whole days is counted in calendar days
//! of that timezone (so a fortnight across a DST change is still 14 days at 09:00 local);
//! other periods are plain durations. Periods are whole hours: the figures come from hourly
//! rollups.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Deserialize;

use crate::channels::config::{ChannelKind, Channels};

const DAY_S: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    /// Compute (and store) a digest per owner at the end of every period.
    pub enabled: bool,
    /// The period's length: `14d` (biweekly), `7d`, `30d`…
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// The first period starts on this date (a Monday by default).
    pub start: NaiveDate,
    /// Local time of day at which periods begin and end, `HH:MM`.
    pub send_at: NaiveTime,
    /// IANA timezone of `start` and `send_at`.
    pub timezone: String,
    /// Channels every owner's digest goes to.
    pub channels: Vec<String>,
    /// Per owner (the journeys' `owner:`): where their digest goes instead of `channels`.
    pub owners: BTreeMap<String, OwnerDigest>,
}

/// A `[digest]` setting that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest.timezone: unknown timezone `{0}`")]
    Timezone(String),
    #[error("digest.every must be a whole number of hours (`14d`, `7d`, `6h`)")]
    Every,
    /// `kind` is the channel's kind when it is defined but cannot carry a digest.
    #[error("{list}: channel `{name}` {}", match kind {
        Some(kind) => format!("is {kind}; digests go to email, slack or log channels"),
        None => "is not defined in [alerting.channels]".to_string(),
    })]
    Channel {
        list: ChannelList,
        index: usize,
        name: String,
        kind: Option<&'static str>,
    },
}

/// Which list names a digest's channels: `digest.channels`, or an owner's
/// `digest.owners.<owner>.channels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelList(pub Option<String>);

impl std::fmt::Display for ChannelList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("digest.channels"),
            Some(owner) => write!(f, "digest.owners.{owner}.channels"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerDigest {
    pub channels: Vec<String>,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: true,
            every: Duration::from_secs(14 * DAY_S),
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date"),
            send_at: NaiveTime::from_hms_opt(9, 0, 0).expect("a valid time"),
            timezone: "UTC".into(),
            channels: Vec::new(),
            owners: BTreeMap::new(),
        }
    }
}

impl DigestConfig {
    /// Checks what serde cannot: the timezone, the period, and that every channel exists in
    /// `[alerting.channels]` and can carry a digest. Every problem is returned.
    pub fn validate(&self, defined: &Channels) -> Result<(), Vec<DigestError>> {
        let mut problems = Vec::new();
        if let Err(e) = self.tz() {
            problems.push(e);
        }
        if self.every.is_zero()
            || !self.every.as_secs().is_multiple_of(3600)
            || self.every.subsec_nanos() != 0
        {
            problems.push(DigestError::Every);
        }
        let lists = std::iter::once((None, &self.channels)).chain(
            self.owners
                .iter()
                .map(|(o, d)| (Some(o.as_str()), &d.channels)),
        );
        for (owner, channels) in lists {
            for (index, name) in channels.iter().enumerate() {
                if name == crate::alert::route::LOG_CHANNEL {
                    continue;
                }
                let kind = match defined.get(name).map(|c| &c.kind) {
                    Some(ChannelKind::Email(_) | ChannelKind::Slack(_) | ChannelKind::Log(_)) => {
                        continue;
                    }
                    Some(other) => Some(other.name()),
                    None => None,
                };
                problems.push(DigestError::Channel {
                    list: ChannelList(owner.map(str::to_string)),
                    index,
                    name: name.clone(),
                    kind,
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub fn tz(&self) -> Result<chrono_tz::Tz, DigestError> {
        self.timezone
            .parse()
            .map_err(|_| DigestError::Timezone(self.timezone.clone()))
    }

    /// The channels of `owner`'s digest.
    pub fn channels_of(&self, owner: &str) -> &[String] {
        self.owners
            .get(owner)
            .map_or(&self.channels, |o| &o.channels)
    }

    /// The `k`-th period boundary (`k = 0` is the start).
    fn boundary(&self, tz: chrono_tz::Tz, k: i64) -> Option<DateTime<Utc>> {
        let secs = self.every.as_secs();
        let (days, offset) = if secs.is_multiple_of(DAY_S) {
            let days = k.checked_mul(i64::try_from(secs / DAY_S).ok()?)?;
            (days, chrono::Duration::zero())
        } else {
            let step = chrono::Duration::from_std(self.every).ok()?;
            (0, step.checked_mul(i32::try_from(k).ok()?)?)
        };
        let date = self
            .start
            .checked_add_signed(chrono::Duration::days(days))?;
        let local = date.and_time(self.send_at);
        // A send time inside a DST gap moves an hour later; an ambiguous one is the first.
        let at = tz.from_local_datetime(&local).earliest().or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })?;
        at.with_timezone(&Utc).checked_add_signed(offset)
    }

    /// The index of the latest boundary at or before `now`.
    fn index_at(&self, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<i64> {
        let origin = self.boundary(tz, 0)?;
        // An estimate from the mean period length, corrected by looking around it (DST moves
        // calendar boundaries by an hour).
        let every = i64::try_from(self.every.as_secs()).ok()?.max(1);
        let mut k = (now - origin).num_seconds().div_euclid(every);
        while self.boundary(tz, k)? > now {
            k -= 1;
        }
        while self.boundary(tz, k + 1)? <= now {
            k += 1;
        }
        Some(k)
    }

    /// The latest period that has ended by `now`, `[from, to)`; none before the first ends.
    pub fn last_complete_period(
        &self,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let tz = self.tz().ok()?;
        let k = self.index_at(tz, now)?;
        if k < 1 {
            return None;
        }
        Some((self.boundary(tz, k - 1)?, self.boundary(tz, k)?))
    }

    /// When the next period ends: the next time there is something to do.
    pub fn next_boundary(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = self.tz().ok()?;
        let k = self.index_at(tz, now)?.max(0);
        self.boundary(tz, k + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn biweekly_periods_end_at_the_send_time() {
        let c = DigestConfig::default();
        // 2024-01-01 is the first boundary; 2026-11-23 (a Monday) is 1057 days = 75.5 periods
        // later, so the last boundary before 2026-11-29 is 2026-11-16 09:00.
        let (from, to) = c.last_complete_period(utc(2026, 11, 29, 12, 0)).unwrap();
        assert_eq!(
            (from, to),
            (utc(2026, 11, 2, 9, 0), utc(2026, 11, 16, 9, 0))
        );
        assert_eq!(
            c.next_boundary(utc(2026, 11, 29, 12, 0)),
            Some(utc(2026, 11, 30, 9, 0))
        );
        // Exactly at a boundary, that period has just ended.
        let (_, to) = c.last_complete_period(utc(2026, 11, 30, 9, 0)).unwrap();
        assert_eq!(to, utc(2026, 11, 30, 9, 0));
        assert_eq!(
            c.next_boundary(utc(2026, 11, 30, 9, 0)),
            Some(utc(2026, 12, 14, 9, 0))
        );
        // Before the first period ends there is none.
        assert_eq!(c.last_complete_period(utc(2024, 1, 10, 0, 0)), None);
        assert_eq!(
            c.next_boundary(utc(2023, 6, 1, 0, 0)),
            Some(utc(2024, 1, 15, 9, 0))
        );
    }

    #[test]
    fn calendar_periods_keep_local_time_across_dst() {
        let c = DigestConfig {
            start: NaiveDate::from_ymd_opt(2026, 3, 23).unwrap(),
            timezone: "Europe/Paris".into(),
            every: Duration::from_secs(7 * DAY_S),
            ..DigestConfig::default()
        };
        // Paris moves to summer time on 2026-03-29: 09:00 is 08:00 UTC before, 07:00 after.
        let (from, to) = c.last_complete_period(utc(2026, 4, 1, 0, 0)).unwrap();
        assert_eq!((from, to), (utc(2026, 3, 23, 8, 0), utc(2026, 3, 30, 7, 0)));
        assert_eq!(to - from, chrono::Duration::hours(7 * 24 - 1));
    }

    #[test]
    fn short_periods_are_plain_durations() {
        let c = DigestConfig {
            every: Duration::from_secs(5),
            start: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            send_at: NaiveTime::MIN,
            ..DigestConfig::default()
        };
        let now = utc(2026, 11, 29, 10, 0) + chrono::Duration::seconds(7);
        let (from, to) = c.last_complete_period(now).unwrap();
        assert_eq!(to, utc(2026, 11, 29, 10, 0) + chrono::Duration::seconds(5));
        assert_eq!(to - from, chrono::Duration::seconds(5));
        assert_eq!(
            c.next_boundary(now),
            Some(to + chrono::Duration::seconds(5))
        );
    }

    #[test]
    fn channels_must_exist_and_carry_a_digest() {
        let alerting: crate::config::alerting::AlertConfig = toml::from_str(
            "[channels.team-mail]\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nfrom = \"w@example.com\"\nto = [\"t@example.com\"]\n\
             [channels.pager]\ntype = \"pagerduty\"\nrouting_key = \"k\"\n",
        )
        .unwrap();
        let with = |toml: &str| {
            toml::from_str::<DigestConfig>(toml)
                .unwrap()
                .validate(&alerting.channels)
                .map_err(|problems| {
                    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    lines.join("\n")
                })
        };
        assert_eq!(with("channels = [\"team-mail\", \"log\"]"), Ok(()));
        assert!(
            with("channels = [\"pager\"]")
                .unwrap_err()
                .contains("is pagerduty")
        );
        assert!(
            with("[owners.shop]\nchannels = [\"nope\"]")
                .unwrap_err()
                .contains("digest.owners.shop.channels: channel `nope` is not defined")
        );
        assert!(
            with("timezone = \"Mars/Olympus\"")
                .unwrap_err()
                .contains("unknown timezone")
        );
        assert!(toml::from_str::<DigestConfig>("evry = \"7d\"").is_err());
        let c: DigestConfig =
            toml::from_str("channels = [\"team-mail\"]\n[owners.shop]\nchannels = []").unwrap();
        assert_eq!(c.channels_of("shop"), &[] as &[String]);
        assert_eq!(c.channels_of("other"), ["team-mail"]);
    }
}
