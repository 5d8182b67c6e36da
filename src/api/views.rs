//! The dashboard's views as JSON, for scripts and other front ends: `GET /api/v1/overview`
//! (`?tag=&owner=&location=`), `GET /api/v1/journeys/{name}` (what the journey page shows)
//! and `GET /api/v1/dependencies` (the dependency map). The pages and these answers are made
//! by the same functions in [`super::dashboard`]; like the rest of the read API they need no login.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dashboard::journeys::{self as page, availability};
use super::dashboard::overview::{OverviewQuery, Row};
use super::depmap::Health;
use super::extract::{Path, Query};
use super::histogram::{self, Bin};
use super::journeys::schedule_text;
use super::status::{JourneyState, Scope, snapshot};
use super::{ApiResult, AppState, BadParameter, ErrorBody};
use crate::digest::model::JourneyDigest;
use crate::store::RunSummary;
use crate::store::status::LocationResult;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(journey))
        .routes(routes!(dependencies))
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// The worst state first.
    pub journeys: Vec<Row>,
}

/// Every journey with its state, availability, p95 sparkline and open incidents.
#[utoipa::path(get, path = "/api/v1/overview", tag = "dashboard", params(OverviewQuery),
    responses(
        (status = 200, body = Overview),
        BadParameter))]
async fn overview(
    State(state): State<AppState>,
    Query(filter): Query<OverviewQuery>,
) -> ApiResult<Overview> {
    let s = snapshot(&state, Scope::All).await?;
    let catalog = state.catalog().clone();
    Ok(Json(Overview {
        journeys: super::dashboard::overview::rows(&s, &catalog, &filter),
    }))
}

/// One journey over the last 7 days against the 7 before.
#[derive(Serialize, ToSchema)]
pub struct JourneyDetail {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub schedule: String,
    pub slo: Option<f64>,
    pub public: bool,
    pub state: JourneyState,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Availability, per-step latency and its shift, failure modes, flaky steps, and the
    /// whole-run chart with the week before's band: the figures a digest has for it.
    pub figures: JourneyDigest,
    pub steps: Vec<StepView>,
    pub locations: Vec<LocationView>,
    /// Incidents and anomaly episodes of the period.
    pub bad_spans: Vec<Span>,
    /// The 50 newest runs.
    pub runs: Vec<RunSummary>,
    /// The journey file as it is scheduled.
    pub definition: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    pub latency: crate::digest::model::Chart,
    /// This week's latency distribution against last week's.
    pub histogram: Vec<Bin>,
}

#[derive(Serialize, ToSchema)]
pub struct LocationView {
    #[serde(flatten)]
    pub result: LocationResult,
    /// Percent of runs that passed; None without runs.
    pub availability: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// What the journey page shows.
#[utoipa::path(get, path = "/api/v1/journeys/{name}", tag = "dashboard",
    params(("name" = String, Path, description = "journey name")),
    responses(
        (status = 200, body = JourneyDetail),
        (status = 404, description = "no such journey", body = ErrorBody)))]
async fn journey(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<JourneyDetail> {
    let d = page::load(&state, &name).await?;
    let def = &d.def;
    Ok(Json(JourneyDetail {
        name: def.name.clone(),
        description: def.description.clone(),
        owner: def.owner.clone(),
        tags: def.tags.clone(),
        schedule: schedule_text(&def.schedule),
        slo: def.slo,
        public: def.public,
        state: d.state,
        from: d.from,
        to: d.to,
        steps: d
            .steps
            .iter()
            .map(|s| StepView {
                name: s.name.clone(),
                latency: s.chart.clone(),
                histogram: histogram::bins(&s.now, &s.before),
            })
            .collect(),
        locations: d
            .locations
            .iter()
            .map(|l| LocationView {
                result: l.clone(),
                availability: availability(l.runs, l.failures),
            })
            .collect(),
        bad_spans: d
            .spans
            .iter()
            .map(|&(from, to)| Span { from, to })
            .collect(),
        runs: d.runs.clone(),
        definition: d.definition,
        figures: d.view,
    }))
}

/// Journeys, the hosts their latest runs reached, and the hosts' `dependency` labels, each
/// with its health.
#[derive(Serialize, ToSchema)]
pub struct DependencyMap {
    pub journeys: BTreeMap<String, Health>,
    pub hosts: BTreeMap<String, Health>,
    pub dependencies: BTreeMap<String, Health>,
    pub journey_hosts: Vec<JourneyHost>,
    pub host_dependencies: Vec<HostDependency>,
}

#[derive(Serialize, ToSchema)]
pub struct JourneyHost {
    pub journey: String,
    pub host: String,
}

#[derive(Serialize, ToSchema)]
pub struct HostDependency {
    pub host: String,
    pub dependency: String,
}

/// The dependency map.
#[utoipa::path(get, path = "/api/v1/dependencies", tag = "dashboard",
    responses((status = 200, body = DependencyMap)))]
async fn dependencies(State(state): State<AppState>) -> ApiResult<DependencyMap> {
    let g = page::dependency_graph(&state).await?;
    Ok(Json(DependencyMap {
        journey_hosts: g
            .journey_host
            .into_iter()
            .map(|(journey, host)| JourneyHost { journey, host })
            .collect(),
        host_dependencies: g
            .host_dependency
            .into_iter()
            .map(|(host, dependency)| HostDependency { host, dependency })
            .collect(),
        journeys: g.journeys,
        hosts: g.hosts,
        dependencies: g.dependencies,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, map_array, run_record, state};
    use crate::run::testkit;
    use crate::store::RunRecord;
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    fn journey(name: &str, owner: &str) -> crate::journey::Journey {
        testkit::journey(&format!(
            "name: {name}\nowner: {owner}\nschedule: {{ every: 1m }}\nsteps:\n  - name: pay\n    \
             dependency: payments\n    http: {{ url: \"http://127.0.0.1:9/pay\" }}\n"
        ))
    }

    /// A run of `journey` `minutes_ago`, from `location`, its step taking `ms`.
    fn run(journey: &str, location: &str, minutes_ago: i64, ms: f64, failed: bool) -> RunRecord {
        let t = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
        let step = testkit::step("pay")
            .dependency("payments")
            .failed_if(failed)
            .ms(ms)
            .request("GET", "http://127.0.0.1:9/pay");
        run_record(journey, location, t, ms, failed, vec![step.build()])
    }

    async fn json_of(app: &axum::Router, uri: &str) -> Value {
        let (status, body) = call(app, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    #[tokio::test]
    async fn journey_overview_and_dependency_map_as_json() {
        let (state, _, _dir) = state(None).await;
        state.set_journeys([
            journey("checkout", "shop-team"),
            journey("search", "search-team"),
        ]);
        // checkout: 20 runs from eu (the newest failed), 10 from us; search never ran.
        let mut runs: Vec<RunRecord> = (1..=20)
            .map(|i| run("checkout", "eu", i, 40.0 + i as f64, i == 1))
            .collect();
        runs.extend((1..=10).map(|i| run("checkout", "us", i + 2, 90.0, false)));
        state.store.runs().record_now(&runs).await;
        let app = super::super::router(state);

        let j = json_of(&app, "/api/v1/journeys/checkout").await;
        assert_eq!(j["owner"], "shop-team");
        assert_eq!(j["schedule"], "every 1m");
        assert_eq!(j["figures"]["runs"], 30);
        assert_eq!(j["figures"]["failed"], 1);
        let locations: Vec<(&str, u64, u64)> = map_array(&j["locations"], |l| {
            (
                l["location"].as_str().unwrap(),
                l["runs"].as_u64().unwrap(),
                l["failures"].as_u64().unwrap(),
            )
        });
        assert_eq!(locations, [("eu", 20, 1), ("us", 10, 0)]);
        assert_eq!(j["locations"][0]["availability"], 95.0);
        assert_eq!(j["locations"][0]["last_run"]["outcome"], "failed");
        assert_eq!(
            j["locations"][0]["last_run"]["run_id"],
            json!(runs[0].result.run_id)
        );
        assert_eq!(j["locations"][1]["availability"], 100.0);
        assert_eq!(j["steps"][0]["name"], "pay");
        let bins = j["steps"][0]["histogram"].as_array().unwrap();
        assert_eq!(bins.len(), super::histogram::BINS);
        let share: f64 = bins.iter().map(|b| b["this_week"].as_f64().unwrap()).sum();
        assert!((share - 100.0).abs() < 1e-6, "{share}");
        assert_eq!(j["runs"].as_array().unwrap().len(), 30);

        let (status, body) = call(&app, get("/api/v1/journeys/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        let o = json_of(&app, "/api/v1/overview").await;
        let names: Vec<&str> = map_array(&o["journeys"], |r| r["name"].as_str().unwrap());
        // The failing one first; one that never ran has no state yet.
        assert_eq!(names, ["checkout", "search"], "{o}");
        let month = o["journeys"][0]["month"].as_f64().unwrap();
        assert!((month - 100.0 * 29.0 / 30.0).abs() < 1e-9, "{o}");
        let o = json_of(&app, "/api/v1/overview?owner=search-team").await;
        assert_eq!(o["journeys"].as_array().unwrap().len(), 1);
        assert_eq!(o["journeys"][0]["name"], "search");
        let o = json_of(&app, "/api/v1/overview?location=us").await;
        assert_eq!(o["journeys"][0]["name"], "checkout");
        assert_eq!(o["journeys"].as_array().unwrap().len(), 1);

        let d = json_of(&app, "/api/v1/dependencies").await;
        assert_eq!(
            d["journeys"],
            json!({ "checkout": "failing", "search": "unknown" })
        );
        assert_eq!(d["hosts"], json!({ "127.0.0.1:9": "failing" }));
        assert_eq!(d["dependencies"], json!({ "payments": "failing" }));
        assert_eq!(
            d["journey_hosts"],
            json!([{ "journey": "checkout", "host": "127.0.0.1:9" }])
        );
        assert_eq!(
            d["host_dependencies"],
            json!([{ "host": "127.0.0.1:9", "dependency": "payments" }])
        );
    }
}
