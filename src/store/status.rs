//! What the status page and the dashboard's overview read beyond incidents: runs and failures
//! per journey and UTC day, summed from the hourly whole-run rollups (every location), and
//! where each journey ran from, and how it fares from each location.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store};

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
#[derive(Debug, Clone, PartialEq)]
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

impl Store {
    /// Per location `journey` ran from: its runs, failures and whole-run latency in hours
    /// starting at or after `since`, and its newest run; by location.
    pub async fn location_results(
        &self,
        journey: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<LocationResult>> {
        let since = since.timestamp();
        let (rows, latest) = match self {
            Store::Sqlite(p) => (
                super::sqlite::s::location_rollups(p, journey, since).await?,
                super::sqlite::q::latest_run_per_location(p, journey).await?,
            ),
            Store::Postgres(p) => (
                super::postgres::s::location_rollups(p, journey, since).await?,
                super::postgres::q::latest_run_per_location(p, journey).await?,
            ),
        };
        let mut by_location: std::collections::BTreeMap<String, (u64, u64, super::Sketch)> =
            Default::default();
        for (location, count, failures, sketch) in rows {
            let sketch = super::Sketch::from_json(&sketch)
                .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
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
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, f64)>> {
        let since = since.timestamp();
        let rows = match self {
            Store::Sqlite(p) => super::sqlite::s::whole_run_sketches(p, since).await?,
            Store::Postgres(p) => super::postgres::s::whole_run_sketches(p, since).await?,
        };
        let mut merged: std::collections::BTreeMap<(String, i64), super::Sketch> =
            Default::default();
        for (journey, hour, sketch) in rows {
            let sketch = super::Sketch::from_json(&sketch)
                .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
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
    pub async fn journey_locations(&self, since: DateTime<Utc>) -> Result<Vec<(String, String)>> {
        let since = since.timestamp();
        match self {
            Store::Sqlite(p) => super::sqlite::s::journey_locations(p, since).await,
            Store::Postgres(p) => super::postgres::s::journey_locations(p, since).await,
        }
    }

    /// Per journey and UTC day, from the day of `since` on; by journey, then day.
    pub async fn daily_totals(&self, since: DateTime<Utc>) -> Result<Vec<DailyTotal>> {
        let since = since.timestamp().div_euclid(86_400) * 86_400;
        match self {
            Store::Sqlite(p) => super::sqlite::s::daily_totals(p, since).await,
            Store::Postgres(p) => super::postgres::s::daily_totals(p, since).await,
        }
    }
}

macro_rules! dialect {
    ($db:ty) => {
        use sqlx::{Pool, Row};

        use crate::store::status::DailyTotal;
        use crate::store::{Result, StoreError};

        type Db = $db;

        pub(in crate::store) async fn whole_run_sketches(
            pool: &Pool<Db>,
            since_s: i64,
        ) -> Result<Vec<(String, i64, String)>> {
            let rows = sqlx::query(
                "SELECT journey, hour_s, sketch FROM rollups WHERE step = '' AND hour_s >= $1",
            )
            .bind(since_s)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("journey")?, row.try_get("hour_s")?, row.try_get("sketch")?)))
                .collect()
        }

        pub(in crate::store) async fn location_rollups(
            pool: &Pool<Db>,
            journey: &str,
            since_s: i64,
        ) -> Result<Vec<(String, i64, i64, String)>> {
            let rows = sqlx::query(
                "SELECT location, count, failures, sketch FROM rollups \
                 WHERE journey = $1 AND step = '' AND hour_s >= $2",
            )
            .bind(journey)
            .bind(since_s)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get("location")?,
                        row.try_get("count")?,
                        row.try_get("failures")?,
                        row.try_get("sketch")?,
                    ))
                })
                .collect()
        }

        pub(in crate::store) async fn journey_locations(
            pool: &Pool<Db>,
            since_s: i64,
        ) -> Result<Vec<(String, String)>> {
            let rows = sqlx::query(
                "SELECT DISTINCT journey, location FROM rollups \
                 WHERE step = '' AND hour_s >= $1 ORDER BY journey, location",
            )
            .bind(since_s)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("journey")?, row.try_get("location")?)))
                .collect()
        }

        pub(in crate::store) async fn daily_totals(
            pool: &Pool<Db>,
            since_s: i64,
        ) -> Result<Vec<DailyTotal>> {
            let rows = sqlx::query(
                "SELECT journey, (hour_s / 86400) * 86400 AS day_s, \
                 CAST(SUM(count) AS BIGINT) AS runs, CAST(SUM(failures) AS BIGINT) AS failures \
                 FROM rollups WHERE step = '' AND hour_s >= $1 \
                 GROUP BY journey, day_s ORDER BY journey, day_s",
            )
            .bind(since_s)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let day: i64 = row.try_get("day_s")?;
                    Ok(DailyTotal {
                        journey: row.try_get("journey")?,
                        day: chrono::DateTime::from_timestamp(day, 0)
                            .ok_or_else(|| StoreError::Corrupt(format!("day {day}")))?,
                        runs: row.try_get::<i64, _>("runs")?.max(0) as u64,
                        failures: row.try_get::<i64, _>("failures")?.max(0) as u64,
                    })
                })
                .collect()
        }
    };
}
pub(super) use dialect;
