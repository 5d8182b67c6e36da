//! The HTTP API (axum): one `router(state)` per area, merged by [`router`]. Only this module
//! knows the JSON wire format; handlers read the [`AppState`] and the store, never SQL.
//!
//! - `health`: `/healthz`, `/readyz`;
//! - `journeys`: `/api/v1/journeys`, runs of a journey, one run, the manual trigger;
//! - `anomalies`: `/api/v1/anomalies` (anomaly episodes);
//! - `incidents`: `/api/v1/incidents`, one incident with its timeline and notifications,
//!   acknowledge and resolve;
//! - `metrics`: `/metrics` (Prometheus text format) and the [`Metrics`] the service records;
//! - `errors`: the one shape of every error answer (JSON under `/api`, a page elsewhere).

pub mod anomalies;
pub mod auth;
pub mod dashboard;
mod depmap;
pub mod digests;
mod errors;
mod extract;
pub mod health;
mod histogram;
pub mod incidents;
pub mod journeys;
pub mod login_guard;
pub mod metrics;
pub(crate) mod nodes;
mod openapi;
pub mod status;
pub mod ui;
mod views;
mod waterfall;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::journey::Journey;
use crate::scheduler::Scheduler;
pub use crate::service::metrics::Metrics;
use crate::store::{Store, StoreWriter};
use crate::telemetry::Telemetry;

pub use crate::service::catalog::Catalog;

/// Everything a handler may use; one per process (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub catalog: Arc<RwLock<Catalog>>,
    /// Manual runs go through it like scheduled ones (same executor, no overlap).
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    /// For `/metrics`: the writer's queue depth.
    pub writer: StoreWriter,
    /// For `/metrics`: spans lost.
    pub telemetry: Telemetry,
    /// Acknowledge and resolve commands to the incident engine.
    pub alerts: crate::service::commands::AlertHandle,
    /// The public status page's last snapshot.
    pub status: Arc<status::StatusCache>,
    /// This node among the others sharing the database.
    pub cluster: Arc<crate::service::cluster::Cluster>,
    /// Login throttling and the bound on password verifications.
    pub login: Arc<login_guard::LoginGuard>,
}

impl AppState {
    /// Makes `journeys` the catalog and the scheduled set (handler tests; the service's
    /// reloader does the same with the problems of the directory).
    pub fn set_journeys(&self, journeys: impl IntoIterator<Item = Journey>) {
        let journeys: BTreeMap<String, Arc<Journey>> = journeys
            .into_iter()
            .map(|j| (j.name.clone(), Arc::new(j)))
            .collect();
        self.scheduler.replace_journeys(journeys.values().cloned());
        self.catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .journeys = journeys;
    }

    pub fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router(state.clone()))
        .merge(openapi::router(state.clone()))
        .merge(digests::router(state.clone()))
        .merge(status::router(state.clone()))
        .merge(dashboard::router(state.clone()))
        .merge(metrics::router(state.clone()))
        // Unmatched routes answer 404 through `errors::shape`, like every other error.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(state, errors::shape))
        .layer(axum::middleware::from_fn(deadline))
        .layer(tower_http::compression::CompressionLayer::new())
}

/// No request outlives this: a database that stops answering (a network partition drops
/// packets, so nothing errors) must not leave clients hanging. Longer than any handler waits
/// on purpose (a relayed command waits 10 s for the leader).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

async fn deadline(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(deadline = ?REQUEST_DEADLINE, "request abandoned: no answer in time");
            ApiError::Unavailable(format!(
                "no answer within {} s: the database may be unreachable",
                REQUEST_DEADLINE.as_secs()
            ))
            .into_response()
        }
    }
}

/// What every error answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

/// What a JSON endpoint answers: the value, or an [`ApiError`].
pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// The answer to a query parameter that does not parse, as endpoints document it.
#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "a bad parameter")]
#[allow(dead_code)]
struct BadParameter(ErrorBody);

/// An error as the API answers it: `{"error": "..."}` with a status. Internal errors are
/// logged with their context and answered with an opaque 500.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Internal),
}

/// What went wrong inside: logged with its context, never shown (the answer says only
/// "internal error").
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("template {template}: {source:#}")]
    Template {
        template: String,
        source: minijinja::Error,
    },
    #[error("stored digest {id}: {source}")]
    Digest { id: i64, source: serde_json::Error },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("header value: {0}")]
    Header(#[from] axum::http::header::InvalidHeaderValue),
    #[error("metrics encoding: {0}")]
    Metrics(#[from] std::fmt::Error),
    /// A state the code rules out, met anyway.
    #[error("{0}")]
    Bug(&'static str),
}

/// A database error: transient ones (a dropped connection, a timeout) answer 503.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "the database is unavailable");
            return ApiError::Unavailable("the database is unavailable: try again".into());
        }
        ApiError::Internal(Internal::Store(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::scheduler::{BoxFuture, PlannedRun, RunExecutor, SchedulerConfig, SystemClock};
    use std::sync::Mutex;

    /// Records what it was asked to run.
    #[derive(Default)]
    pub struct Recorder(pub Mutex<Vec<String>>);

    impl RunExecutor for Recorder {
        fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()> {
            self.0.lock().unwrap().push(run.journey.name.clone());
            Box::pin(async {})
        }
    }

    /// A state over a fresh SQLite store in its own directory (removed when the returned
    /// `TempDir` is dropped), the API token `token`.
    pub async fn state(token: Option<&str>) -> (AppState, Arc<Recorder>, tempfile::TempDir) {
        state_with(|c| c.api_token = token.map(str::to_string)).await
    }

    /// [`state`], with the configuration `edit` makes.
    pub async fn state_with(
        edit: impl FnOnce(&mut Config),
    ) -> (AppState, Arc<Recorder>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::connect(&url).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let mut config = Config {
            database_url: url,
            ..Config::default()
        };
        edit(&mut config);
        let scheduler = Arc::new(Scheduler::new(
            Vec::<Arc<Journey>>::new(),
            recorder.clone(),
            Arc::new(SystemClock),
            SchedulerConfig::default(),
        ));
        let state = AppState {
            config: Arc::new(config),
            writer: StoreWriter::spawn(store.clone(), Default::default()).0,
            telemetry: Telemetry::disabled(),
            // No engine task: a command answers that alerting is unavailable.
            alerts: crate::service::commands::AlertHandle::channel().0,
            cluster: crate::service::cluster::Cluster::new(
                store.clone(),
                "test",
                "test-node".into(),
            ),
            store,
            catalog: Arc::default(),
            scheduler,
            metrics: Arc::new(Metrics::new()),
            status: Arc::default(),
            login: Arc::default(),
        };
        (state, recorder, dir)
    }

    pub async fn call(
        app: &Router,
        req: axum::http::Request<axum::body::Body>,
    ) -> (StatusCode, String) {
        use tower::ServiceExt;
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// What `GET uri` answers, which must be 200 with JSON.
    pub async fn get_json(app: &Router, uri: &str) -> serde_json::Value {
        let (status, body) = call(app, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `f` of each element of `array`, which must be a JSON array.
    #[track_caller]
    pub fn map_array<'v, T>(
        array: &'v serde_json::Value,
        f: impl FnMut(&'v serde_json::Value) -> T,
    ) -> Vec<T> {
        array
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(f)
            .collect()
    }

    /// A cookie of a fresh dashboard session (user `tester`).
    pub async fn session_cookie(state: &AppState) -> String {
        use sha2::{Digest, Sha256};
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = chrono::Utc::now();
        state
            .store
            .sessions()
            .create_session(
                &hex::encode(Sha256::digest(token.as_bytes())),
                &crate::store::sessions::Session {
                    username: "tester".into(),
                    csrf_token: "csrf".into(),
                    created_at: now,
                    expires_at: now + chrono::Duration::hours(1),
                },
            )
            .await
            .unwrap();
        format!("{}={token}", auth::COOKIE)
    }

    /// A catalog holding the journey `yaml` describes, and that journey.
    pub fn catalog_with(yaml: &str) -> (Arc<crate::journey::Journey>, super::Catalog) {
        let journey = Arc::new(crate::run::testkit::journey(yaml));
        let mut catalog = super::Catalog::default();
        catalog
            .journeys
            .insert(journey.name.clone(), journey.clone());
        (journey, catalog)
    }

    /// A stored run of `journey` from `location` that started at `at` and took `ms`.
    pub fn run_record(
        journey: &str,
        location: &str,
        at: chrono::DateTime<chrono::Utc>,
        ms: f64,
        failed: bool,
        steps: Vec<crate::run::StepResult>,
    ) -> crate::store::RunRecord {
        crate::store::RunRecord {
            result: crate::run::testkit::run(journey)
                .location(location)
                .at(at)
                .finished_at(at)
                .duration_ms(ms)
                .failed_if(failed)
                .steps(steps)
                .build(),
            planned_at: at,
            scheduling_lag: std::time::Duration::ZERO,
            journey_sha256: String::new(),
        }
    }

    pub fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }
}
