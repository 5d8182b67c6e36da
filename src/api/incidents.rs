//! Incidents: `GET /api/v1/incidents` (`?state=open|acknowledged|resolved|active`,
//! `?journey=`, `?since=` RFC 3339, `?limit=`), `GET /api/v1/incidents/{id}` (with its
//! timeline, notifications and their delivery attempts), and, with the API token,
//! `POST /api/v1/incidents/{id}/ack` and `/resolve` (optional body `{"by": "name"}`).

use super::extract::{Path, Query};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::journeys::{authorize, parse_limit, parse_since};
use super::{ApiError, ApiResult, AppState, BadParameter, ErrorBody};
use crate::alert::IncidentEvent;
use crate::alert::engine::CommandError;
use crate::alert::{Incident, IncidentState, NotificationKind};
use crate::service::commands::{Action, CommandFailed};
use crate::store::alerts::{DeliveryAttempt, IncidentFilter, NotificationStatus};

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct IncidentsQuery {
    /// `open`, `acknowledged`, `resolved`, or `active` (open or acknowledged).
    #[param(value_type = Option<StateFilter>, inline)]
    state: Option<String>,
    /// Only this journey's incidents.
    journey: Option<String>,
    /// Only incidents not resolved before this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
    /// 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// The `state` filter's values (documentation only: the handler reads the raw text, so a
/// wrong value gets its own message).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum StateFilter {
    Open,
    Acknowledged,
    Resolved,
    Active,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<Incident>,
}

/// An incident with its timeline and notifications.
#[derive(Serialize, ToSchema)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub events: Vec<IncidentEvent>,
    pub notifications: Vec<NotificationDetail>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationDetail {
    pub id: uuid::Uuid,
    pub channel: String,
    pub kind: NotificationKind,
    pub created_at: DateTime<Utc>,
    pub status: NotificationStatus,
    pub attempts: Vec<DeliveryAttempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentChanged {
    pub incident: Incident,
}

/// Who acknowledges or resolves (`api` when absent).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    /// Not blank: at least one character other than white space.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    by: Option<String>,
}

/// Incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentsQuery),
    responses(
        (status = 200, body = IncidentList),
        BadParameter))]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<IncidentsQuery>,
) -> ApiResult<IncidentList> {
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
    let incidents = state.store.incidents().incidents(&filter).await?;
    Ok(Json(IncidentList { incidents }))
}

/// An incident id from a path: anything but a number is an incident that does not exist.
pub(super) fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no incident with id `{raw}`")))
}

/// The incident `id` with its timeline (the API's and the dashboard's incident page).
pub(super) async fn with_events(
    state: &AppState,
    id: i64,
) -> Result<(Incident, Vec<IncidentEvent>), ApiError> {
    let incidents = state.store.incidents();
    let incident = incidents
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident with id `{id}`")))?;
    let events = incidents.incident_events(id).await?;
    Ok((incident, events))
}

/// One incident with its timeline, and every notification with its delivery attempts.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "incident id")),
    responses(
        (status = 200, body = IncidentDetail),
        (status = 404, description = "no such incident", body = ErrorBody)))]
async fn one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<IncidentDetail> {
    let id = parse_id(&id)?;
    let (incident, events) = with_events(&state, id).await?;
    let mut notifications = Vec::new();
    for record in state.store.incidents().incident_notifications(id).await? {
        let attempts = state
            .store
            .incidents()
            .delivery_attempts(record.notification.id)
            .await?;
        let n = record.notification;
        notifications.push(NotificationDetail {
            id: n.id,
            channel: n.channel,
            kind: n.kind,
            created_at: n.created_at,
            status: record.status,
            attempts,
            next_attempt_at: record.next_attempt_at,
            last_error: record.last_error,
            delivered_at: record.delivered_at,
        });
    }
    Ok(Json(IncidentDetail {
        incident,
        events,
        notifications,
    }))
}

/// What acknowledging or resolving answers (for the document; the handlers answer
/// [`IncidentChanged`] or an [`ApiError`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, clippy::large_enum_variant)]
enum CommandAnswers {
    /// The incident as it is now.
    #[response(status = 200)]
    Changed(#[to_schema] IncidentChanged),
    /// A bad body.
    #[response(status = 400)]
    BadBody(ErrorBody),
    /// Missing or wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No API token is configured.
    #[response(status = 403)]
    Disabled(ErrorBody),
    /// No such incident.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Not open (acknowledge) or already resolved (resolve).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The incident engine cannot be reached: the service is stopping, or the leader does
    /// not answer a relayed command.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Declares the endpoints that ask the incident engine for a command on one incident: each
/// is [`command`] with its action, and answers as `CommandAnswers` documents.
macro_rules! command_endpoints {
    ($($(#[$doc:meta])* $name:ident = $path:literal => $action:expr;)+) => {$(
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "incidents",
            params(("id" = i64, Path, description = "incident id")),
            request_body(content = Option<CommandBody>, content_type = "application/json"),
            security(("bearer" = [])),
            responses(CommandAnswers))]
        async fn $name(
            state: State<AppState>,
            headers: HeaderMap,
            id: Path<String>,
            body: Bytes,
        ) -> ApiResult<IncidentChanged> {
            command(state, headers, id, body, $action).await
        }
    )+};
}

command_endpoints! {
    /// Acknowledges an open incident: notifications stop escalating.
    acknowledge = "/api/v1/incidents/{id}/ack" => Action::Acknowledge;
    /// Resolves an incident by hand (it reopens if the journey keeps failing).
    resolve = "/api/v1/incidents/{id}/resolve" => Action::Resolve;
}

async fn command(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    action: Action,
) -> ApiResult<IncidentChanged> {
    authorize(&state, &headers)?;
    let id = parse_id(&id)?;
    // No body, or `null`, is as good as `{}`.
    let body: CommandBody = if body.iter().all(u8::is_ascii_whitespace) {
        CommandBody::default()
    } else {
        serde_json::from_slice::<Option<CommandBody>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("body must be {{\"by\": \"name\"}}: {e}")))?
            .unwrap_or_default()
    };
    let by = body.by.unwrap_or_else(|| "api".to_string());
    if by.trim().is_empty() || by.len() > 200 {
        return Err(ApiError::BadRequest(
            "`by` must be 1 to 200 characters".into(),
        ));
    }
    let incident = send_command(&state, action, id, &by).await?;
    Ok(Json(IncidentChanged { incident }))
}

/// Acknowledges or resolves through the task that owns the incidents (API and dashboard).
pub(super) async fn send_command(
    state: &AppState,
    action: Action,
    id: i64,
    by: &str,
) -> Result<crate::alert::Incident, ApiError> {
    match state.alerts.send(action, id, by).await {
        Ok(incident) => Ok(incident),
        Err(CommandFailed::Refused(CommandError::NotFound(id))) => {
            Err(ApiError::NotFound(format!("no incident with id `{id}`")))
        }
        Err(CommandFailed::Refused(e @ CommandError::Conflict { .. })) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(CommandFailed::Unavailable(m)) => Err(ApiError::Unavailable(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, map_array, state};
    use super::*;
    use crate::alert::IncidentChange;
    use crate::alert::{Cause, Incident, Severity};
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};

    const TOKEN: &str = "token-0123456789abcdef";

    fn incident(journey: &str, state: IncidentState, minute: i64) -> Incident {
        let at = chrono::DateTime::from_timestamp(1_773_482_400 + minute * 60, 0).unwrap();
        Incident {
            id: 0,
            journey: journey.into(),
            severity: Severity::Failure,
            state,
            dedup_key: format!("waymark-{journey}-{minute}"),
            started_at: at,
            opened_at: at,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: (state == IncidentState::Resolved).then_some(at),
            resolved_by: None,
            reopened: 0,
            flapping: false,
            cause: Cause::default(),
            channels: vec!["log".into()],
            owner: None,
            runbook: None,
            tags: vec![],
        }
    }

    /// shop (resolved, 10:00), shop (open, 10:30), search (acknowledged, 10:40).
    async fn app() -> (Router, tempfile::TempDir) {
        let (state, _, dir) = state(Some(TOKEN)).await;
        for (journey, s, minute) in [
            ("shop", IncidentState::Resolved, 0),
            ("shop", IncidentState::Open, 30),
            ("search", IncidentState::Acknowledged, 40),
        ] {
            let change = IncidentChange {
                incident: incident(journey, s, minute),
                events: vec![],
                notifications: vec![],
                muted: vec![],
            };
            state
                .store
                .incidents()
                .save_incident(&change)
                .await
                .unwrap();
        }
        (super::super::router(state), dir)
    }

    async fn journeys_of(app: &Router, query: &str) -> Vec<(i64, String)> {
        let (status, body) = call(app, get(&format!("/api/v1/incidents{query}"))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        map_array(&v["incidents"], |i| {
            (
                i["id"].as_i64().unwrap(),
                i["journey"].as_str().unwrap().into(),
            )
        })
    }

    #[tokio::test]
    async fn lists_filter_by_state_journey_and_limit() {
        let (app, _dir) = app().await;
        let all = journeys_of(&app, "").await;
        assert_eq!(
            all,
            [(3, "search".into()), (2, "shop".into()), (1, "shop".into())]
        );
        assert_eq!(journeys_of(&app, "?state=active").await.len(), 2);
        assert_eq!(
            journeys_of(&app, "?state=resolved").await,
            [(1, "shop".into())]
        );
        assert_eq!(
            journeys_of(&app, "?journey=shop&limit=1").await,
            [(2, "shop".into())]
        );
        for (query, mentions) in [("?state=closed", "closed"), ("?since=today", "today")] {
            let (status, body) = call(&app, get(&format!("/api/v1/incidents{query}"))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert!(body.contains(mentions), "{body}");
        }
        let (status, body) = call(&app, get("/api/v1/incidents/2")).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["incident"]["state"], "open");
        assert_eq!(v["events"], json!([]));
        for id in ["99", "abc"] {
            let (status, _) = call(&app, get(&format!("/api/v1/incidents/{id}"))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        }
    }

    #[tokio::test]
    async fn commands_need_the_token_and_a_sane_body() {
        let (app, _dir) = app().await;
        let post = |token: Option<&str>, body: &str| {
            let mut b = Request::post("/api/v1/incidents/2/ack");
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            b.body(Body::from(body.to_string())).unwrap()
        };
        assert_eq!(call(&app, post(None, "")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(&app, post(Some("wrong"), "")).await.0,
            StatusCode::UNAUTHORIZED
        );
        for body in [r#"{"by": ""}"#, r#"{"who": "ada"}"#, "not json"] {
            let (status, text) = call(&app, post(Some(TOKEN), body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        }
        // No incident engine in this state (handler tests): unavailable, not a crash.
        let (status, _) = call(&app, post(Some(TOKEN), r#"{"by": "ada"}"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
