//! `/app/journeys/{name}`, `/app/runs/{id}` and `/app/dependencies`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::{Value, context};

use super::base;
use crate::api::auth::SignedIn;
use crate::api::depmap::Graph;
use crate::api::histogram;
use crate::api::status::{JourneyState, Scope, snapshot};
use crate::api::{ApiError, AppState, ui};
use crate::digest::compute::StepSeries;
use crate::digest::model::JourneyDigest;
use crate::journey::Journey;
use crate::store::RunSummary;
use crate::store::alerts::IncidentFilter;
use crate::store::status::LocationResult;

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

/// What the journey page shows, for the page and for `GET /api/v1/journeys/{name}`: the
/// last [`DAYS`] against the [`DAYS`] before.
pub(crate) struct JourneyData {
    pub def: Arc<Journey>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub view: JourneyDigest,
    pub steps: Vec<StepSeries>,
    /// Incidents and anomaly episodes of the period, shaded on every chart.
    pub spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub state: JourneyState,
    pub runs: Vec<RunSummary>,
    /// The journey file as it is scheduled.
    pub definition: Option<String>,
    pub locations: Vec<LocationResult>,
}

pub(crate) const DAYS: i64 = 7;

pub(crate) async fn load(state: &AppState, name: &str) -> Result<JourneyData, ApiError> {
    let def = state
        .catalog()
        .journeys
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no journey `{name}`")))?;
    let to = Utc::now();
    let from = to - chrono::Duration::days(DAYS);
    let (view, steps) = crate::digest::compute::journey_view(&state.store, &def, from, to).await?;
    let mut spans: Vec<_> = state
        .store
        .incidents()
        .incidents(&IncidentFilter {
            journey: Some(name.to_string()),
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
            .episodes()
            .episodes(&crate::store::EpisodeFilter {
                journey: Some(name.to_string()),
                since: Some(from),
                ..Default::default()
            })
            .await?
            .iter()
            .map(|e| (e.start, e.end.unwrap_or(to))),
    );
    let s = snapshot(state, Scope::All).await?;
    let journey_state = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .find(|j| j.name == name)
        .map_or(JourneyState::Unknown, |j| j.state);
    let definition = state
        .store
        .runs()
        .journeys()
        .await?
        .into_iter()
        .filter(|v| v.name == name && v.content_sha256 == def.source.content_sha256)
        .find_map(|v| v.definition);
    Ok(JourneyData {
        runs: state.store.runs().recent_runs(name, 50).await?,
        locations: state.store.status().location_results(name, from).await?,
        def,
        from,
        to,
        view,
        steps,
        spans,
        state: journey_state,
        definition,
    })
}

pub(super) async fn journey(
    State(state): State<AppState>,
    user: SignedIn,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let d = load(&state, &name).await?;
    let input = |c: &crate::digest::model::Chart| crate::digest::chart::ChartInput {
        from: d.from,
        to: d.to,
        p50: c.p50.clone(),
        p95: c.p95.clone(),
        band: c.band,
        incidents: d.spans.clone(),
    };
    let step_charts: Vec<serde_json::Value> = d
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "src": chart_src(&input(&s.chart)),
                "histogram": histogram::svg(&histogram::bins(&s.now, &s.before)),
            })
        })
        .collect();
    let locations: Vec<serde_json::Value> = d
        .locations
        .iter()
        .map(|l| {
            serde_json::json!({
                "location": l.location,
                "runs": l.runs,
                "failures": l.failures,
                "availability": availability(l.runs, l.failures),
                "p50": l.p50_ms,
                "p95": l.p95_ms,
                "last_run": l.last_run,
            })
        })
        .collect();
    let def = &d.def;
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
                schedule => crate::api::journeys::schedule_text(&def.schedule),
                state => d.state,
                run_chart => chart_src(&input(&d.view.chart)),
                view => Value::from_serialize(&d.view),
                step_charts => Value::from_serialize(&step_charts),
                locations => Value::from_serialize(&locations),
                runs => Value::from_serialize(&d.runs),
                definition => d.definition,
            }
        },
    )
}

/// Percent of runs that passed; None without runs.
pub(crate) fn availability(runs: u64, failures: u64) -> Option<f64> {
    (runs > 0).then(|| 100.0 * runs.saturating_sub(failures) as f64 / runs as f64)
}

/// The dependency map of every journey, from each one's latest run.
pub(crate) async fn dependency_graph(state: &AppState) -> Result<Graph, ApiError> {
    let names: Vec<String> = state.catalog().journeys.keys().cloned().collect();
    let mut latest = Vec::with_capacity(names.len());
    for name in &names {
        let run = match state.store.runs().recent_runs(name, 1).await?.first() {
            Some(r) => state.store.runs().run(r.run_id).await?.map(|s| s.result),
            None => None,
        };
        latest.push((name.as_str(), run));
    }
    Ok(crate::api::depmap::build(
        latest.iter().map(|(n, r)| (*n, r.as_ref())),
    ))
}

pub(super) async fn dependencies(
    State(state): State<AppState>,
    user: SignedIn,
) -> Result<Response, ApiError> {
    let graph = dependency_graph(&state).await?;
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
                map => Value::from_safe_string(crate::api::depmap::svg(&graph)),
                rows => Value::from_serialize(&rows),
            }
        },
    )
}

pub(super) async fn run(
    State(state): State<AppState>,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound(format!("no run with id `{id}`"));
    let run_id: uuid::Uuid = id.parse().map_err(|_| missing())?;
    let stored = state.store.runs().run(run_id).await?.ok_or_else(missing)?;
    let r = &stored.result;
    let trace_url = state
        .config
        .alerting
        .trace_url
        .as_ref()
        .filter(|_| !r.trace_id.is_empty())
        .map(|t| t.replace("{trace_id}", &r.trace_id));
    let outcome_state = match r.outcome {
        crate::run::Outcome::Passed => "operational",
        _ => "down",
    };
    ui::page(
        "run.html",
        context! {
            ..base(&state, &user, &format!("Run of {}", r.journey)),
            ..context! {
                run => Value::from_serialize(r),
                outcome_state,
                trace_url,
                waterfall => Value::from_safe_string(crate::api::waterfall::svg(r)),
            }
        },
    )
}
