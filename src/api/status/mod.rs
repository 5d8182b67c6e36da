//! The public status page, without login: `GET /` (HTML), `GET /status.json`, `GET /feed.atom`
//! (incidents) and `GET /badge/{journey}.svg` (30-day uptime), for journeys marked
//! `public: true` only.
//!
//! Every answer comes from one [`Snapshot`], rebuilt in the background at most every
//! [`REFRESH`] (readers get the previous one meanwhile): a status page is read far more often
//! than runs change it, and an outage brings many readers at once.

mod badge;
mod feed;
pub mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use minijinja::context;

use super::{ApiError, AppState, ui};
use crate::alert::maintenance::Window;
use crate::store::alerts::IncidentFilter;
pub use snapshot::{Snapshot, State as JourneyState};

/// How stale the status may be.
pub const REFRESH: Duration = Duration::from_secs(15);

/// The last snapshots (public, and every journey for the dashboard) and when they were built.
#[derive(Default)]
pub struct StatusCache {
    public: Slot,
    all: Slot,
}

#[derive(Default)]
struct Slot {
    snapshot: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
    /// A background rebuild is under way.
    refreshing: AtomicBool,
}

impl StatusCache {
    /// Forgets both snapshots: the next request rebuilds them.
    pub async fn clear(&self) {
        *self.public.snapshot.lock().await = None;
        *self.all.snapshot.lock().await = None;
    }

    fn slot(&self, scope: Scope) -> &Slot {
        match scope {
            Scope::Public => &self.public,
            Scope::All => &self.all,
        }
    }
}

/// Which journeys a snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Public,
    All,
}

/// The documented part: `/status.json`.
pub fn api() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(json))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/feed.atom", get(atom))
        .route("/badge/{file}", get(badge_svg))
        .route("/static/{file}", get(ui::static_file))
        .with_state(state)
}

/// The current snapshot. One older than [`REFRESH`] is still served while a background task
/// rebuilds it, so no reader waits for the database except the very first.
pub async fn snapshot(state: &AppState, scope: Scope) -> Result<Arc<Snapshot>, ApiError> {
    let slot = state.status.slot(scope);
    let stale = {
        let cached = slot.snapshot.lock().await;
        match cached.as_ref() {
            Some((at, s)) if at.elapsed() < REFRESH => return Ok(s.clone()),
            Some((_, s)) => Some(s.clone()),
            None => None,
        }
    };
    match stale {
        Some(s) => {
            if !slot.refreshing.swap(true, Ordering::AcqRel) {
                let state = state.clone();
                tokio::spawn(async move {
                    let slot = state.status.slot(scope);
                    if let Err(e) = rebuild(&state, scope).await {
                        tracing::warn!(error = %e, "status snapshot not refreshed");
                    }
                    slot.refreshing.store(false, Ordering::Release);
                });
            }
            Ok(s)
        }
        None => rebuild(state, scope).await,
    }
}

/// Builds a snapshot from the store and the catalog, and caches it.
async fn rebuild(state: &AppState, scope: Scope) -> Result<Arc<Snapshot>, ApiError> {
    let now = Utc::now();
    let journeys: Vec<Arc<crate::journey::Journey>> =
        state.catalog().journeys.values().cloned().collect();
    let refs: Vec<&crate::journey::Journey> = journeys.iter().map(|j| j.as_ref()).collect();
    let since = now - chrono::Duration::days(snapshot::DAYS);
    let totals = state.store.daily_totals(since).await?;
    let incidents = state
        .store
        .incidents(&IncidentFilter {
            since: Some(since),
            ..IncidentFilter::default()
        })
        .await?;
    let maintenance: Vec<Window> = state
        .config
        .alerting
        .maintenance
        .iter()
        .filter_map(|w| Window::new(w).ok())
        .collect();
    // Where journeys run from, and their recent p95, are for the dashboard only.
    let (locations, hourly_p95) = match scope {
        Scope::Public => (Vec::new(), Vec::new()),
        Scope::All => (
            state
                .store
                .journey_locations(now - chrono::Duration::days(30))
                .await?,
            state
                .store
                .hourly_p95(now - chrono::Duration::hours(snapshot::SPARK_HOURS))
                .await?,
        ),
    };
    let built = Arc::new(snapshot::build(&snapshot::Inputs {
        journeys: &refs,
        only_public: scope == Scope::Public,
        locations: &locations,
        hourly_p95: &hourly_p95,
        totals: &totals,
        incidents: &incidents,
        maintenance: &maintenance,
        now,
    }));
    *state.status.slot(scope).snapshot.lock().await = Some((Instant::now(), built.clone()));
    Ok(built)
}

fn overall_text(s: &Snapshot) -> &'static str {
    match s.state {
        JourneyState::Operational => "All systems operational",
        JourneyState::Degraded => "Some systems are degraded",
        JourneyState::Down => "Some systems are down",
        JourneyState::Maintenance => "Maintenance in progress",
        JourneyState::Unknown => "No data yet",
    }
}

/// The icon and label of each state, so the template never relies on colour alone.
pub(super) fn state_words() -> (minijinja::Value, minijinja::Value) {
    use JourneyState::*;
    let all = [Unknown, Operational, Maintenance, Degraded, Down];
    let key = |s: JourneyState| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let icon = |s: JourneyState| match s {
        Operational => "✔",
        Degraded => "▲",
        Down => "✖",
        Maintenance => "⚙",
        Unknown => "?",
    };
    (
        minijinja::Value::from_iter(all.iter().map(|s| (key(*s), icon(*s)))),
        minijinja::Value::from_iter(all.iter().map(|s| (key(*s), s.label()))),
    )
}

async fn page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let s = snapshot(&state, Scope::Public).await?;
    let (icons, labels) = state_words();
    let logo_origin = state
        .config
        .status_page
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    let page = ui::page(
        "status.html",
        context! {
            site => minijinja::Value::from_serialize(&state.config.status_page),
            snapshot => minijinja::Value::from_serialize(&*s),
            overall_text => overall_text(&s),
            generated_at => s.generated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            icons,
            labels,
        },
    )?;
    Ok(match logo_origin {
        Some(origin) => ui::with_csp(
            page,
            &ui::PAGE_CSP.replace(
                "img-src 'self' data:",
                &format!("img-src 'self' data: {origin}"),
            ),
        ),
        None => page,
    })
}

/// The public status as JSON.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PublicStatus {
    pub title: String,
    /// The worst state of any public journey.
    pub status: JourneyState,
    pub description: String,
    pub generated_at: chrono::DateTime<Utc>,
    pub groups: Vec<snapshot::Group>,
    /// Open incidents, then those resolved in the last two weeks; newest first.
    pub incidents: Vec<snapshot::PublicIncident>,
}

/// The public status page's content: groups, journeys, 90 days, incidents (at most 15 s old).
#[utoipa::path(get, path = "/status.json", tag = "status",
    responses((status = 200, body = PublicStatus)))]
async fn json(
    State(state): State<AppState>,
) -> Result<([(header::HeaderName, &'static str); 1], Json<PublicStatus>), ApiError> {
    let s = snapshot(&state, Scope::Public).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=15")],
        Json(PublicStatus {
            title: state.config.status_page.title.clone(),
            status: s.state,
            description: overall_text(&s).to_string(),
            generated_at: s.generated_at,
            groups: s.groups.clone(),
            incidents: s.incidents.clone(),
        }),
    ))
}

async fn atom(State(state): State<AppState>) -> Result<Response, ApiError> {
    let s = snapshot(&state, Scope::Public).await?;
    let base = state.config.alerting.dashboard_url.as_deref().unwrap_or("");
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed::atom(&s, &state.config.status_page.title, base),
    )
        .into_response())
}

async fn badge_svg(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound(format!("no public journey `{file}`"));
    let name = file.strip_suffix(".svg").ok_or_else(missing)?;
    let s = snapshot(&state, Scope::Public).await?;
    let journey = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .find(|j| j.name == name)
        .ok_or_else(missing)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        badge::uptime(journey.uptime_30d),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, run_record, state};
    use crate::journey::parse::{ParseOptions, parse_journey};
    use crate::store::RunRecord;
    use axum::http::StatusCode;

    fn journey(name: &str, extra: &str) -> crate::journey::Journey {
        let yaml = format!(
            "name: {name}\n{extra}steps:\n  - name: home\n    http: {{ url: \"http://10.9.8.7:1/admin?key=s3cret\" }}\n"
        );
        parse_journey(
            &yaml,
            std::path::Path::new("j.yaml"),
            &ParseOptions::default(),
        )
        .unwrap()
    }

    /// A run at 00:00 UTC today: always on the same day as "now" (a run a few minutes ago
    /// would be yesterday's just after midnight).
    fn record(journey: &str, failed: bool) -> RunRecord {
        let now = chrono::Utc::now().timestamp();
        let t = chrono::DateTime::from_timestamp(now - now.rem_euclid(86_400), 0).unwrap();
        run_record(journey, "test", t, 12.0, failed, vec![])
    }

    #[tokio::test]
    async fn the_public_page_feeds_and_badges_show_public_journeys_only() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state(dir.path(), None).await;
        state.set_journeys([
            journey("checkout", "public: true\ngroup: Shop\n"),
            journey("back-office", ""),
        ]);
        let runs: Vec<RunRecord> = (0..4)
            .map(|i| record("checkout", i == 0))
            .chain((0..3).map(|_| record("back-office", true)))
            .collect();
        state.store.record_runs(&runs).await.unwrap();
        let app = super::super::router(state.clone());

        let res = {
            use tower::ServiceExt;
            app.clone().oneshot(get("/")).await.unwrap()
        };
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let (_, html) = call(&app, get("/")).await;
        assert!(
            html.contains("<h3>checkout</h3>") && html.contains("Shop"),
            "{html}"
        );
        assert!(html.contains("75.00% uptime over 90 days"), "{html}");
        assert!(html.contains("75.00% (1 of 4 failed)</span>"), "{html}");
        for hidden in ["back-office", "10.9.8.7", "s3cret", "admin"] {
            assert!(!html.contains(hidden), "`{hidden}` on the public page");
        }
        assert!(!html.contains("<script"), "no script needed");

        let (status, body) = call(&app, get("/status.json")).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "operational");
        assert_eq!(v["groups"][0]["journeys"][0]["name"], "checkout");
        assert_eq!(v["groups"][0]["journeys"][0]["uptime_30d"], 75.0);
        assert!(!body.contains("back-office"));

        let (status, svg) = call(&app, get("/badge/checkout.svg")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(svg.contains(">75.00%</text>"), "{svg}");
        for missing in [
            "/badge/back-office.svg",
            "/badge/nope.svg",
            "/badge/checkout",
        ] {
            assert_eq!(
                call(&app, get(missing)).await.0,
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }

        let (status, atom) = call(&app, get("/feed.atom")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            atom.starts_with("<?xml")
                && atom.contains("<feed xmlns=\"http://www.w3.org/2005/Atom\">")
        );

        let (status, css) = call(&app, get("/static/waymark.css")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(css.contains("prefers-color-scheme: dark"));
        assert_eq!(
            call(&app, get("/static/nope.js")).await.0,
            StatusCode::NOT_FOUND
        );
    }

    /// Issue #19: the badge of `payments/v2 health` is at its encoded name, decoded back.
    #[tokio::test]
    async fn badge_routes_decode_encoded_journey_names() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state(dir.path(), None).await;
        state.set_journeys([journey("payments/v2 health", "public: true\n")]);
        let app = super::super::router(state);
        let (status, svg) = call(&app, get("/badge/payments%2Fv2%20health.svg")).await;
        assert_eq!(status, StatusCode::OK, "{svg}");
        assert!(svg.starts_with("<svg"), "{svg}");
    }
}
