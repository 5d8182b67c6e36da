//! Pure planning: when does a schedule fire next? No clock reads, no async.
//!
//! # `every: d`
//! A journey ticks at `UNIX_EPOCH + offset + k·d`. `offset` is the journey name's FNV-1a
//! 64-bit hash modulo `d` (whole milliseconds), so it is the same in every process and every
//! version, and 1,000 journeys with `every: 1m` are spread over the minute instead of all
//! firing at `:00`.
//!
//! # `cron`
//! The expression is matched against the wall-clock time of its timezone. Around DST changes:
//! - **Spring forward** (local times that do not exist, e.g. 02:30 in Europe/Paris on the last
//!   Sunday of March): those times are skipped, as the `cron` crate does. A daily `30 2 * * *`
//!   does not fire that day; an hourly `0 * * * *` fires 23 times that day.
//! - **Fall back** (local times that happen twice, e.g. 02:30 on the last Sunday of October):
//!   a time fires at its first occurrence only, unless the hour field is `*`, in which case
//!   the expression asks for every hour and the repeated hour fires again (like Vixie cron).
//!   `30 2 * * *` fires once; `0 * * * *` fires 25 times that day, `*/15 * * * *` every 15
//!   real minutes, 100 times.
//!
//! The `cron` crate's own iterator does neither: it yields both occurrences of an ambiguous
//! time (a daily 02:30 fires twice) yet, for `*/15`, skips most of the repeated hour. So it is
//! not used as is: candidates are computed as naive wall-clock times (the crate run in UTC,
//! which has no DST) and mapped to instants here.

use chrono::{DateTime, Duration as ChronoDuration, LocalResult, NaiveDateTime, TimeZone, Utc};
use cron::TimeUnitSpec;
use std::time::Duration;

use crate::journey::{CronSchedule, Schedule};

/// The first instant strictly after `after` at which `schedule` fires for the journey `name`;
/// `None` if it never fires again (a cron expression whose years are all in the past).
pub fn next_fire(schedule: &Schedule, name: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Every(period) => Some(next_interval(*period, name, after)),
        Schedule::Cron(cron) => next_cron(cron, after),
    }
}

/// FNV-1a, 64 bits: tiny, fixed forever, unlike `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Where in each period a journey with this name ticks: whole milliseconds in `[0, period)`.
pub fn interval_offset(name: &str, period: Duration) -> Duration {
    let period_ms = period.as_millis();
    if period_ms == 0 {
        return Duration::ZERO;
    }
    let ms = u128::from(fnv1a64(name.as_bytes())) % period_ms;
    Duration::from_millis(ms as u64)
}

fn next_interval(period: Duration, name: &str, after: DateTime<Utc>) -> DateTime<Utc> {
    // The parser allows 1 s to 7 days; guard anyway against a zero period.
    let period_ns = period.as_nanos().max(1) as i128;
    let offset_ns = interval_offset(name, period).as_nanos() as i128;
    let after_ns =
        i128::from(after.timestamp()) * 1_000_000_000 + i128::from(after.timestamp_subsec_nanos());
    let k = (after_ns - offset_ns).div_euclid(period_ns) + 1;
    let fire_ns = offset_ns + k * period_ns;
    let secs = fire_ns.div_euclid(1_000_000_000) as i64;
    let nanos = fire_ns.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How far the UTC offset of `tz` falls in the 3 hours after `at` (0 if it does not).
fn upcoming_fall_back<Z: TimeZone>(tz: &Z, at: DateTime<Utc>) -> ChronoDuration {
    use chrono::Offset;
    let offset = |t: DateTime<Utc>| {
        i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let now = offset(at);
    let lowest = (1..=6)
        .map(|k| offset(at + ChronoDuration::minutes(30 * k)))
        .min()
        .unwrap_or(now);
    ChronoDuration::seconds((now - lowest).max(0))
}

fn next_cron(cron: &CronSchedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = cron.timezone;
    let repeat_ambiguous = cron.schedule.hours().is_all();
    let wall_after: NaiveDateTime = after.with_timezone(&tz).naive_local();
    // Later occurrences of a repeated hour can be after `after` while their wall time is
    // before `wall_after`; look back by the size of an upcoming fall-back to see them.
    let lookback = if repeat_ambiguous {
        upcoming_fall_back(&tz, after)
    } else {
        ChronoDuration::zero()
    };
    let start = Utc.from_utc_datetime(&(wall_after - lookback));
    let mut best: Option<DateTime<Utc>> = None;
    // Wall times ascend. Mapped to their first occurrence (or their only one) they ascend in
    // real time too, so the first one after `after` ends the search; the second occurrences,
    // ascending among themselves, can only come before it.
    for wall in cron.schedule.after(&start) {
        let wall = wall.naive_utc();
        let (first, second) = match tz.from_local_datetime(&wall) {
            LocalResult::None => continue,
            LocalResult::Single(t) => (t.with_timezone(&Utc), None),
            LocalResult::Ambiguous(a, b) => (
                a.with_timezone(&Utc),
                repeat_ambiguous.then(|| b.with_timezone(&Utc)),
            ),
        };
        if let Some(s) = second.filter(|s| *s > after) {
            best = Some(best.map_or(s, |b| b.min(s)));
        }
        if first > after {
            return Some(best.map_or(first, |b| b.min(first)));
        }
    }
    best
}
