//! The `/api/v1` routes and their OpenAPI document (`GET /api/v1/openapi.json`).
//!
//! Routes are registered through utoipa-axum from each handler's `#[utoipa::path]` and the
//! types it answers with, so the document is made from the same code that serves: an
//! undocumented route cannot be served, and a changed answer changes the document.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use super::{AppState, anomalies, digests, incidents, journeys, nodes, status, views};

pub const PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waymark API",
        description = "Journeys, runs, anomalies, incidents and digests of a Waymark service. \
                       Reads are open; writes take `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerToken),
    tags(
        (name = "journeys", description = "Journeys, their runs, and manual runs"),
        (name = "anomalies", description = "Anomaly episodes of the step baselines"),
        (name = "incidents", description = "Incidents, their timelines and notifications"),
        (name = "digests", description = "Feedback digests"),
        (name = "dashboard", description = "The dashboard's views: overview, journey, dependency map"),
        (name = "status", description = "The public status page (journeys marked `public: true`)"),
        (name = "nodes", description = "The nodes sharing the database, and which one leads"),
    )
)]
struct Doc;

/// The `bearer` security scheme the write endpoints name.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .merge(journeys::api())
        .merge(anomalies::api())
        .merge(incidents::api())
        .merge(digests::api())
        .merge(views::api())
        .merge(nodes::api())
        .merge(status::api())
}

pub fn router(state: AppState) -> Router {
    let (router, doc) = api().split_for_parts();
    let json: Arc<str> = doc
        .to_json()
        .expect("the OpenAPI document serializes")
        .into();
    router
        .route(
            PATH,
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, state};
    use axum::http::StatusCode;
    use serde_json::Value;

    #[tokio::test]
    async fn the_served_document_describes_every_api_route() {
        let (state, _, _dir) = state(None).await;
        let app = super::super::router(state);
        let (status, body) = call(&app, get(super::PATH)).await;
        assert_eq!(status, StatusCode::OK);
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        let mut operations: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect();
        operations.sort();
        assert_eq!(
            operations,
            [
                "GET /api/v1/anomalies",
                "GET /api/v1/dependencies",
                "GET /api/v1/digests",
                "GET /api/v1/digests/{id}",
                "GET /api/v1/incidents",
                "GET /api/v1/incidents/{id}",
                "GET /api/v1/journeys",
                "GET /api/v1/journeys/{name}",
                "GET /api/v1/journeys/{name}/runs",
                "GET /api/v1/nodes",
                "GET /api/v1/overview",
                "GET /api/v1/runs/{id}",
                "GET /status.json",
                "POST /api/v1/incidents/{id}/ack",
                "POST /api/v1/incidents/{id}/resolve",
                "POST /api/v1/journeys/{name}/run",
            ]
        );
        // Every operation answers errors in one documented shape, and writes name the token.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path}"
                );
                for (code, r) in responses.iter().filter(|(c, _)| !c.starts_with('2')) {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {code}"
                    );
                }
                assert_eq!(
                    op.get("security").is_some(),
                    method == "post",
                    "{method} {path}"
                );
            }
        }
        let schemas = &doc["components"]["schemas"];
        // A run's steps are described down to their timings.
        assert!(schemas["StepResult"]["properties"]["timings"].is_object());
        assert_eq!(
            schemas["Timings"]["properties"]["ttfb"]["type"],
            serde_json::json!(["number", "null"])
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        // Every reference resolves (a response type not registered is a dangling `$ref`).
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 10, "{refs:?}");
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").expect(&r);
            assert!(schemas.get(name).is_some(), "dangling reference {r}");
        }
        // A blank `by` is refused, so the document says so.
        let by = &schemas["CommandBody"]["properties"]["by"];
        assert_eq!(by["pattern"], "\\S", "{by}");
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
