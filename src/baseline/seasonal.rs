//! Recurring patterns of a latency series: how far each hour of the day (and of the week)
//! typically sits from the series' level, learnt from hourly medians.
//!
//! A slot's offset is the median of its last three observed deviations, so one incident hour
//! does not teach the baseline that this hour is slow; a slot is used only once it has seen
//! three periods (three days, or three weeks for hour-of-week).

use crate::journey::Seasonality;

const PERIODS: usize = 3;
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

    fn offset(&self) -> Option<f64> {
        if (self.len as usize) < PERIODS {
            return None;
        }
        let mut v = self.recent;
        v.sort_by(f32::total_cmp);
        Some(f64::from(v[PERIODS / 2]))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Seasonal {
    /// 24 slots (hour of day), empty when seasonality is off.
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
                daily: slots(24),
                weekly: Vec::new(),
            },
            Seasonality::Weekly => Seasonal {
                daily: slots(24),
                weekly: slots(168),
            },
        }
    }

    /// Slot indexes of an epoch hour: hour of day, hour of week (1970-01-01 was a Thursday).
    fn slots(hour: i64) -> (usize, usize) {
        let day = hour.rem_euclid(24) as usize;
        let week = (hour + 3 * 24).rem_euclid(168) as usize;
        (day, week)
    }

    /// The learnt log-offset for the hour containing `at_ms` (0 when nothing is known yet).
    pub fn offset(&self, at_ms: i64) -> f64 {
        let (day, week) = Seasonal::slots(hour_of(at_ms));
        self.weekly
            .get(week)
            .and_then(Slot::offset)
            .or_else(|| self.daily.get(day).and_then(Slot::offset))
            .unwrap_or(0.0)
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
        let nine_am = |day: i64| day * 24 + 9;
        s.learn(nine_am(0), 0.3);
        s.learn(nine_am(1), 0.3);
        assert_eq!(
            s.offset(nine_am(1) * HOUR_MS + 5),
            0.0,
            "two days are not a pattern"
        );
        s.learn(nine_am(2), 2.0); // an incident at 09:00 on day 2
        assert!((s.offset(nine_am(3) * HOUR_MS) - 0.3).abs() < 1e-6);
        assert_eq!(s.offset(10 * HOUR_MS), 0.0, "other hours unaffected");
    }

    #[test]
    fn weekly_slots_take_over_from_daily_ones_once_known() {
        let mut s = Seasonal::new(Seasonality::Weekly);
        // 2026-01-05 (a Monday) 00:00 UTC is epoch hour 490,896.
        let monday = 1_767_571_200_000 / HOUR_MS;
        assert_eq!(Seasonal::slots(monday), (0, 0));
        for week in 0..3 {
            for day in 0..7 {
                let dev = if day < 5 { 0.4 } else { 0.0 };
                s.learn(monday + week * 168 + day * 24 + 12, dev);
            }
        }
        let saturday_noon = (monday + 3 * 168 + 5 * 24 + 12) * HOUR_MS;
        let monday_noon = (monday + 3 * 168 + 12) * HOUR_MS;
        assert_eq!(s.offset(saturday_noon), 0.0);
        assert!((s.offset(monday_noon) - 0.4).abs() < 1e-6);
        assert!(Seasonal::new(Seasonality::Off).offset(monday_noon) == 0.0);
    }
}
