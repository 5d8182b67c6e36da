//! `GET /api/v1/anomalies`: anomaly episodes, newest first, with their series, peak and the
//! baseline at the time (`?journey=`, `?open=true`, `?since=` RFC 3339, `?limit=`).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::journeys::parse_limit;
use super::{ApiError, AppState};
use crate::store::{EpisodeFilter, StoredEpisode};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/anomalies", get(list))
        .with_state(state)
}

#[derive(Deserialize)]
struct AnomaliesQuery {
    journey: Option<String>,
    open: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<AnomaliesQuery>,
) -> Result<Json<Value>, ApiError> {
    let open_only = match q.open.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "open must be true or false, not `{other}`"
            )));
        }
    };
    let since = q
        .since
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    ApiError::BadRequest(format!("since must be an RFC 3339 instant, not `{s}`"))
                })
        })
        .transpose()?;
    let filter = EpisodeFilter {
        journey: q.journey,
        open_only,
        since,
        limit: parse_limit(q.limit.as_deref())?,
    };
    let episodes = state.store.episodes(&filter).await?;
    let out: Vec<Value> = episodes.iter().map(episode_json).collect();
    Ok(Json(json!({ "anomalies": out })))
}

fn episode_json(e: &StoredEpisode) -> Value {
    let unit = match e.detector {
        crate::baseline::DetectorKind::Latency => "ms",
        crate::baseline::DetectorKind::FailureRate => "ratio",
    };
    json!({
        "id": e.id,
        "journey": e.series.journey,
        "step": e.series.step,
        "location": e.series.location,
        "detector": e.detector,
        "sensitivity": e.sensitivity,
        "start": e.start,
        "detected": e.detected,
        "end": e.end,
        "open": e.end.is_none(),
        "peak": { "score": e.peak_score, "value": e.peak_value, "unit": unit },
        "baseline": { "value": e.baseline, "unit": unit },
        "anomalous_runs": e.anomalous_runs,
    })
}
