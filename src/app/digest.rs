//! `waymark digest`: one owner's digest, computed now from an existing database (read-only)
//! and the journeys directory, for a preview or a look before the next scheduled one.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::redacted_url;
use crate::config::Config;
use crate::digest::Digest;
use crate::journey::parse::{self, Diagnostic};
use crate::store::{Store, StoreError};

/// What `waymark digest` was asked for; a missing day defaults as the CLI documents.
#[derive(Debug, Clone)]
pub struct DigestRequest {
    pub owner: String,
    /// First day (UTC midnight); default: 14 days before `to`.
    pub from: Option<NaiveDate>,
    /// Day after the last (UTC midnight); default: today.
    pub to: Option<NaiveDate>,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("--from must be before --to")]
    EmptyPeriod,
    #[error("cannot read {dir}: {source}")]
    Journeys { dir: String, source: std::io::Error },
    #[error("no journey in {dir} has `owner: {owner}`")]
    NoJourney { dir: String, owner: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `[from, to)` of a request made at `now`.
pub fn period(
    request: &DigestRequest,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), DigestError> {
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let to = midnight(request.to.unwrap_or(now.date_naive()));
    let from = request
        .from
        .map_or(to - chrono::Duration::days(14), midnight);
    if from >= to {
        return Err(DigestError::EmptyPeriod);
    }
    Ok((from, to))
}

/// The digest, with the problems of the journey files that were skipped.
pub async fn digest_now(
    config: &Config,
    request: &DigestRequest,
    now: DateTime<Utc>,
) -> Result<(Digest, Vec<Diagnostic>), DigestError> {
    let (from, to) = period(request, now)?;
    let dir = config.journeys.display().to_string();
    let files = parse::journey_files(&config.journeys).map_err(|source| DigestError::Journeys {
        dir: dir.clone(),
        source,
    })?;
    let loaded = parse::load_paths(&files, &Default::default());
    let journeys: Vec<&crate::journey::Journey> = loaded.journeys.iter().collect();
    if !journeys
        .iter()
        .any(|j| j.owner.as_deref() == Some(request.owner.as_str()))
    {
        return Err(DigestError::NoJourney {
            dir,
            owner: request.owner.clone(),
        });
    }
    // Reading only: a wrong or missing database is an error, never a new empty one.
    let shown = redacted_url(&config.database_url);
    let store = Store::open_existing(&config.database_url, &shown).await?;
    let digest = crate::digest::compute(&store, &request.owner, &journeys, from, to, now).await;
    store.close().await;
    Ok((digest?, loaded.diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_defaults_to_the_fourteen_days_before_today() {
        let now: DateTime<Utc> = "2026-03-14T10:30:00Z".parse().unwrap();
        let request = |from: Option<&str>, to: Option<&str>| DigestRequest {
            owner: "shop".into(),
            from: from.map(|d| d.parse().unwrap()),
            to: to.map(|d| d.parse().unwrap()),
        };
        let (from, to) = period(&request(None, None), now).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-02-28T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-03-14T00:00:00+00:00");
        let (from, _) = period(&request(Some("2026-03-01"), None), now).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert!(matches!(
            period(&request(Some("2026-03-14"), Some("2026-03-14")), now),
            Err(DigestError::EmptyPeriod)
        ));
    }
}
