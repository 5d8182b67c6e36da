//! The public status page, without login: `GET /` (HTML), `GET /status.json`, `GET /feed.atom`
//! (incidents) and `GET /badge/{journey}.svg` (30-day uptime), for journeys marked
//! `public: true` only.
//!
//! Every answer comes from one [`Snapshot`], rebuilt in the background at most every
//! [`REFRESH`] (readers get the previous one meanwhile): a status page is read far more often
//! than runs change it, and an outage brings many readers at once.

mod atom;
mod badge;
mod rendered;
pub mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use minijinja::context;

use super::{ApiError, AppState, ui};
use crate::alert::maintenance::Window;
use crate::store::alerts::IncidentFilter;
use rendered::Encoded;
pub use snapshot::{Snapshot, State as JourneyState};

/// How stale the status may be when nothing changed.
pub const REFRESH: Duration = Duration::from_secs(15);

/// The last snapshots (public, and every journey for the dashboard) and when they were built.
///
/// A snapshot is served for up to [`REFRESH`] unless something changed meanwhile: the
/// analysis calls [`StatusCache::invalidate`] when an incident opens, changes or resolves and
/// when a journey's outcome changes, and the next request waits for a snapshot built after
/// that. Otherwise an outage would show as "All systems operational" to the first readers.
#[derive(Default)]
pub struct StatusCache {
    public: Slot,
    all: Slot,
    /// Bumped by each invalidation; a snapshot of an older generation is not served.
    generation: AtomicU64,
}

#[derive(Default)]
struct Slot {
    current: std::sync::RwLock<Option<Arc<Built>>>,
    /// Held while rebuilding: concurrent readers of a stale slot wait for one rebuild.
    rebuilding: tokio::sync::Mutex<()>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
}

/// A snapshot, and for the public one its answers as bytes.
struct Built {
    at: Instant,
    generation: u64,
    snapshot: Arc<Snapshot>,
    public: Option<PublicPages>,
}

/// The public answers, rendered and compressed once per snapshot.
struct PublicPages {
    html: Encoded,
    json: Encoded,
    atom: Encoded,
}

impl crate::service::ShownChanged for StatusCache {
    fn shown_changed(&self) {
        self.invalidate();
    }
}

impl StatusCache {
    /// Something the pages show changed: the next request gets a snapshot built after now.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn slot(&self, scope: Scope) -> &Slot {
        match scope {
            Scope::Public => &self.public,
            Scope::All => &self.all,
        }
    }
}

impl Slot {
    fn fresh_enough(&self, generation: u64) -> Option<Arc<Built>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|b| b.generation >= generation)
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
/// rebuilds it, so no reader waits for the database except the first one after a start or a
/// change (and those arriving with it, who wait for the same rebuild).
pub async fn snapshot(state: &AppState, scope: Scope) -> Result<Arc<Snapshot>, ApiError> {
    Ok(current(state, scope).await?.snapshot.clone())
}

async fn current(state: &AppState, scope: Scope) -> Result<Arc<Built>, ApiError> {
    let slot = state.status.slot(scope);
    let generation = state.status.generation.load(Ordering::Acquire);
    if let Some(built) = slot.fresh_enough(generation) {
        if built.at.elapsed() >= REFRESH && !slot.refreshing.swap(true, Ordering::AcqRel) {
            let state = state.clone();
            tokio::spawn(async move {
                let slot = state.status.slot(scope);
                let _one = slot.rebuilding.lock().await;
                let generation = state.status.generation.load(Ordering::Acquire);
                if let Err(e) = rebuild(&state, scope, generation).await {
                    tracing::warn!(error = %e, "status snapshot not refreshed");
                }
                slot.refreshing.store(false, Ordering::Release);
            });
        }
        return Ok(built);
    }
    let _one = slot.rebuilding.lock().await;
    if let Some(built) = slot.fresh_enough(generation) {
        return Ok(built);
    }
    // Read before the store: a change while rebuilding makes the next request rebuild again.
    let generation = state.status.generation.load(Ordering::Acquire);
    rebuild(state, scope, generation).await
}

/// Builds a snapshot from the store and the catalog (with the public answers for the public
/// scope), and caches it.
async fn rebuild(state: &AppState, scope: Scope, generation: u64) -> Result<Arc<Built>, ApiError> {
    let now = Utc::now();
    let journeys: Vec<Arc<crate::journey::Journey>> =
        state.catalog().journeys.values().cloned().collect();
    let refs: Vec<&crate::journey::Journey> = journeys.iter().map(|j| j.as_ref()).collect();
    let since = now - chrono::Duration::days(snapshot::DAYS);
    let totals = state.store.status().daily_totals(since).await?;
    let incidents = state
        .store
        .incidents()
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
                .status()
                .journey_locations(now - chrono::Duration::days(30))
                .await?,
            state
                .store
                .status()
                .hourly_p95(now - chrono::Duration::hours(snapshot::SPARK_HOURS))
                .await?,
        ),
    };
    let snapshot = Arc::new(snapshot::build(&snapshot::Inputs {
        journeys: &refs,
        only_public: scope == Scope::Public,
        locations: &locations,
        hourly_p95: &hourly_p95,
        totals: &totals,
        incidents: &incidents,
        maintenance: &maintenance,
        now,
    }));
    let public = match scope {
        Scope::Public => Some(public_pages(state, &snapshot)?),
        Scope::All => None,
    };
    let built = Arc::new(Built {
        at: Instant::now(),
        generation,
        snapshot,
        public,
    });
    *state
        .status
        .slot(scope)
        .current
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
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

/// Renders the public answers of a snapshot: the page, the JSON and the feed.
fn public_pages(state: &AppState, s: &Snapshot) -> Result<PublicPages, ApiError> {
    let (icons, labels) = state_words();
    let logo_origin = state
        .config
        .status_page
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    let csp = match logo_origin {
        Some(origin) => ui::PAGE_CSP.replace(
            "img-src 'self' data:",
            &format!("img-src 'self' data: {origin}"),
        ),
        None => ui::PAGE_CSP.to_string(),
    };
    let html = ui::render(
        "status.html",
        context! {
            site => minijinja::Value::from_serialize(&state.config.status_page),
            snapshot => minijinja::Value::from_serialize(s),
            overall_text => overall_text(s),
            generated_at => crate::format::timestamp(s.generated_at),
            icons,
            labels,
        },
    )?;
    let json = serde_json::to_vec(&PublicStatus {
        title: state.config.status_page.title.clone(),
        status: s.state,
        description: overall_text(s).to_string(),
        generated_at: s.generated_at,
        groups: s.groups.clone(),
        incidents: s.incidents.clone(),
    })
    .map_err(|e| ApiError::Internal(e.into()))?;
    let base = state.config.alerting.dashboard_url.as_deref().unwrap_or("");
    let atom = atom::atom(s, &state.config.status_page.title, base);
    // `no-cache`: a reader may keep a copy but asks each time (a 304 when nothing changed),
    // so a change shows on the next request.
    Ok(PublicPages {
        html: Encoded::new(
            "text/html; charset=utf-8",
            "public, no-cache",
            html,
            ui::page_headers(&csp),
        ),
        json: Encoded::new(
            "application/json",
            "public, no-cache",
            json,
            HeaderMap::new(),
        ),
        atom: Encoded::new(
            "application/atom+xml; charset=utf-8",
            "public, no-cache",
            atom,
            HeaderMap::new(),
        ),
    })
}

/// One of the current public answers.
async fn answer(
    state: &AppState,
    request: &HeaderMap,
    pick: fn(&PublicPages) -> &Encoded,
) -> Result<Response, ApiError> {
    let built = current(state, Scope::Public).await?;
    let pages = built.public.as_ref().ok_or_else(|| {
        ApiError::Internal(crate::api::Internal::Bug(
            "the public snapshot has no pages",
        ))
    })?;
    Ok(pick(pages).respond(request))
}

async fn page(State(state): State<AppState>, request: HeaderMap) -> Result<Response, ApiError> {
    answer(&state, &request, |p| &p.html).await
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

/// The public status page's content: groups, journeys, 90 days, incidents (at most 15 s old,
/// and never older than the last change).
#[utoipa::path(get, path = "/status.json", tag = "status",
    responses((status = 200, body = PublicStatus)))]
async fn json(State(state): State<AppState>, request: HeaderMap) -> Result<Response, ApiError> {
    answer(&state, &request, |p| &p.json).await
}

async fn atom(State(state): State<AppState>, request: HeaderMap) -> Result<Response, ApiError> {
    answer(&state, &request, |p| &p.atom).await
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
    use crate::store::RunRecord;
    use axum::http::StatusCode;

    fn journey(name: &str, extra: &str) -> crate::journey::Journey {
        crate::run::testkit::journey(&format!(
            "name: {name}\n{extra}steps:\n  - name: home\n    http: {{ url: \"http://10.9.8.7:1/admin?key=s3cret\" }}\n"
        ))
    }

    /// A run at 00:00 UTC today: always on the same day as "now" (a run a few minutes ago
    /// would be yesterday's just after midnight).
    fn record(journey: &str, failed: bool) -> RunRecord {
        let now = chrono::Utc::now().timestamp();
        let t = chrono::DateTime::from_timestamp(now - now.rem_euclid(86_400), 0).unwrap();
        run_record(journey, "test", t, 12.0, failed, vec![])
    }

    #[tokio::test]
    async fn a_change_shows_on_the_next_request_and_unchanged_pages_answer_304() {
        let (state, _, _dir) = state(None).await;
        state.set_journeys([journey("checkout", "public: true\n")]);
        state
            .store
            .runs()
            .record_now(&[record("checkout", false)])
            .await;
        let app = super::super::router(state.clone());
        let (_, html) = call(&app, get("/")).await;
        assert!(html.contains("100.00% uptime over 90 days"), "{html}");

        // A failed run stored: the cached snapshot stands until the analysis says so.
        state
            .store
            .runs()
            .record_now(&[record("checkout", true)])
            .await;
        let (_, html) = call(&app, get("/")).await;
        assert!(html.contains("100.00% uptime"), "served from the snapshot");
        state.status.invalidate();
        let (_, html) = call(&app, get("/")).await;
        assert!(html.contains("50.00% uptime over 90 days"), "{html}");
        let (_, json) = call(&app, get("/status.json")).await;
        assert!(json.contains("\"uptime_30d\":50.0"), "{json}");

        // Readers polling an unchanged page get a 304 for the tag they hold.
        use tower::ServiceExt;
        let res = app.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(res.headers()["cache-control"], "public, no-cache");
        let etag = res.headers()["etag"].clone();
        let mut again = get("/");
        again.headers_mut().insert("if-none-match", etag);
        let res = app.clone().oneshot(again).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn the_public_page_feeds_and_badges_show_public_journeys_only() {
        let (state, _, _dir) = state(None).await;
        state.set_journeys([
            journey("checkout", "public: true\ngroup: Shop\n"),
            journey("back-office", ""),
        ]);
        let runs: Vec<RunRecord> = (0..4)
            .map(|i| record("checkout", i == 0))
            .chain((0..3).map(|_| record("back-office", true)))
            .collect();
        state.store.runs().record_now(&runs).await;
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
        let (state, _, _dir) = state(None).await;
        state.set_journeys([journey("payments/v2 health", "public: true\n")]);
        let app = super::super::router(state);
        let (status, svg) = call(&app, get("/badge/payments%2Fv2%20health.svg")).await;
        assert_eq!(status, StatusCode::OK, "{svg}");
        assert!(svg.starts_with("<svg"), "{svg}");
    }
}
