//! Incidents: `GET /api/v1/incidents` (`?state=open|acknowledged|resolved|active`,
//! `?journey=`, `?since=` RFC 3339, `?limit=`), `GET /api/v1/incidents/{id}` (with its
//! timeline, notifications and their delivery attempts), and, with the API token,
//! `POST /api/v1/incidents/{id}/ack` and `/resolve` (optional body `{"by": "name"}`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::journeys::{authorize, parse_limit, parse_since};
use super::{ApiError, AppState};
use crate::alert::IncidentState;
use crate::alert::commands::{Action, CommandFailed};
use crate::alert::engine::CommandError;
use crate::store::alerts::IncidentFilter;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(one))
        .route("/api/v1/incidents/{id}/ack", post(acknowledge))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .with_state(state)
}

#[derive(Deserialize)]
struct IncidentsQuery {
    state: Option<String>,
    journey: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<IncidentsQuery>,
) -> Result<Json<Value>, ApiError> {
    use IncidentState::*;
    let states = match q.state.as_deref() {
        None => vec![],
        Some("open") => vec![Open],
        Some("acknowledged") => vec![Acknowledged],
        Some("resolved") => vec![Resolved],
        Some("active") => vec![Open, Acknowledged],
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state must be open, acknowledged, resolved or active, not `{other}`"
            )));
        }
    };
    let filter = IncidentFilter {
        journey: q.journey,
        states,
        since: parse_since(q.since.as_deref())?,
        limit: parse_limit(q.limit.as_deref())?,
    };
    let incidents = state.store.incidents(&filter).await?;
    Ok(Json(json!({ "incidents": incidents })))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no incident with id `{raw}`")))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident with id `{id}`")))?;
    let events = state.store.incident_events(id).await?;
    let mut notifications = Vec::new();
    for record in state.store.incident_notifications(id).await? {
        let attempts = state
            .store
            .delivery_attempts(record.notification.id)
            .await?;
        let n = &record.notification;
        notifications.push(json!({
            "id": n.id,
            "channel": n.channel,
            "kind": n.kind,
            "created_at": n.created_at,
            "status": record.status,
            "attempts": attempts,
            "next_attempt_at": record.next_attempt_at,
            "last_error": record.last_error,
            "delivered_at": record.delivered_at,
        }));
    }
    Ok(Json(json!({
        "incident": incident,
        "events": events,
        "notifications": notifications,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    by: Option<String>,
}

async fn acknowledge(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    command(state, headers, id, body, Action::Acknowledge).await
}

async fn resolve(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    command(state, headers, id, body, Action::Resolve).await
}

async fn command(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    action: Action,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let id = parse_id(&id)?;
    let body: CommandBody = if body.iter().all(u8::is_ascii_whitespace) {
        CommandBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("body must be {{\"by\": \"name\"}}: {e}")))?
    };
    let by = body.by.unwrap_or_else(|| "api".to_string());
    if by.trim().is_empty() || by.len() > 200 {
        return Err(ApiError::BadRequest(
            "`by` must be 1 to 200 characters".into(),
        ));
    }
    let Some(alerts) = &state.alerts else {
        return Err(ApiError::Unavailable("alerting is not running".into()));
    };
    match alerts.send(action, id, &by).await {
        Ok(incident) => Ok(Json(json!({ "incident": incident }))),
        Err(CommandFailed::Refused(CommandError::NotFound(id))) => {
            Err(ApiError::NotFound(format!("no incident with id `{id}`")))
        }
        Err(CommandFailed::Refused(e @ CommandError::Conflict { .. })) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(CommandFailed::Unavailable(m)) => Err(ApiError::Unavailable(m)),
    }
}
