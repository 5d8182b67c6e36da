//! Recurring patterns of a latency series: how far each hour of the day (and of the week)
//! typically sits from the series' level, learnt from hourly medians.
//!
//! A slot's offset is the median of its last three observed deviations, so one incident hour
//! does not teach the baseline that this hour is slow; an hour-of-week slot is used only once
//! it has seen three periods, an hour-of-day slot after two. Hour-of-day slots are kept apart for weekdays and weekends (UTC), so a
//! Monday is not judged by a Sunday; hour-of-week slots take over after three weeks.
//! Offsets are interpolated between the centres of adjacent hours, a daily curve being smooth
//! rather than a step at every full hour, but never below the hour's own offset: where traffic
//! steps up at a full hour (12:00), interpolation would expect the first minutes to be faster
//! than the hour really is. Expecting too little raises false alarms; too much only costs a
//! little sensitivity near an edge.

use crate::journey::Seasonality;

const PERIODS: usize = 3;
/// Hour-of-day slots answer after two days (the mean of both) so that a daily pattern is
/// known from the third day on; the median of three takes over on the next day.
const DAILY_PERIODS: usize = 2;
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    recent: [f32; PERIODS],
    len: u8,
    next: u8,
}

impl Slot {
    fn push(&mut self, deviation: f32) {
        self.recent[self.next as usize] = deviation;
        self.next = (self.next + 1) % PERIODS as u8;
        self.len = (self.len + 1).min(PERIODS as u8);
    }

    /// The median of the recorded deviations, once `periods` have been recorded.
    fn offset(&self, periods: usize) -> Option<f64> {
        let len = self.len as usize;
        if len < periods {
            return None;
        }
        let mut v = self.recent;
        v[..len].sort_by(f32::total_cmp);
        Some(if len % 2 == 1 {
            f64::from(v[len / 2])
        } else {
            f64::from(v[len / 2 - 1] + v[len / 2]) / 2.0
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Seasonal {
    /// 48 slots (hour of day on weekdays, then on weekends), empty when seasonality is off.
    daily: Vec<Slot>,
    /// 168 slots (hour of week, Monday 00:00 UTC first), empty unless weekly.
    weekly: Vec<Slot>,
}

/// Hours since the epoch of an instant (ms), flooring towards the past.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS)
}

impl Seasonal {
    pub fn new(mode: Seasonality) -> Seasonal {
        let slots = |n: usize| vec![Slot::default(); n];
        match mode {
            Seasonality::Off => Seasonal::default(),
            Seasonality::Daily => Seasonal {
                daily: slots(48),
                weekly: Vec::new(),
            },
            Seasonality::Weekly => Seasonal {
                daily: slots(48),
                weekly: slots(168),
            },
        }
    }

    /// Slot indexes of an epoch hour: hour of day (+24 on Saturdays and Sundays), hour of
    /// week from Monday 00:00 (1970-01-01 was a Thursday).
    fn slots(hour: i64) -> (usize, usize) {
        let week = (hour + 3 * 24).rem_euclid(168) as usize;
        let weekend = if week >= 5 * 24 { 24 } else { 0 };
        (hour.rem_euclid(24) as usize + weekend, week)
    }

    /// The learnt offset of one epoch hour: from its hour-of-week slot once three weeks are
    /// known, else from its hour-of-day slot, else (a first weekend) from the same hour of the
    /// other kind of day.
    fn hour_offset(&self, hour: i64) -> Option<f64> {
        let (day, week) = Seasonal::slots(hour);
        let daily = |slot: usize| self.daily.get(slot).and_then(|s| s.offset(DAILY_PERIODS));
        self.weekly
            .get(week)
            .and_then(|s| s.offset(PERIODS))
            .or_else(|| daily(day))
            .or_else(|| daily((day + 24) % 48))
    }

    /// The learnt log-offset at `at_ms` (0 when nothing is known yet).
    pub fn offset(&self, at_ms: i64) -> f64 {
        let hour = hour_of(at_ms);
        let Some(here) = self.hour_offset(hour) else {
            return 0.0;
        };
        // Position relative to this hour's centre, in hours (−0.5 .. 0.5).
        let from_centre = (at_ms - hour * HOUR_MS) as f64 / HOUR_MS as f64 - 0.5;
        let neighbour = if from_centre < 0.0 {
            hour - 1
        } else {
            hour + 1
        };
        match self.hour_offset(neighbour) {
            Some(there) => (here + (there - here) * from_centre.abs()).max(here),
            None => here,
        }
    }

    /// Records that the epoch hour `hour` sat `deviation` (log) from the level.
    pub fn learn(&mut self, hour: i64, deviation: f64) {
        let (day, week) = Seasonal::slots(hour);
        if let Some(slot) = self.daily.get_mut(day) {
            slot.push(deviation as f32);
        }
        if let Some(slot) = self.weekly.get_mut(week) {
            slot.push(deviation as f32);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.daily.capacity() + self.weekly.capacity()) * std::mem::size_of::<Slot>()
    }

    pub fn is_enabled(&self) -> bool {
        !self.daily.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_needs_three_periods_and_ignores_one_outlier() {
        let mut s = Seasonal::new(Seasonality::Daily);
        // Epoch day 4 is a Monday: days 0..4 below are weekdays.
        let nine_am = |day: i64| (day + 4) * 24 + 9;
        s.learn(nine_am(0), 0.3);
        let nine_thirty = |day: i64| nine_am(day) * HOUR_MS + HOUR_MS / 2;
        assert_eq!(s.offset(nine_thirty(1)), 0.0, "one day is not a pattern");
        s.learn(nine_am(1), 0.2);
        assert!(
            (s.offset(nine_thirty(2)) - 0.25).abs() < 1e-6,
            "two days: their mean"
        );
        s.learn(nine_am(2), 2.0); // an incident at 09:00 on day 2: the median ignores it
        let centre = nine_thirty(3);
        assert!((s.offset(centre) - 0.3).abs() < 1e-6);
        // Half way to 10:00, whose offset is not known yet: no interpolation.
        assert!((s.offset(centre + HOUR_MS / 2 - 1) - 0.3).abs() < 1e-6);
        for day in 0..3 {
            s.learn(nine_am(day) + 1, 0.1);
        }
        // 09:50 lies between 09:30 (0.3) and 10:30 (0.1): interpolation would say 0.233, but
        // the hour's own 0.3 is the floor.
        let ten_to_ten = centre + HOUR_MS / 3;
        assert!(
            (s.offset(ten_to_ten) - 0.3).abs() < 1e-6,
            "{}",
            s.offset(ten_to_ten)
        );
        // 10:10 lies between 09:30 (0.3) and 10:30 (0.1): one third of the way up to 0.3.
        let ten_past_ten = centre + HOUR_MS * 2 / 3;
        let want = 0.1 + (0.3 - 0.1) / 3.0;
        assert!(
            (s.offset(ten_past_ten) - want).abs() < 1e-3,
            "{}",
            s.offset(ten_past_ten)
        );
        assert_eq!(s.offset(14 * HOUR_MS), 0.0, "other hours unaffected");
    }

    #[test]
    fn weekly_slots_take_over_from_daily_ones_once_known() {
        let mut s = Seasonal::new(Seasonality::Weekly);
        // 2026-01-05 (a Monday) 00:00 UTC is epoch hour 490,896.
        let monday = 1_767_571_200_000 / HOUR_MS;
        assert_eq!(Seasonal::slots(monday), (0, 0));
        assert_eq!(
            Seasonal::slots(monday + 5 * 24 + 1),
            (25, 121),
            "Saturday 01:00"
        );
        // Mondays are slow at noon, other days are not.
        let centre = HOUR_MS / 2;
        let noon = |week: i64, day: i64| monday + week * 168 + day * 24 + 12;
        for week in 0..3 {
            for day in 0..7 {
                s.learn(noon(week, day), if day == 0 { 0.4 } else { 0.0 });
            }
            let next_monday = noon(week + 1, 0) * HOUR_MS + centre;
            let want = if week == 2 { 0.4 } else { 0.0 };
            // Until the third week, the weekday profile (Wednesday to Friday) answers.
            assert!((s.offset(next_monday) - want).abs() < 1e-6, "week {week}");
        }
        assert_eq!(s.offset(noon(3, 1) * HOUR_MS + centre), 0.0, "Tuesday");
        assert!(Seasonal::new(Seasonality::Off).offset(noon(3, 0) * HOUR_MS) == 0.0);
    }
}
