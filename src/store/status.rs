//! What the status page and the dashboard's overview read beyond incidents: runs and failures
//! per journey and UTC day, summed from the hourly whole-run rollups (every location), and
//! where each journey ran from, and how it fares from each location.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::run_rows::sketch as sketch_of;
use super::{Result, Store, StoreError};
use crate::baseline::sketch::Sketch;

/// One journey's runs on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyTotal {
    pub journey: String,
    /// 00:00 UTC of the day.
    pub day: DateTime<Utc>,
    pub runs: u64,
    pub failures: u64,
}

/// How one journey fares from one location.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LocationResult {
    pub location: String,
    /// Runs and failed runs in the period.
    pub runs: u64,
    pub failures: u64,
    /// Whole-run latency in the period (ms); None without runs.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// The newest run from there, whenever it was.
    pub last_run: Option<super::RunSummary>,
}

/// What the status page and the overview read beyond incidents.
///
/// Borrowed from the store by [`Store::status`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Status<'a>(pub(super) &'a Store);

impl Status<'_> {
    /// Per location `journey` ran from: its runs, failures and whole-run latency in hours
    /// starting at or after `since`, and its newest run; by location.
    pub async fn location_results(
        self,
        journey: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<LocationResult>> {
        let since = since.timestamp();
        let rows = dispatch!(self.0, status::location_rollups(journey, since))?;
        let latest = dispatch!(self.0, queries::latest_run_per_location(journey))?;
        let mut by_location: std::collections::BTreeMap<String, (u64, u64, Sketch)> =
            Default::default();
        for (location, count, failures, sketch) in rows {
            let sketch = sketch_of(&sketch)?;
            let entry = by_location.entry(location).or_default();
            entry.0 += count.max(0) as u64;
            entry.1 += failures.max(0) as u64;
            entry.2.merge(&sketch);
        }
        for run in &latest {
            by_location.entry(run.location.clone()).or_default();
        }
        Ok(by_location
            .into_iter()
            .map(|(location, (runs, failures, sketch))| LocationResult {
                last_run: latest.iter().find(|r| r.location == location).cloned(),
                location,
                runs,
                failures,
                p50_ms: sketch.quantile(0.5),
                p95_ms: sketch.quantile(0.95),
            })
            .collect())
    }

    /// The p95 of whole-run durations per journey and hour (every location merged), for the
    /// hours starting at or after `since`; by journey, then hour.
    pub async fn hourly_p95(
        self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, f64)>> {
        let since = since.timestamp();
        let rows = dispatch!(self.0, status::whole_run_sketches(since))?;
        let mut merged: std::collections::BTreeMap<(String, i64), Sketch> = Default::default();
        for (journey, hour, sketch) in rows {
            let sketch = sketch_of(&sketch)?;
            merged.entry((journey, hour)).or_default().merge(&sketch);
        }
        Ok(merged
            .into_iter()
            .filter_map(|((journey, hour), s)| {
                Some((
                    journey,
                    DateTime::from_timestamp(hour, 0)?,
                    s.quantile(0.95)?,
                ))
            })
            .collect())
    }

    /// The (journey, location) pairs that have runs in hours starting at or after `since`.
    pub async fn journey_locations(self, since: DateTime<Utc>) -> Result<Vec<(String, String)>> {
        let since = since.timestamp();
        dispatch!(self.0, status::journey_locations(since))
    }

    /// Per journey and UTC day, from the day of `since` on; by journey, then day.
    pub async fn daily_totals(self, since: DateTime<Utc>) -> Result<Vec<DailyTotal>> {
        let since = since.timestamp().div_euclid(86_400) * 86_400;
        dispatch!(self.0, status::daily_totals(since))
    }
}

/// A `daily_totals` row.
#[derive(sqlx::FromRow)]
pub(super) struct DailyRow {
    journey: String,
    day_s: i64,
    runs: i64,
    failures: i64,
}

impl TryFrom<DailyRow> for DailyTotal {
    type Error = StoreError;

    fn try_from(row: DailyRow) -> Result<DailyTotal> {
        Ok(DailyTotal {
            journey: row.journey,
            day: DateTime::from_timestamp(row.day_s, 0)
                .ok_or_else(|| StoreError::Corrupt(format!("day {}", row.day_s)))?,
            runs: row.runs.max(0) as u64,
            failures: row.failures.max(0) as u64,
        })
    }
}

macro_rules! dialect {
    () => {
        use crate::store::status::{DailyRow, DailyTotal};

        #[rustfmt::skip]
        queries! {
            fn whole_run_sketches(since_s: i64) -> Vec<(String, i64, String)> =
                all (String, i64, String):
                "SELECT journey, hour_s, sketch FROM rollups WHERE step = '' AND hour_s >= $1";

            fn location_rollups(
                journey: &str,
                since_s: i64,
            ) -> Vec<(String, i64, i64, String)> = all (String, i64, i64, String):
                "SELECT location, count, failures, sketch FROM rollups \
         WHERE journey = $1 AND step = '' AND hour_s >= $2";

            fn journey_locations(since_s: i64) -> Vec<(String, String)> = all (String, String):
                "SELECT DISTINCT journey, location FROM rollups \
         WHERE step = '' AND hour_s >= $1 ORDER BY journey, location";

            fn daily_totals(since_s: i64) -> Vec<DailyTotal> = all DailyRow:
                "SELECT journey, (hour_s / 86400) * 86400 AS day_s, \
         CAST(SUM(count) AS BIGINT) AS runs, CAST(SUM(failures) AS BIGINT) AS failures \
         FROM rollups WHERE step = '' AND hour_s >= $1 \
         GROUP BY journey, day_s ORDER BY journey, day_s";
        }
    };
}
pub(super) use dialect;
