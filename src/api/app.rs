//! The internal dashboard under `/app` (login required, see [`super::auth`]): the overview of
//! every journey, incidents with acknowledge and resolve. Pages are server-rendered from
//! `ui/templates`; forms post back with the session's CSRF token.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::auth::{self, CsrfForm, SignedIn};
use super::status::{Scope, snapshot};
use super::{ApiError, AppState, ui};
use crate::alert::IncidentState;
use crate::alert::commands::Action;
use crate::store::alerts::IncidentFilter;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/app", get(overview))
        .route("/app/login", get(auth::login_page).post(auth::login))
        .route("/app/logout", post(auth::logout))
        .route("/app/runs/{id}", get(run))
        .route("/app/journeys/{name}", get(journey))
        .route("/app/dependencies", get(dependencies))
        .route("/app/incidents", get(incidents))
        .route("/app/incidents/{id}", get(incident))
        .route("/app/incidents/{id}/{action}", post(command))
        .with_state(state)
}

/// The context every dashboard page shares: the site, the user (for the CSRF token of the
/// logout form) and the state words.
fn base(state: &AppState, user: &SignedIn, title: &str) -> Value {
    let (icons, labels) = super::status::state_words();
    context! {
        site => Value::from_serialize(&state.config.status_page),
        user => context! { username => user.username.clone(), csrf_token => user.csrf_token.clone() },
        title,
        icons,
        labels,
    }
}

#[derive(Deserialize, Serialize, Default)]
struct OverviewQuery {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    owner: String,
}

#[derive(Serialize)]
struct Row {
    name: String,
    state: super::status::JourneyState,
    today: Option<f64>,
    week: Option<f64>,
    month: Option<f64>,
    owner: Option<String>,
    tags: Vec<String>,
    open_incidents: usize,
}

async fn overview(
    State(state): State<AppState>,
    user: SignedIn,
    Query(filter): Query<OverviewQuery>,
) -> Result<Response, ApiError> {
    let s = snapshot(&state, Scope::All).await?;
    let journeys = state.catalog().journeys.clone();
    let (mut tags, mut owners) = (BTreeSet::new(), BTreeSet::new());
    for j in journeys.values() {
        tags.extend(j.tags.iter().cloned());
        owners.extend(j.owner.iter().cloned());
    }
    let over = |days: &[super::status::snapshot::Day], n: usize| {
        let (runs, failures) = days[days.len().saturating_sub(n)..]
            .iter()
            .fold((0, 0), |(r, f), d| (r + d.runs, f + d.failures));
        (runs > 0).then(|| 100.0 * (runs - failures.min(runs)) as f64 / runs as f64)
    };
    let mut rows: Vec<Row> = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .filter_map(|j| {
            let def = journeys.get(&j.name)?;
            let keep = (filter.tag.is_empty() || def.tags.contains(&filter.tag))
                && (filter.owner.is_empty() || def.owner.as_deref() == Some(filter.owner.as_str()));
            keep.then(|| Row {
                name: j.name.clone(),
                state: j.state,
                today: over(&j.days, 1),
                week: over(&j.days, 7),
                month: j.uptime_30d,
                owner: def.owner.clone(),
                tags: def.tags.clone(),
                open_incidents: s
                    .incidents
                    .iter()
                    .filter(|i| i.journey == j.name && i.resolved_at.is_none())
                    .count(),
            })
        })
        .collect();
    // The worst first: what needs looking at.
    rows.sort_by(|a, b| b.state.cmp(&a.state).then(a.name.cmp(&b.name)));
    ui::page(
        "overview.html",
        context! {
            ..base(&state, &user, "Overview"),
            ..context! {
                rows => Value::from_serialize(&rows),
                tags => Value::from_serialize(&tags),
                owners => Value::from_serialize(&owners),
                filter => Value::from_serialize(&filter),
            }
        },
    )
}

/// A chart as an `<img>` source: the SVG as a `data:` URI (allowed by the page's CSP, and its
/// attributes are not the page's inline styles).
fn chart_src(input: &crate::digest::chart::ChartInput) -> String {
    use base64::Engine as _;
    let svg = crate::digest::chart::svg(input);
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

async fn journey(
    State(state): State<AppState>,
    user: SignedIn,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let def = state
        .catalog()
        .journeys
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no journey `{name}`")))?;
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(7);
    let (view, step_charts) =
        crate::digest::compute::journey_view(&state.store, &def, from, to).await?;
    // Incidents and anomaly episodes are shaded on every chart.
    let mut spans: Vec<_> = state
        .store
        .incidents(&IncidentFilter {
            journey: Some(name.clone()),
            since: Some(from),
            ..IncidentFilter::default()
        })
        .await?
        .iter()
        .map(|i| (i.started_at, i.resolved_at.unwrap_or(to)))
        .collect();
    spans.extend(
        state
            .store
            .episodes(&crate::store::EpisodeFilter {
                journey: Some(name.clone()),
                since: Some(from),
                ..Default::default()
            })
            .await?
            .iter()
            .map(|e| (e.start, e.end.unwrap_or(to))),
    );
    let input = |c: &crate::digest::model::Chart| crate::digest::chart::ChartInput {
        from,
        to,
        p50: c.p50.clone(),
        p95: c.p95.clone(),
        band: c.band,
        incidents: spans.clone(),
    };
    let step_charts: Vec<serde_json::Value> = step_charts
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "src": chart_src(&input(&s.chart)),
                "histogram": super::histogram::svg(&s.now, &s.before),
            })
        })
        .collect();
    let s = snapshot(&state, Scope::All).await?;
    let journey_state = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .find(|j| j.name == name)
        .map_or(super::status::JourneyState::Unknown, |j| j.state);
    let runs = state.store.recent_runs(&name, 50).await?;
    let definition = state
        .store
        .journeys()
        .await?
        .into_iter()
        .filter(|v| v.name == name && v.content_sha256 == def.source.content_sha256)
        .find_map(|v| v.definition);
    ui::page(
        "journey.html",
        context! {
            ..base(&state, &user, &name),
            ..context! {
                journey => context! {
                    name => def.name.clone(),
                    description => def.description.clone(),
                    owner => def.owner.clone(),
                    tags => def.tags.clone(),
                    slo => def.slo,
                    public => def.public,
                },
                schedule => super::journeys::schedule_text(&def.schedule),
                state => journey_state,
                run_chart => chart_src(&input(&view.chart)),
                view => Value::from_serialize(&view),
                step_charts => Value::from_serialize(&step_charts),
                runs => Value::from_serialize(&runs),
                definition,
            }
        },
    )
}

async fn dependencies(State(state): State<AppState>, user: SignedIn) -> Result<Response, ApiError> {
    let names: Vec<String> = state.catalog().journeys.keys().cloned().collect();
    let mut latest = Vec::with_capacity(names.len());
    for name in &names {
        let run = match state.store.recent_runs(name, 1).await?.first() {
            Some(r) => state.store.run(r.run_id).await?.map(|s| s.result),
            None => None,
        };
        latest.push((name.as_str(), run));
    }
    let graph = super::depmap::build(latest.iter().map(|(n, r)| (*n, r.as_ref())));
    let deps: Vec<(&String, &String)> = graph.host_dependency.iter().map(|(h, d)| (h, d)).collect();
    let mut anchored = BTreeSet::new();
    let rows: Vec<serde_json::Value> = graph
        .journey_host
        .iter()
        .flat_map(|(j, h)| {
            let labels: Vec<&String> = deps
                .iter()
                .filter(|(dh, _)| *dh == h)
                .map(|(_, d)| *d)
                .collect();
            if labels.is_empty() {
                vec![serde_json::json!({ "journey": j, "host": h, "dependency": null })]
            } else {
                labels
                    .into_iter()
                    .map(|d| {
                        // The digest links to `#label`: one anchor per label.
                        let anchor = anchored.insert(d.clone()).then_some(d);
                        serde_json::json!({ "journey": j, "host": h, "dependency": d, "anchor": anchor })
                    })
                    .collect()
            }
        })
        .collect();
    ui::page(
        "dependencies.html",
        context! {
            ..base(&state, &user, "Dependency map"),
            ..context! {
                map => Value::from_safe_string(super::depmap::svg(&graph)),
                rows => Value::from_serialize(&rows),
            }
        },
    )
}

async fn run(
    State(state): State<AppState>,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound(format!("no run with id `{id}`"));
    let run_id: uuid::Uuid = id.parse().map_err(|_| missing())?;
    let stored = state.store.run(run_id).await?.ok_or_else(missing)?;
    let r = &stored.result;
    let trace_url = state
        .config
        .alerting
        .trace_url
        .as_ref()
        .filter(|_| !r.trace_id.is_empty())
        .map(|t| t.replace("{trace_id}", &r.trace_id));
    let outcome_state = match r.outcome {
        crate::runner::Outcome::Passed => "operational",
        _ => "down",
    };
    ui::page(
        "run.html",
        context! {
            ..base(&state, &user, &format!("Run of {}", r.journey)),
            ..context! {
                run => Value::from_serialize(r),
                outcome_state,
                duration => format!("{:.1} ms", r.duration_ms),
                trace_url,
                waterfall => Value::from_safe_string(super::waterfall::svg(r)),
            }
        },
    )
}

#[derive(Deserialize, Serialize)]
struct IncidentsQuery {
    #[serde(default = "active")]
    state: String,
    #[serde(default)]
    journey: String,
}

fn active() -> String {
    "active".into()
}

async fn incidents(
    State(state): State<AppState>,
    user: SignedIn,
    Query(filter): Query<IncidentsQuery>,
) -> Result<Response, ApiError> {
    use IncidentState::*;
    let states = match filter.state.as_str() {
        "active" => vec![Open, Acknowledged],
        "open" => vec![Open],
        "acknowledged" => vec![Acknowledged],
        "resolved" => vec![Resolved],
        _ => vec![],
    };
    let list = state
        .store
        .incidents(&IncidentFilter {
            journey: (!filter.journey.is_empty()).then(|| filter.journey.clone()),
            states,
            since: None,
            limit: 200,
        })
        .await?;
    let now = chrono::Utc::now();
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id,
                "journey": i.journey,
                "severity": i.severity.as_str(),
                "state": i.state,
                "started_at": i.started_at,
                "resolved_at": i.resolved_at,
                "duration_s": (i.resolved_at.unwrap_or(now) - i.started_at).num_seconds().max(0),
            })
        })
        .collect();
    ui::page(
        "incidents.html",
        context! {
            ..base(&state, &user, "Incidents"),
            ..context! {
                incidents => Value::from_serialize(&rows),
                filter => Value::from_serialize(&filter),
            }
        },
    )
}

#[derive(Deserialize)]
struct Message {
    done: Option<String>,
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no incident with id `{raw}`")))
}

async fn incident(
    State(state): State<AppState>,
    user: SignedIn,
    Path(id): Path<String>,
    Query(message): Query<Message>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let i = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident with id `{id}`")))?;
    let events = state.store.incident_events(id).await?;
    let notifications: Vec<serde_json::Value> = state
        .store
        .incident_notifications(id)
        .await?
        .iter()
        .map(|r| {
            serde_json::json!({
                "channel": r.notification.channel,
                "kind": r.notification.kind.as_str(),
                "status": r.status.as_str(),
                "created_at": r.notification.created_at,
            })
        })
        .collect();
    let message = match message.done.as_deref() {
        Some("ack") => {
            Some("Acknowledged: reminders stop; the incident stays open until runs pass.")
        }
        Some("resolve") => {
            Some("Resolved: a new failure opens a new incident (or reopens this one).")
        }
        _ => None,
    };
    ui::page(
        "incident.html",
        context! {
            ..base(&state, &user, &format!("Incident #{id}")),
            ..context! {
                incident => Value::from_serialize(&i),
                headline => i.cause.headline(i.severity),
                events => Value::from_serialize(&events),
                notifications => Value::from_serialize(&notifications),
                message,
            }
        },
    )
}

/// `POST /app/incidents/{id}/ack|resolve` as the signed-in user, then shows the incident again
/// (post/redirect/get).
async fn command(
    State(state): State<AppState>,
    user: SignedIn,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    let action = match action.as_str() {
        "ack" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        other => return Err(ApiError::NotFound(format!("no action `{other}`"))),
    };
    user.check(&headers, &form.csrf)?;
    let id = parse_id(&id)?;
    super::incidents::send_command(&state, action, id, &user.username).await?;
    let done = match action {
        Action::Acknowledge => "ack",
        Action::Resolve => "resolve",
    };
    Ok(Redirect::to(&format!("/app/incidents/{id}?done={done}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, state_with};
    use crate::alert::{Cause, Incident, Severity};
    use crate::config::DashboardUser;
    use crate::store::alerts::IncidentChange;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    const PASSWORD: &str = "correct horse battery staple";

    fn form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
        let mut b = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, "http://127.0.0.1:8080");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::from(body.to_string())).unwrap()
    }

    fn with_cookie(uri: &str, cookie: &str) -> Request<Body> {
        Request::get(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    }

    /// The CSRF token in a page's forms.
    fn csrf(html: &str) -> String {
        html.split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn login_pages_csrf_and_logout() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = state_with(dir.path(), |c| {
            c.dashboard.users = vec![DashboardUser {
                name: "ada".into(),
                password_hash: crate::api::auth::hash_password(PASSWORD),
            }];
        })
        .await;
        let mut incident = Incident {
            cause: Cause {
                step: Some("pay".into()),
                ..Cause::default()
            },
            ..Incident::open_for_test("checkout", Severity::Failure, chrono::Utc::now())
        };
        incident.id = state
            .store
            .save_incident(&IncidentChange {
                incident: incident.clone(),
                events: vec![],
                notifications: vec![],
                muted: vec![],
            })
            .await
            .unwrap();
        let app = super::super::router(state.clone());

        // Not logged in: to the login page, and back afterwards.
        let res = app.clone().oneshot(get("/app/incidents/1")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers()[header::LOCATION],
            "/app/login?next=%2Fapp%2Fincidents%2F1"
        );
        let (status, page) = call(&app, get("/app/login?next=/app/incidents/1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("name=\"next\" value=\"&#x2f;app&#x2f;incidents&#x2f;1\""),
            "{page}"
        );

        // Wrong password, unknown user, cross-site form: refused.
        let (status, page) = call(
            &app,
            form("/app/login", "username=ada&password=nope&next=/app", None),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Wrong user name or password."));
        assert!(!page.contains("Log out"), "not logged in");
        let (status, _) = call(
            &app,
            form(
                "/app/login",
                &format!("username=bob&password={PASSWORD}"),
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut cross = form(
            "/app/login",
            &format!("username=ada&password={PASSWORD}"),
            None,
        );
        cross
            .headers_mut()
            .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);

        // The right one: a session cookie, and the page asked for.
        let body = format!(
            "username=ada&password={}&next=%2Fapp%2Fincidents%2F1",
            PASSWORD.replace(' ', "+")
        );
        let res = app
            .clone()
            .oneshot(form("/app/login", &body, None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[header::LOCATION], "/app/incidents/1");
        let set_cookie = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let token = cookie.split_once('=').unwrap().1;
        assert_eq!(token.len(), 64);
        let stored: Vec<String> = sqlx_tokens(&state).await;
        assert!(
            !stored.iter().any(|t| t == token),
            "only the token's hash is stored"
        );

        let (status, page) = call(&app, with_cookie("/app/incidents/1", &cookie)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Incident #1: checkout (failure)") && page.contains("Acknowledge"),
            "{page}"
        );
        let (status, overview) = call(&app, with_cookie("/app", &cookie)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(overview.contains("Overview"));
        let token = csrf(&page);

        // Forms need the session's CSRF token.
        let ack = |csrf: &str| {
            form(
                "/app/incidents/1/ack",
                &format!("csrf={csrf}"),
                Some(&cookie),
            )
        };
        assert_eq!(call(&app, ack("0000")).await.0, StatusCode::FORBIDDEN);
        assert_eq!(
            call(&app, ack(&token)).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "no engine in a handler test"
        );

        // Logging out ends the session for good.
        let res = app
            .clone()
            .oneshot(form("/app/logout", &format!("csrf={token}"), Some(&cookie)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(
            res.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let res = app
            .clone()
            .oneshot(with_cookie("/app", &cookie))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }

    async fn sqlx_tokens(state: &crate::api::AppState) -> Vec<String> {
        match &state.store {
            crate::store::Store::Sqlite(p) => {
                sqlx::query_scalar("SELECT token_sha256 FROM sessions")
                    .fetch_all(p)
                    .await
                    .unwrap()
            }
            crate::store::Store::Postgres(p) => {
                sqlx::query_scalar("SELECT token_sha256 FROM sessions")
                    .fetch_all(p)
                    .await
                    .unwrap()
            }
        }
    }
}
