//! `/api/v1`: the journeys being scheduled, their runs, and the manual trigger.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::journey::{Journey, Schedule};
use crate::scheduler::RunNow;
use crate::store::{RunSummary, StoredRun};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/journeys", get(list))
        .route("/api/v1/journeys/{name}/runs", get(runs))
        .route("/api/v1/journeys/{name}/run", post(trigger))
        .route("/api/v1/runs/{id}", get(run))
        .with_state(state)
}

pub(super) fn schedule_text(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
        Schedule::Cron(c) => format!("cron {} ({})", c.expression, c.timezone),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary_json(s: &RunSummary) -> Value {
    json!({
        "run_id": s.run_id,
        "journey": s.journey,
        "location": s.location,
        "journey_sha256": s.journey_sha256,
        "outcome": s.outcome,
        "planned_at": s.planned_at,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "duration_ms": s.duration_ms,
        "scheduling_lag_ms": ms(s.scheduling_lag),
        "trace_id": s.trace_id,
    })
}

fn run_json(r: &StoredRun) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(&r.result).map_err(|e| ApiError::Internal(e.into()))?;
    if let Value::Object(map) = &mut v {
        map.insert("planned_at".into(), json!(r.planned_at));
        map.insert("scheduling_lag_ms".into(), json!(ms(r.scheduling_lag)));
        map.insert("journey_sha256".into(), json!(r.journey_sha256));
    }
    Ok(v)
}

/// Every scheduled journey with its last run, and the problems of the journeys directory.
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (journeys, problems): (Vec<Arc<Journey>>, Vec<String>) = {
        let catalog = state.catalog();
        (
            catalog.journeys.values().cloned().collect(),
            catalog.problems.iter().map(ToString::to_string).collect(),
        )
    };
    let mut out = Vec::with_capacity(journeys.len());
    for j in journeys {
        let last = state.store.recent_runs(&j.name, 1).await?;
        let last_run = last.first().map(|r| {
            json!({
                "run_id": r.run_id,
                "outcome": r.outcome,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "duration_ms": r.duration_ms,
            })
        });
        out.push(json!({
            "name": j.name,
            "description": j.description,
            "schedule": schedule_text(&j.schedule),
            "owner": j.owner,
            "tags": j.tags,
            "file": j.source.path.display().to_string(),
            "version": j.source.content_sha256,
            "last_run": last_run,
        }));
    }
    Ok(Json(json!({ "journeys": out, "problems": problems })))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<String>,
}

pub(super) fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "limit must be a number from 1 to {MAX_LIMIT}, not `{raw}`"
        ))),
    }
}

/// `?since=` as an RFC 3339 instant.
pub(super) fn parse_since(
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .map_err(|_| {
                ApiError::BadRequest(format!("since must be an RFC 3339 instant, not `{s}`"))
            })
    })
    .transpose()
}

/// The latest runs of a journey, newest first (`?limit=`, default 50, at most 500). Runs of
/// a journey no longer scheduled are still listed; a name never seen is 404.
async fn runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let runs = state.store.recent_runs(&name, limit).await?;
    if runs.is_empty() && !state.catalog().journeys.contains_key(&name) {
        return Err(ApiError::NotFound(format!("no journey named `{name}`")));
    }
    let runs: Vec<Value> = runs.iter().map(summary_json).collect();
    Ok(Json(json!({ "journey": name, "runs": runs })))
}

/// One stored run with its steps.
async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no run with id `{id}`"));
    let run_id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let run = state.store.run(run_id).await?.ok_or_else(not_found)?;
    Ok(Json(run_json(&run)?))
}

/// Compares in time independent of where the strings differ.
/// Compares in constant time (for equal lengths): a token is not guessed byte by byte.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A write request's bearer token: `api_token`, or one whose SHA-256 is in `api_tokens`. Hashes
/// are compared in constant time, so neither the token nor its hash leaks through timing.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    use sha2::{Digest, Sha256};
    let config = &state.config;
    if config.api_token.is_none() && config.api_tokens.is_empty() {
        return Err(ApiError::Unavailable(
            "write endpoints are disabled: no api_token or api_tokens are configured".into(),
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let given = hex::encode(Sha256::digest(given.as_bytes()));
    let plain = config
        .api_token
        .iter()
        .map(|t| ("api_token", hex::encode(Sha256::digest(t.as_bytes()))));
    let hashed = config
        .api_tokens
        .iter()
        .map(|t| (t.name.as_str(), t.sha256.to_ascii_lowercase()));
    // Every candidate is compared, matched or not.
    let matched = plain.chain(hashed).fold(None, |found, (name, hash)| {
        if same_secret(given.as_bytes(), hash.as_bytes()) {
            Some(name)
        } else {
            found
        }
    });
    match matched {
        Some(name) => {
            tracing::debug!(token = name, "API write authorized");
            Ok(())
        }
        None => Err(ApiError::Unauthorized),
    }
}

/// Runs a journey now, through the scheduler (same executor, so the run is stored like any
/// other; same rules, so it never overlaps a run of the same journey: 409 then). Answers 202
/// at once; the run appears in the journey's runs when it is over.
async fn trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    match state.scheduler.run_now(&name) {
        RunNow::Dispatched => {
            tracing::info!(journey = %name, "manual run triggered");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "status": "accepted", "journey": name })),
            ))
        }
        RunNow::AlreadyRunning => Err(ApiError::Conflict(format!(
            "a run of `{name}` is already in progress"
        ))),
        RunNow::Unknown => Err(ApiError::NotFound(format!("no journey named `{name}`"))),
        RunNow::ShuttingDown => Err(ApiError::Unavailable("shutting down".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, state};
    use super::*;
    use crate::journey::parse::{Diagnostic, ParseOptions, parse_journey};
    use crate::runner::{Outcome, RunResult, StepResult, StepStatus};
    use crate::store::RunRecord;
    use axum::body::Body;
    use axum::http::Request;

    fn journey(name: &str) -> Journey {
        let yaml = format!(
            "name: {name}\nowner: team-a\ntags: [shop]\nschedule: {{ every: 30s }}\nsteps:\n  - name: home\n    http: {{ url: \"http://127.0.0.1:1/\" }}\n"
        );
        parse_journey(
            &yaml,
            std::path::Path::new("j.yaml"),
            &ParseOptions::default(),
        )
        .unwrap()
    }

    fn record(journey: &str, minute: i64) -> RunRecord {
        let t = chrono::DateTime::from_timestamp(1_773_482_400 + minute * 60, 0).unwrap();
        let step: StepResult = serde_json::from_value(json!({
            "name": "home", "kind": "http", "status": "passed", "attempts": 1,
            "offset_ms": 0.0, "conditions": [], "timings": {}
        }))
        .unwrap();
        RunRecord {
            result: RunResult {
                run_id: uuid::Uuid::new_v4(),
                journey: journey.into(),
                location: "test".into(),
                outcome: if minute % 2 == 0 {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                },
                started_at: t,
                finished_at: t + chrono::Duration::milliseconds(120),
                duration_ms: 120.0,
                trace_id: String::new(),
                steps: vec![StepResult {
                    status: StepStatus::Passed,
                    ..step
                }],
            },
            planned_at: t,
            scheduling_lag: Duration::from_millis(3),
            journey_sha256: "abc".into(),
        }
    }

    fn post(uri: &str, token: Option<&str>) -> Request<Body> {
        let mut b = Request::post(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn journeys_with_last_run_and_problems() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state(dir.path(), None).await;
        state.set_journeys([journey("shop")]);
        {
            let mut c = state.catalog.write().unwrap();
            c.problems.push(Diagnostic {
                file: "journeys/bad.yaml".into(),
                line: 4,
                col: 41,
                message: "unknown key `metod`".into(),
            });
        }
        state.store.record_run(&record("shop", 1)).await.unwrap();
        let last = record("shop", 2);
        state.store.record_run(&last).await.unwrap();
        let app = super::super::router(state);
        let (status, body) = call(&app, get("/api/v1/journeys")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let j = &v["journeys"][0];
        assert_eq!(j["name"], "shop");
        assert_eq!(j["schedule"], "every 30s");
        assert_eq!(j["owner"], "team-a");
        assert_eq!(j["tags"], json!(["shop"]));
        assert_eq!(j["version"].as_str().unwrap().len(), 64);
        assert_eq!(j["last_run"]["run_id"], json!(last.result.run_id));
        assert_eq!(j["last_run"]["outcome"], "passed");
        assert_eq!(
            v["problems"],
            json!(["journeys/bad.yaml:4:41: unknown key `metod`"])
        );
    }

    #[tokio::test]
    async fn runs_newest_first_with_limits_and_one_run_with_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state(dir.path(), None).await;
        let records: Vec<RunRecord> = (0..5).map(|m| record("shop", m)).collect();
        state.store.record_runs(&records).await.unwrap();
        let app = super::super::router(state);

        let (status, body) = call(&app, get("/api/v1/journeys/shop/runs?limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let ids: Vec<&Value> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["run_id"])
            .collect();
        assert_eq!(
            ids,
            [
                &json!(records[4].result.run_id),
                &json!(records[3].result.run_id)
            ]
        );
        assert_eq!(v["runs"][0]["scheduling_lag_ms"], 3.0);

        let (_, body) = call(&app, get("/api/v1/journeys/shop/runs")).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["runs"].as_array().unwrap().len(), 5);

        for bad in ["0", "501", "x"] {
            let (status, body) = call(
                &app,
                get(&format!("/api/v1/journeys/shop/runs?limit={bad}")),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body.contains("\"error\""), "{body}");
        }
        let (status, body) = call(&app, get("/api/v1/journeys/nope/runs")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        let id = records[2].result.run_id;
        let (status, body) = call(&app, get(&format!("/api/v1/runs/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["run_id"], json!(id));
        assert_eq!(v["steps"][0]["name"], "home");
        assert_eq!(v["journey_sha256"], "abc");

        let unknown = uuid::Uuid::new_v4();
        let (status, body) = call(&app, get(&format!("/api/v1/runs/{unknown}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("\"error\""), "{body}");
        assert_eq!(
            call(&app, get("/api/v1/runs/not-a-uuid")).await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn trigger_needs_the_token() {
        const TOKEN: &str = "0123456789abcdef-token";
        let dir = tempfile::tempdir().unwrap();
        let (state, recorder) = state(dir.path(), Some(TOKEN)).await;
        state.set_journeys([journey("shop")]);
        let scheduler = state.scheduler.clone();
        let app = super::super::router(state);

        let uri = "/api/v1/journeys/shop/run";
        assert_eq!(
            call(&app, post(uri, None)).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, post(uri, Some("0123456789abcdef-wrong")))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, post("/api/v1/journeys/nope/run", Some(TOKEN)))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = call(&app, post(uri, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        for _ in 0..100 {
            if !recorder.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        scheduler.shutdown().await;
        assert_eq!(*recorder.0.lock().unwrap(), ["shop"]);
        let (status, body) = call(&app, post(uri, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

        let (state, _) = super::super::test_support::state(dir.path(), None).await;
        let app = super::super::router(state);
        let (status, body) = call(&app, post(uri, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    #[tokio::test]
    async fn hashed_api_tokens_authorize_writes() {
        use sha2::{Digest, Sha256};
        const CI: &str = "ci-token-that-is-long-enough";
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = super::super::test_support::state_with(dir.path(), |c| {
            c.api_tokens = vec![crate::config::ApiToken {
                name: "ci".into(),
                sha256: hex::encode(Sha256::digest(CI.as_bytes())).to_uppercase(),
            }];
        })
        .await;
        state.set_journeys([journey("shop")]);
        let app = super::super::router(state);
        let post_nope = |token| post("/api/v1/journeys/nope/run", Some(token));
        // Past authorization, the unknown journey answers 404; before it, 401.
        assert_eq!(call(&app, post_nope(CI)).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            call(&app, post_nope("ci-token-that-is-long-enougH"))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let hash = hex::encode(Sha256::digest(CI.as_bytes()));
        assert_eq!(
            call(&app, post_nope(&hash)).await.0,
            StatusCode::UNAUTHORIZED,
            "the hash is not the token"
        );
    }
}
