//! `/app/incidents`, one incident, and its acknowledge and resolve forms.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::base;
use crate::alert::IncidentState;
use crate::api::auth::{CsrfForm, SignedIn};
use crate::api::incidents::parse_id;
use crate::api::{ApiError, AppState, ui};
use crate::service::commands::Action;
use crate::store::alerts::IncidentFilter;

#[derive(Deserialize, Serialize)]
pub(super) struct IncidentsQuery {
    #[serde(default = "active")]
    state: String,
    #[serde(default)]
    journey: String,
}

fn active() -> String {
    "active".into()
}

pub(super) async fn list(
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
        .incidents()
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
pub(super) struct Message {
    done: Option<String>,
}

pub(super) async fn one(
    State(state): State<AppState>,
    user: SignedIn,
    Path(id): Path<String>,
    Query(message): Query<Message>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (i, events) = crate::api::incidents::with_events(&state, id).await?;
    let notifications: Vec<serde_json::Value> = state
        .store
        .incidents()
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
pub(super) async fn command(
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
    crate::api::incidents::send_command(&state, action, id, &user.username).await?;
    let done = match action {
        Action::Acknowledge => "ack",
        Action::Resolve => "resolve",
    };
    Ok(Redirect::to(&format!("/app/incidents/{id}?done={done}")).into_response())
}
