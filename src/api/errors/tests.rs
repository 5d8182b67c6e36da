//! Error answers through the whole router (`Router::oneshot`), and axum's extractor
//! rejections through the middleware alone.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::test_support::{session_cookie, state};

/// Status, content type, `Allow`, and body of one request.
async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, String, String, String) {
    let res = app.clone().oneshot(request).await.unwrap();
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (kind, allow) = (header(header::CONTENT_TYPE), header(header::ALLOW));
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        kind,
        allow,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn request(method: &str, uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

#[track_caller]
fn assert_json_error(kind: &str, body: &str) -> String {
    assert!(kind.starts_with("application/json"), "{kind}: {body}");
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"].as_str().expect("an `error` string").to_string()
}

#[track_caller]
fn assert_error_page(kind: &str, body: &str, heading: &str) {
    assert!(kind.starts_with("text/html"), "{kind}: {body}");
    assert!(body.contains(&format!("<h1>{heading}</h1>")), "{body}");
    assert!(
        body.contains("/static/waymark.css"),
        "the site's page: {body}"
    );
}

/// Issue #19: unmatched routes and 405s under `/api` answered an empty body.
#[tokio::test]
async fn api_errors_are_json_whoever_answers() {
    let (state, _, _dir) = state(Some("t0ken")).await;
    let app = crate::api::router(state);

    let (status, kind, _, body) = answer(&app, request("GET", "/api/v1/nope", "", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        assert_json_error(&kind, &body),
        "there is nothing at this address"
    );

    let (status, kind, allow, body) =
        answer(&app, request("DELETE", "/api/v1/journeys", "", "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow.contains("GET"), "Allow is kept: {allow}");
    assert_json_error(&kind, &body);

    // Past the 2 MB body limit.
    let big = vec![b' '; 3 * 1024 * 1024];
    let mut post = request("POST", "/api/v1/incidents/1/ack", "application/json", big);
    post.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
    let (status, kind, _, body) = answer(&app, post).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        assert_json_error(&kind, &body).contains("length limit"),
        "{body}"
    );

    // Our own errors keep their words.
    let (status, kind, _, body) =
        answer(&app, request("GET", "/api/v1/journeys/nope/runs", "", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(assert_json_error(&kind, &body).contains("nope"), "{body}");
}

#[tokio::test]
async fn dashboard_and_status_errors_are_pages() {
    let (state, _, _dir) = state(None).await;
    let cookie = session_cookie(&state).await;
    let app = crate::api::router(state);

    let (status, kind, _, body) = answer(&app, request("GET", "/nope", "", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_page(&kind, &body, "404 Not Found");
    assert!(body.contains("Back to the status page"), "{body}");

    let mut page = request("GET", "/app/journeys/nope", "", "");
    page.headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let (status, kind, _, body) = answer(&app, page).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_page(&kind, &body, "404 Not Found");
    assert!(
        body.contains("nope") && body.contains("Back to the dashboard"),
        "{body}"
    );

    let (status, kind, _, body) = answer(&app, request("PUT", "/app/login", "", "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_page(&kind, &body, "405 Method Not Allowed");

    // The login form with a body that is not a form: 415, then 422 for missing fields.
    let (status, kind, _, body) = answer(
        &app,
        request("POST", "/app/login", "application/json", "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_error_page(&kind, &body, "415 Unsupported Media Type");

    let (status, kind, _, body) = answer(&app, request("GET", "/badge/nope.svg", "", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_page(&kind, &body, "404 Not Found");

    // A JSON document stays JSON.
    let (status, kind, _, _) = answer(&app, request("GET", "/nope.json", "", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("application/json"), "{kind}");
}

/// 415 and 422 from axum's `Json` extractor, and 422 from `Form`, through the middleware.
#[tokio::test]
async fn extractor_rejections_take_the_reader_s_shape() {
    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        n: u32,
    }
    let (state, _, _dir) = state(None).await;
    let app = Router::new()
        .route("/api/v1/x", post(|_: axum::Json<Body>| async {}))
        .route("/app/x", post(|_: axum::Form<Body>| async {}))
        .layer(axum::middleware::from_fn_with_state(state, super::shape));

    let (status, kind, _, body) =
        answer(&app, request("POST", "/api/v1/x", "text/plain", "{}")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        assert_json_error(&kind, &body).contains("Content-Type"),
        "{body}"
    );

    let (status, kind, _, body) = answer(
        &app,
        request("POST", "/api/v1/x", "application/json", r#"{"n":"x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(assert_json_error(&kind, &body).contains("n"), "{body}");

    let form = "application/x-www-form-urlencoded";
    let (status, kind, _, body) = answer(&app, request("POST", "/app/x", form, "m=1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_page(&kind, &body, "422 Unprocessable Entity");
    assert!(body.contains("missing field"), "{body}");
}
