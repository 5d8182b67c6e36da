//! Feedback digests: `GET /api/v1/digests` (`?owner=`, `?limit=`), `GET /api/v1/digests/{id}`
//! (the figures as JSON, with each channel's delivery), and, after logging in to the
//! dashboard, the pages `GET /digests` and `GET /digests/{id}` (the digest as its email shows
//! it, charts inline).
//!
//! The pages carry a strict Content-Security-Policy: no scripts at all, images only as `data:`
//! URIs, the inline styles the email's HTML needs, and no framing.

use super::extract::{Path, Query};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::SignedIn;
use super::journeys::parse_limit;
use super::{ApiError, ApiResult, AppState, BadParameter, ErrorBody};
use crate::digest::Digest;
use crate::digest::render::{self, Images, LinkBase};
use crate::format;
use crate::store::digest::{DigestDelivery, DigestMeta, StoredDigest};

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
}

/// The pages.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/digests", get(list_page))
        .route("/digests/{id}", get(page))
        .with_state(state)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DigestsQuery {
    /// Only this owner's digests.
    owner: Option<String>,
    /// 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DigestList {
    pub digests: Vec<DigestHead>,
}

/// A digest without its figures, for listings.
#[derive(Serialize, ToSchema)]
pub struct DigestHead {
    #[serde(flatten)]
    pub meta: DigestMeta,
    /// The digest's headline figures.
    #[schema(value_type = Option<crate::digest::model::Summary>)]
    pub summary: Option<serde_json::Value>,
}

impl From<&StoredDigest> for DigestHead {
    fn from(d: &StoredDigest) -> DigestHead {
        DigestHead {
            meta: d.meta.clone(),
            summary: d.body.get("summary").cloned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DigestDetail {
    #[serde(flatten)]
    pub head: DigestHead,
    pub deliveries: Vec<DigestDelivery>,
    /// Every figure of the digest (see docs/digest.md).
    #[schema(value_type = crate::digest::Digest)]
    pub digest: serde_json::Value,
}

/// Feedback digests, newest period first.
#[utoipa::path(get, path = "/api/v1/digests", tag = "digests", params(DigestsQuery),
    responses(
        (status = 200, body = DigestList),
        BadParameter))]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<DigestsQuery>,
) -> ApiResult<DigestList> {
    let digests = listed(&state, &q).await?;
    Ok(Json(DigestList {
        digests: digests.iter().map(DigestHead::from).collect(),
    }))
}

/// The digests `q` asks for.
async fn listed(state: &AppState, q: &DigestsQuery) -> Result<Vec<StoredDigest>, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let digests = state.store.digests();
    Ok(digests.digests(q.owner.as_deref(), limit).await?)
}

async fn stored(state: &AppState, raw: &str) -> Result<StoredDigest, ApiError> {
    let missing = || ApiError::NotFound(format!("no digest with id `{raw}`"));
    let id: i64 = raw.parse().map_err(|_| missing())?;
    state.store.digests().digest(id).await?.ok_or_else(missing)
}

/// One digest with every figure and each channel's delivery.
#[utoipa::path(get, path = "/api/v1/digests/{id}", tag = "digests",
    params(("id" = i64, Path, description = "digest id")),
    responses(
        (status = 200, body = DigestDetail),
        (status = 404, description = "no such digest", body = ErrorBody)))]
async fn one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<DigestDetail> {
    let d = stored(&state, &id).await?;
    let deliveries = state.store.digests().digest_deliveries(d.meta.id).await?;
    Ok(Json(DigestDetail {
        head: DigestHead::from(&d),
        deliveries,
        digest: d.body,
    }))
}

const PAGE_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
                        frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn html_page(body: String) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

fn links(state: &AppState) -> LinkBase {
    LinkBase {
        dashboard_url: state
            .config
            .alerting
            .dashboard_url
            .as_deref()
            .map(str::to_string),
        trace_url: state
            .config
            .alerting
            .trace_url
            .as_deref()
            .map(str::to_string),
    }
}

async fn page(
    State(state): State<AppState>,
    _user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = stored(&state, &id).await?;
    let digest: Digest = serde_json::from_value(d.body).map_err(|source| {
        ApiError::Internal(super::Internal::Digest {
            id: d.meta.id,
            source,
        })
    })?;
    Ok(html_page(
        render::render(&digest, &links(&state), Images::DataUri).html,
    ))
}

async fn list_page(
    State(state): State<AppState>,
    _user: SignedIn,
    Query(q): Query<DigestsQuery>,
) -> Result<Response, ApiError> {
    let digests = listed(&state, &q).await?;
    let digests: Vec<minijinja::Value> = digests
        .iter()
        .map(|d| {
            minijinja::context! {
                id => d.meta.id,
                owner => &d.meta.owner,
                from => format::date(d.meta.from),
                to => format::date(d.meta.to),
                availability => format::optional(d.body["summary"]["availability"].as_f64(), format::percent),
                incidents => d.body["summary"]["incidents"].as_u64().unwrap_or(0),
                sent => d.meta.sent_at.map_or("not yet".to_string(), format::timestamp_minutes),
            }
        })
        .collect();
    let html = super::ui::render("digests.html", minijinja::context! { digests })?;
    Ok(html_page(html))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::{call, session_cookie, state};
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    #[tokio::test]
    async fn digests_as_json_and_as_pages() {
        let (state, _, _dir) = state(None).await;
        let app = super::super::router(state.clone());
        let res = {
            use tower::ServiceExt;
            app.clone()
                .oneshot(crate::api::test_support::get("/digests/1"))
                .await
                .unwrap()
        };
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "the pages need a login"
        );
        assert_eq!(
            res.headers()[header::LOCATION],
            "/app/login?next=%2Fdigests%2F1"
        );
        let cookie = session_cookie(&state).await;
        let get = |uri: &str| {
            axum::http::Request::get(uri)
                .header(header::COOKIE, &cookie)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let (status, body) = call(&app, get("/digests")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("No digest yet"), "{body}");

        let t = |d: u32| {
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, d, 9, 0, 0).unwrap()
        };
        let digest = crate::digest::model::tests::sample("<b>shop</b>", t(16), t(30));
        let body = serde_json::to_value(&digest).unwrap();
        let (id, _) = state
            .store
            .digests()
            .save_digest(&digest.owner, t(16), t(30), t(30), &body)
            .await
            .unwrap();

        let (status, list) = call(&app, get("/api/v1/digests?owner=%3Cb%3Eshop%3C%2Fb%3E")).await;
        assert_eq!(status, StatusCode::OK);
        let list: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list["digests"][0]["id"], id);
        assert_eq!(list["digests"][0]["summary"]["runs"], 1344);
        let (_, other) = call(&app, get("/api/v1/digests?owner=nobody")).await;
        assert_eq!(other, "{\"digests\":[]}");

        let (status, one) = call(&app, get(&format!("/api/v1/digests/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        let one: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(one["digest"], body);
        assert_eq!(one["deliveries"], json!([]));
        assert_eq!(one["sent_at"], Value::Null);

        let res = {
            use tower::ServiceExt;
            app.clone()
                .oneshot(get(&format!("/digests/{id}")))
                .await
                .unwrap()
        };
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], PAGE_CSP);
        let (_, html) = call(&app, get(&format!("/digests/{id}"))).await;
        assert!(
            html.contains("Feedback digest: &lt;b&gt;shop&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("src=\"data:image/png;base64,"));
        let (_, list) = call(&app, get("/digests")).await;
        assert!(
            list.contains(&format!("href=\"/digests/{id}\"")) && list.contains("&lt;b&gt;shop")
        );

        for missing in ["/api/v1/digests/999", "/api/v1/digests/x", "/digests/999"] {
            assert_eq!(
                call(&app, get(missing)).await.0,
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
        assert_eq!(
            call(&app, get("/api/v1/digests?limit=x")).await.0,
            StatusCode::BAD_REQUEST
        );
    }
}
