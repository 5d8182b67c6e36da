//! `/api/v1`: the journeys being scheduled, their runs, and the manual trigger.

use std::sync::Arc;
use std::time::Duration;

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiResult, AppState, ErrorBody};
use crate::journey::{Journey, Schedule};
use crate::run::{Outcome, RunResult};
use crate::scheduler::RunNow;
use crate::store::{RunSummary, StoredRun};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(runs))
        .routes(routes!(trigger))
        .routes(routes!(run))
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

#[derive(Serialize, ToSchema)]
pub struct JourneyList {
    pub journeys: Vec<JourneyInfo>,
    /// Problems of the last load of the journeys directory, as `file:line:col: message`.
    pub problems: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JourneyInfo {
    pub name: String,
    pub description: Option<String>,
    /// `every 30s`, or `cron <expression> (<timezone>)`.
    pub schedule: String,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub file: String,
    /// SHA-256 of the journey file's content.
    pub version: String,
    pub last_run: Option<LastRun>,
}

#[derive(Serialize, ToSchema)]
pub struct LastRun {
    pub run_id: uuid::Uuid,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub journey: String,
    pub runs: Vec<RunSummary>,
}

/// A stored run: the run as `waymark run --format json` prints it, and when it was planned.
#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub result: RunResult,
    pub planned_at: DateTime<Utc>,
    pub scheduling_lag_ms: f64,
    pub journey_sha256: String,
}

impl From<StoredRun> for RunDetail {
    fn from(r: StoredRun) -> RunDetail {
        RunDetail {
            planned_at: r.planned_at,
            scheduling_lag_ms: ms(r.scheduling_lag),
            journey_sha256: r.journey_sha256,
            result: r.result,
        }
    }
}

/// Every scheduled journey with its last run, and the problems of the journeys directory.
#[utoipa::path(get, path = "/api/v1/journeys", tag = "journeys",
    responses((status = 200, body = JourneyList)))]
async fn list(State(state): State<AppState>) -> ApiResult<JourneyList> {
    let (journeys, problems): (Vec<Arc<Journey>>, Vec<String>) = {
        let catalog = state.catalog();
        (
            catalog.journeys.values().cloned().collect(),
            catalog.problems.iter().map(ToString::to_string).collect(),
        )
    };
    let mut out = Vec::with_capacity(journeys.len());
    for j in journeys {
        let last = state.store.runs().recent_runs(&j.name, 1).await?;
        out.push(JourneyInfo {
            name: j.name.clone(),
            description: j.description.clone(),
            schedule: schedule_text(&j.schedule),
            owner: j.owner.clone(),
            tags: j.tags.clone(),
            file: j.source.path.display().to_string(),
            version: j.source.content_sha256.clone(),
            last_run: last.first().map(|r| LastRun {
                run_id: r.run_id,
                outcome: r.outcome,
                started_at: r.started_at,
                finished_at: r.finished_at,
                duration_ms: r.duration_ms,
            }),
        });
    }
    Ok(Json(JourneyList {
        journeys: out,
        problems,
    }))
}

/// `?limit=`: how many, newest first.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LimitQuery {
    /// 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
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
pub(super) fn parse_since(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    // Instants are stored as nanoseconds since 1970 (years 1677 to 2262): one outside that
    // range means "since forever" or "since never", which the clamped bound gives.
    let (min, max) = (
        DateTime::from_timestamp_nanos(i64::MIN),
        DateTime::from_timestamp_nanos(i64::MAX),
    );
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc().clamp(min, max))
            .map_err(|_| {
                ApiError::BadRequest(format!("since must be an RFC 3339 instant, not `{s}`"))
            })
    })
    .transpose()
}

/// The latest runs of a journey, newest first. Runs of a journey no longer scheduled are
/// still listed; a name never seen is 404.
#[utoipa::path(get, path = "/api/v1/journeys/{name}/runs", tag = "journeys",
    params(("name" = String, Path, description = "journey name"), LimitQuery),
    responses(
        (status = 200, body = RunList),
        (status = 400, description = "bad `limit`", body = ErrorBody),
        (status = 404, description = "no such journey", body = ErrorBody)))]
async fn runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<RunList> {
    let limit = parse_limit(q.limit.as_deref())?;
    let runs = state.store.runs().recent_runs(&name, limit).await?;
    if runs.is_empty() && !state.catalog().journeys.contains_key(&name) {
        return Err(ApiError::NotFound(format!("no journey named `{name}`")));
    }
    Ok(Json(RunList {
        journey: name,
        runs,
    }))
}

/// One stored run with its steps.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "journeys",
    params(("id" = String, Path, description = "run id (a UUID)")),
    responses(
        (status = 200, body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody)))]
async fn run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<RunDetail> {
    let not_found = || ApiError::NotFound(format!("no run with id `{id}`"));
    let run_id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let run = state
        .store
        .runs()
        .run(run_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(run.into()))
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
        return Err(ApiError::Forbidden(
            "write endpoints are disabled: no api_token or api_tokens are configured".into(),
        ));
    }
    let given = super::auth::bearer_token(headers).ok_or(ApiError::Unauthorized)?;
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

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// `accepted`.
    pub status: String,
    pub journey: String,
}

/// Runs a journey now, through the scheduler (same executor, so the run is stored like any
/// other; same rules, so it never overlaps a run of the same journey: 409 then). Answers 202
/// at once; the run appears in the journey's runs when it is over.
#[utoipa::path(post, path = "/api/v1/journeys/{name}/run", tag = "journeys",
    params(("name" = String, Path, description = "journey name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "the run started", body = Accepted),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 403, description = "no API token is configured", body = ErrorBody),
        (status = 404, description = "no such journey", body = ErrorBody),
        (status = 409, description = "a run of the journey is in progress", body = ErrorBody),
        (status = 503, description = "shutting down", body = ErrorBody)))]
async fn trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&state, &headers)?;
    match state.scheduler.run_now(&name) {
        RunNow::Dispatched => {
            tracing::info!(journey = %name, "manual run triggered");
            Ok((
                StatusCode::ACCEPTED,
                Json(Accepted {
                    status: "accepted".into(),
                    journey: name,
                }),
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
    use super::super::test_support::{call, get, get_json, map_array, state};
    use super::*;
    use crate::journey::parse::Diagnostic;
    use crate::run::testkit;
    use crate::store::RunRecord;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value, json};

    fn journey(name: &str) -> Journey {
        testkit::journey(&format!(
            "name: {name}\nowner: team-a\ntags: [shop]\nschedule: {{ every: 30s }}\nsteps:\n  - name: home\n    http: {{ url: \"http://127.0.0.1:1/\" }}\n"
        ))
    }

    fn record(journey: &str, minute: i64) -> RunRecord {
        let t = chrono::DateTime::from_timestamp(1_773_482_400 + minute * 60, 0).unwrap();
        RunRecord {
            result: testkit::run(journey)
                .at(t)
                .failed_if(minute % 2 != 0)
                .duration_ms(120.0)
                .step(testkit::step("home"))
                .build(),
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
        let (state, _, _dir) = state(None).await;
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
        state
            .store
            .runs()
            .record_run(&record("shop", 1), chrono::Utc::now())
            .await
            .unwrap();
        let last = record("shop", 2);
        state
            .store
            .runs()
            .record_run(&last, chrono::Utc::now())
            .await
            .unwrap();
        let app = super::super::router(state);
        let v = get_json(&app, "/api/v1/journeys").await;
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
        let (state, _, _dir) = state(None).await;
        let records: Vec<RunRecord> = (0..5).map(|m| record("shop", m)).collect();
        state.store.runs().record_now(&records).await;
        let app = super::super::router(state);

        let v = get_json(&app, "/api/v1/journeys/shop/runs?limit=2").await;
        let ids: Vec<&Value> = map_array(&v["runs"], |r| &r["run_id"]);
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
        let v = get_json(&app, &format!("/api/v1/runs/{id}")).await;
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
        let (state, recorder, _dir) = state(Some(TOKEN)).await;
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

        let (state, _, _other_dir) = super::super::test_support::state(None).await;
        let app = super::super::router(state);
        let (status, body) = call(&app, post(uri, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "no token configured: {body}");
    }

    #[tokio::test]
    async fn hashed_api_tokens_authorize_writes() {
        use sha2::{Digest, Sha256};
        const CI: &str = "ci-token-that-is-long-enough";
        let (state, _, _dir) = super::super::test_support::state_with(|c| {
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
        let lower = Request::post("/api/v1/journeys/nope/run")
            .header("authorization", format!("bearer {CI}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, lower).await.0, StatusCode::NOT_FOUND, "bearer");
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
