//! Logins, pages and forms of the dashboard, through the router.

use crate::alert::IncidentChange;
use crate::alert::{Cause, Incident, Severity};
use crate::api::test_support::{call, get, state_with};
use crate::config::DashboardUser;
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
    let (state, _, _dir) = state_with(|c| {
        c.dashboard.users = vec![DashboardUser {
            name: "ada".into(),
            password_hash: crate::auth::PasswordHash::of(PASSWORD),
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
        .incidents()
        .save_incident(&IncidentChange {
            incident: incident.clone(),
            events: vec![],
            notifications: vec![],
            muted: vec![],
        })
        .await
        .unwrap();
    let app = crate::api::router(state.clone());

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
        crate::store::Store::Sqlite(p) => sqlx::query_scalar("SELECT token_sha256 FROM sessions")
            .fetch_all(p)
            .await
            .unwrap(),
        crate::store::Store::Postgres(p) => sqlx::query_scalar("SELECT token_sha256 FROM sessions")
            .fetch_all(p)
            .await
            .unwrap(),
    }
}

/// Issue #19: a journey named `payments/v2 health` got dashboard links that 404ed.
#[tokio::test]
async fn journey_names_with_slashes_and_spaces_link_to_their_page() {
    let (state, _, _dir) = crate::api::test_support::state(None).await;
    let (journey, _) = crate::api::test_support::catalog_with(
        "name: payments/v2 health\nsteps:\n  - name: ping\n    http: { url: \"http://127.0.0.1:9/\" }\n",
    );
    state.set_journeys([(*journey).clone()]);
    let cookie = crate::api::test_support::session_cookie(&state).await;
    let app = crate::api::router(state);
    let (status, overview) = call(&app, with_cookie("/app", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let link = "href=\"/app/journeys/payments%2Fv2%20health\"";
    assert!(overview.contains(link), "{overview}");
    // The route takes the encoded name as one segment and decodes it back.
    let (status, page) = call(
        &app,
        with_cookie("/app/journeys/payments%2Fv2%20health", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // minijinja escapes `/` in text.
    assert!(page.contains("<h1>payments&#x2f;v2 health "), "{page}");
    // Every page says when its data is from.
    for html in [&overview, &page] {
        assert!(
            html.contains(" · updated 20") && html.contains(" UTC</p></footer>"),
            "{html}"
        );
    }
}
