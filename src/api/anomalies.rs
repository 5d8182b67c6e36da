//! `GET /api/v1/anomalies`: anomaly episodes, newest first, with their series, peak and the
//! baseline at the time (`?journey=`, `?open=true`, `?since=` RFC 3339, `?limit=`).

use super::extract::Query;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::journeys::{parse_limit, parse_since};
use super::{ApiError, ApiResult, AppState, BadParameter};
use crate::baseline::DetectorKind;
use crate::baseline::StoredEpisode;
use crate::store::EpisodeFilter;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AnomaliesQuery {
    /// Only this journey's episodes.
    journey: Option<String>,
    /// `true`: only episodes still open.
    #[param(value_type = Option<bool>)]
    open: Option<String>,
    /// Only episodes open at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
    /// 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AnomalyList {
    pub anomalies: Vec<Anomaly>,
}

/// One anomaly episode of one step's series.
#[derive(Serialize, ToSchema)]
pub struct Anomaly {
    pub id: i64,
    pub journey: String,
    pub step: String,
    pub location: String,
    pub detector: DetectorKind,
    pub sensitivity: String,
    pub start: DateTime<Utc>,
    pub detected: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub open: bool,
    pub peak: Peak,
    pub baseline: Measure,
    pub anomalous_runs: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Peak {
    /// Robust deviations (latency) or −log10 p (failure rate).
    pub score: f64,
    pub value: f64,
    /// `ms` or `ratio`.
    pub unit: String,
}

#[derive(Serialize, ToSchema)]
pub struct Measure {
    pub value: f64,
    /// `ms` or `ratio`.
    pub unit: String,
}

/// Anomaly episodes, newest first.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "anomalies", params(AnomaliesQuery),
    responses(
        (status = 200, body = AnomalyList),
        BadParameter))]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<AnomaliesQuery>,
) -> ApiResult<AnomalyList> {
    let open_only = match q.open.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "open must be true or false, not `{other}`"
            )));
        }
    };
    let since = parse_since(q.since.as_deref())?;
    let filter = EpisodeFilter {
        journey: q.journey,
        open_only,
        since,
        limit: parse_limit(q.limit.as_deref())?,
    };
    let episodes = state.store.episodes().episodes(&filter).await?;
    Ok(Json(AnomalyList {
        anomalies: episodes.iter().map(Anomaly::from).collect(),
    }))
}

impl From<&StoredEpisode> for Anomaly {
    fn from(e: &StoredEpisode) -> Anomaly {
        let unit = match e.detector {
            DetectorKind::Latency | DetectorKind::LatencyDrop => "ms",
            DetectorKind::FailureRate => "ratio",
        };
        Anomaly {
            id: e.id,
            journey: e.series.journey.clone(),
            step: e.series.step.clone(),
            location: e.series.location.clone(),
            detector: e.detector,
            sensitivity: e.sensitivity.clone(),
            start: e.start,
            detected: e.detected,
            end: e.end,
            open: e.end.is_none(),
            peak: Peak {
                score: e.peak_score,
                value: e.peak_value,
                unit: unit.into(),
            },
            baseline: Measure {
                value: e.baseline,
                unit: unit.into(),
            },
            anomalous_runs: e.anomalous_runs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, get_json, state};
    use crate::baseline::SeriesKey;
    use crate::baseline::{DetectorKind, Episode};
    use axum::Router;
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    /// Epoch milliseconds `minutes` after 2026-03-14T10:00:00Z, plus `ms`.
    fn ms(minutes: i64, ms: i64) -> i64 {
        (1_773_482_400 + minutes * 60) * 1000 + ms
    }

    fn series(journey: &str, step: &str) -> SeriesKey {
        SeriesKey {
            journey: journey.into(),
            step: step.into(),
            location: "eu-west".into(),
        }
    }

    /// shop/login latency (closed, 10:00–10:20), then search/query failure rate (open, 11:00).
    async fn app_with_episodes() -> (Router, tempfile::TempDir, i64, i64) {
        let (state, _, dir) = state(None).await;
        let episodes = state.store.episodes();
        let mut latency = Episode {
            detector: DetectorKind::Latency,
            start_ms: ms(0, 123),
            detected_ms: ms(3, 456),
            end_ms: None,
            peak_score: 7.25,
            peak_value: 250.5,
            baseline: 101.125,
            anomalous_runs: 3,
        };
        let closed = episodes
            .open_episode(&series("shop", "login"), "medium", &latency)
            .await
            .unwrap();
        latency.end_ms = Some(ms(20, 789));
        latency.peak_score = 9.5;
        latency.peak_value = 312.25;
        latency.anomalous_runs = 11;
        episodes.close_episode(closed, &latency).await.unwrap();
        let failure = Episode {
            detector: DetectorKind::FailureRate,
            start_ms: ms(60, 1),
            detected_ms: ms(65, 0),
            end_ms: None,
            peak_score: 4.5,
            peak_value: 0.4,
            baseline: 0.0125,
            anomalous_runs: 4,
        };
        let open = episodes
            .open_episode(&series("search", "query"), "high", &failure)
            .await
            .unwrap();
        (super::super::router(state), dir, closed, open)
    }

    async fn list_of(app: &Router, uri: &str) -> Vec<Value> {
        get_json(app, uri).await["anomalies"]
            .as_array()
            .expect("an `anomalies` array")
            .clone()
    }

    fn ids(list: &[Value]) -> Vec<i64> {
        list.iter().map(|e| e["id"].as_i64().unwrap()).collect()
    }

    fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("an RFC 3339 string"))
            .unwrap()
            .to_utc()
    }

    fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[tokio::test]
    async fn lists_episodes_with_the_documented_fields() {
        let (app, _dir, closed, open) = app_with_episodes().await;
        let list = list_of(&app, "/api/v1/anomalies").await;
        assert_eq!(ids(&list), vec![open, closed], "newest first");

        let e = list[1].as_object().unwrap();
        let keys: std::collections::BTreeSet<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "journey",
                "step",
                "location",
                "detector",
                "sensitivity",
                "start",
                "detected",
                "end",
                "open",
                "peak",
                "baseline",
                "anomalous_runs"
            ]
            .into()
        );
        assert_eq!(e["journey"], "shop");
        assert_eq!(e["step"], "login");
        assert_eq!(e["location"], "eu-west");
        assert_eq!(e["detector"], "latency");
        assert_eq!(e["sensitivity"], "medium");
        assert_eq!(instant(&e["start"]), at(ms(0, 123)));
        assert_eq!(instant(&e["detected"]), at(ms(3, 456)));
        assert_eq!(instant(&e["end"]), at(ms(20, 789)));
        assert_eq!(e["open"], false);
        assert_eq!(
            e["peak"],
            json!({ "score": 9.5, "value": 312.25, "unit": "ms" })
        );
        assert_eq!(e["baseline"], json!({ "value": 101.125, "unit": "ms" }));
        assert_eq!(e["anomalous_runs"], 11);

        let e = &list[0];
        assert_eq!(
            (&e["journey"], &e["step"]),
            (&json!("search"), &json!("query"))
        );
        assert_eq!(e["detector"], "failure_rate");
        assert_eq!(e["sensitivity"], "high");
        assert_eq!(instant(&e["start"]), at(ms(60, 1)));
        assert_eq!(instant(&e["detected"]), at(ms(65, 0)));
        assert_eq!(e["end"], Value::Null);
        assert_eq!(e["open"], true);
        assert_eq!(
            e["peak"],
            json!({ "score": 4.5, "value": 0.4, "unit": "ratio" })
        );
        assert_eq!(e["baseline"], json!({ "value": 0.0125, "unit": "ratio" }));
        assert_eq!(e["anomalous_runs"], 4);
    }

    #[tokio::test]
    async fn filters_by_open_journey_since_and_limit() {
        let (app, _dir, closed, open) = app_with_episodes().await;
        let cases: &[(&str, &[i64])] = &[
            ("?open=true", &[open]),
            ("?open=false", &[open, closed]),
            ("?journey=shop", &[closed]),
            ("?journey=search&open=true", &[open]),
            ("?journey=shop&open=true", &[]),
            ("?journey=nobody", &[]),
            ("?limit=1", &[open]),
            ("?limit=2", &[open, closed]),
            // The closed episode ended at 10:20:00.789.
            ("?since=2026-03-14T10:20:00.789Z", &[open, closed]),
            ("?since=2026-03-14T10:20:00.790Z", &[open]),
            ("?since=2026-03-14T11:20:00%2B01:00", &[open, closed]),
            ("?since=2026-03-14T12:00:00Z", &[open]),
        ];
        for (query, want) in cases {
            let list = list_of(&app, &format!("/api/v1/anomalies{query}")).await;
            assert_eq!(ids(&list), *want, "{query}");
        }
    }

    #[tokio::test]
    async fn bad_parameters_are_400_with_a_message() {
        let (app, _dir, _, _) = app_with_episodes().await;
        for (query, mentions) in [
            ("?open=maybe", "maybe"),
            ("?open=1", "open"),
            ("?since=yesterday", "yesterday"),
            ("?since=2026-03-14", "since"),
            ("?limit=0", "limit"),
            ("?limit=-1", "limit"),
            ("?limit=many", "many"),
        ] {
            let (status, body) = call(&app, get(&format!("/api/v1/anomalies{query}"))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            let message = v["error"].as_str().expect("an `error` message");
            assert!(message.contains(mentions), "{query}: {message}");
        }
    }
}
