//! `/app`: every journey, worst state first, with its availability and open incidents.

use axum::extract::{Query, State};
use axum::response::Response;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::base;
use crate::api::auth::SignedIn;
use crate::api::status::{JourneyState, Scope, Snapshot, snapshot};
use crate::api::{ApiError, AppState, ui};
use crate::service::catalog::Catalog;

/// `?tag=&owner=&location=`: only the journeys with that tag, owner, and location.
#[derive(Deserialize, Serialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OverviewQuery {
    /// Only journeys with this tag.
    #[serde(default)]
    tag: String,
    /// Only journeys of this owner.
    #[serde(default)]
    owner: String,
    /// Only journeys that ran from this location in the last 30 days.
    #[serde(default)]
    location: String,
}

/// One journey as the overview lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Row {
    name: String,
    state: JourneyState,
    /// Availability (percent) today, over 7 and over 30 UTC days; None without runs.
    today: Option<f64>,
    week: Option<f64>,
    month: Option<f64>,
    owner: Option<String>,
    tags: Vec<String>,
    open_incidents: usize,
    /// Whole-run p95 (ms) of each of the last 24 hours, oldest first.
    p95_hourly: Vec<Option<f64>>,
}

/// Every journey that passes `filter`, the worst state first.
pub(crate) fn rows(s: &Snapshot, journeys: &Catalog, filter: &OverviewQuery) -> Vec<Row> {
    let over = crate::api::status::snapshot::uptime_over;
    let mut rows: Vec<Row> = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .filter_map(|j| {
            let def = journeys.journeys.get(&j.name)?;
            let keep = (filter.tag.is_empty() || def.tags.contains(&filter.tag))
                && (filter.owner.is_empty() || def.owner.as_deref() == Some(filter.owner.as_str()))
                && (filter.location.is_empty() || j.locations.contains(&filter.location));
            keep.then(|| Row {
                name: j.name.clone(),
                state: j.state,
                today: over(&j.days, 1),
                week: over(&j.days, 7),
                month: j.uptime_30d,
                owner: def.owner.clone(),
                tags: def.tags.clone(),
                p95_hourly: j.p95_hourly.clone(),
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
    rows
}

pub(super) async fn overview(
    State(state): State<AppState>,
    user: SignedIn,
    Query(filter): Query<OverviewQuery>,
) -> Result<Response, ApiError> {
    let s = snapshot(&state, Scope::All).await?;
    let catalog = state.catalog().clone();
    let (mut tags, mut owners) = (BTreeSet::new(), BTreeSet::new());
    let locations: BTreeSet<&String> = s
        .groups
        .iter()
        .flat_map(|g| &g.journeys)
        .flat_map(|j| &j.locations)
        .collect();
    for j in catalog.journeys.values() {
        tags.extend(j.tags.iter().cloned());
        owners.extend(j.owner.iter().cloned());
    }
    let rows = rows(&s, &catalog, &filter);
    ui::page(
        "overview.html",
        context! {
            ..base(&state, &user, "Overview"),
            ..context! {
                rows => Value::from_serialize(&rows),
                tags => Value::from_serialize(&tags),
                owners => Value::from_serialize(&owners),
                locations => Value::from_serialize(&locations),
                filter => Value::from_serialize(&filter),
                // The rows come from the snapshot: its time, not the request's.
                generated_at => crate::format::timestamp(s.generated_at),
            }
        },
    )
}
