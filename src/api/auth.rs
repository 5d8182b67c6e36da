//! Logins for the dashboard (`/app`): users from `[dashboard]` with Argon2id password hashes,
//! sessions in the store, and a CSRF token per session.
//!
//! - The session cookie holds 32 random bytes; the store keeps only their SHA-256, so a copy of
//!   the database opens no session. Cookie: `HttpOnly; Secure; SameSite=Lax; Path=/`.
//! - Every state-changing form carries the session's CSRF token, compared in constant time;
//!   `Origin` (when the browser sends it) must be this host. The login form, which has no
//!   session yet, relies on the `Origin` check and SameSite.
//! - A wrong user name costs the same Argon2 verification as a wrong password, so answers do
//!   not tell which names exist.

use crate::auth::PasswordHash;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use minijinja::context;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::journeys::same_secret;
use super::{ApiError, AppState, ui};
use crate::store::sessions::Session;

pub const COOKIE: &str = "waymark_session";

/// Verified against when the user name is unknown (a hash of a random password), so that an
/// unknown name takes as long as a wrong password.
static DECOY: std::sync::LazyLock<PasswordHash> =
    std::sync::LazyLock::new(|| PasswordHash::of(&random_hex()));

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// A logged-in user, for `/app` handlers; without a valid session the request is sent to the
/// login page (and back afterwards).
pub struct SignedIn {
    pub username: String,
    pub csrf_token: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/app", |p| p.as_str());
            Redirect::to(&format!(
                "/app/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ))
            .into_response()
        };
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        match state
            .store
            .sessions()
            .session(&token_hash(&token), Utc::now())
            .await
        {
            Ok(Some(s)) => Ok(SignedIn {
                username: s.username,
                csrf_token: s.csrf_token,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

impl SignedIn {
    /// Checks a form's CSRF token and the request's origin.
    pub fn check(&self, headers: &HeaderMap, csrf: &str) -> Result<(), ApiError> {
        same_origin(headers)?;
        if same_secret(csrf.as_bytes(), self.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form has expired: reload the page and try again".into(),
            ))
        }
    }
}

/// `Origin`, when present, must be this host (http or https).
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if !host.is_empty() && origin_host == host {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "cross-site form submissions are refused".into(),
        ))
    }
}

/// Only paths of the dashboard (and its digest pages): never an open redirect.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n.starts_with("/app") || n.starts_with("/digests"))
                && !n.starts_with("//")
                && !n.contains('\\') =>
        {
            n
        }
        _ => "/app",
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
) -> Result<Response, ApiError> {
    login_form(&state, safe_next(q.next.as_deref()), None)
}

fn login_form(state: &AppState, next: &str, error: Option<&str>) -> Result<Response, ApiError> {
    ui::page(
        "login.html",
        context! {
            site => minijinja::Value::from_serialize(&state.config.status_page),
            next,
            error,
            no_users => state.config.dashboard.users.is_empty(),
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let next = safe_next(form.next.as_deref()).to_string();
    let client = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Err(throttled) = state
        .login
        .admit(client, &form.username, std::time::Instant::now())
    {
        // Rounded up: a client that waits as long as it is told gets in.
        let wait = (throttled.retry_after.as_secs_f64().ceil() as u64).max(1);
        tracing::warn!(user = %form.username, ?client, wait_s = wait, "dashboard login throttled");
        let message = format!("Too many attempts. Try again in {wait} s.");
        let mut page = login_form(&state, &next, Some(&message))?;
        *page.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(page);
    }
    let user = state
        .config
        .dashboard
        .users
        .iter()
        .find(|u| u.name == form.username);
    // An unknown name is verified against the decoy: it takes as long as a wrong password.
    let hash = user.map_or(&*DECOY, |u| &u.password_hash);
    let ok = state.login.verify(hash, &form.password).await && user.is_some();
    if ok {
        state.login.succeeded(client, &form.username);
    } else {
        tracing::warn!(user = %form.username, "dashboard login refused");
        // 200, not 401: the form is shown again as a page (browsers log 4xx pages as errors).
        return login_form(&state, &next, Some("Wrong user name or password."));
    }
    let token = random_hex();
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.config.dashboard.session_ttl)
        .unwrap_or(chrono::Duration::hours(12));
    state
        .store
        .sessions()
        .create_session(
            &token_hash(&token),
            &Session {
                username: form.username.clone(),
                csrf_token: random_hex(),
                created_at: now,
                expires_at: now + ttl,
            },
        )
        .await?;
    tracing::info!(user = %form.username, "dashboard login");
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={}",
        ttl.num_seconds()
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    user: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    user.check(&headers, &form.csrf)?;
    if let Some(token) = cookie_token(&headers) {
        state
            .store
            .sessions()
            .delete_session(&token_hash(&token))
            .await?;
    }
    let mut response = Redirect::to("/app/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "waymark_session=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0",
        ),
    );
    Ok(response)
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched
/// case-insensitively (RFC 9110 §11.1: `bearer`, `BEARER` are the same scheme), and any run of
/// spaces may separate it from the token.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #19: `Authorization: bearer …` was refused; the scheme is case-insensitive.
    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let token = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_token(&h).map(str::to_string)
        };
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k "] {
            assert_eq!(token(value).as_deref(), Some("t0k"), "{value}");
        }
        for value in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer ",
            "Bearert0k",
            "t0k",
        ] {
            assert_eq!(token(value), None, "{value}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = PasswordHash::of("correct horse");
        let guard = super::super::login_guard::LoginGuard::new();
        assert!(guard.verify(&hash, "correct horse").await);
        assert!(!guard.verify(&hash, "Correct horse").await);
        assert!(!guard.verify(&DECOY, "correct horse").await);
    }

    #[test]
    fn next_stays_in_the_dashboard() {
        for (given, kept) in [
            (Some("/app/incidents/3"), "/app/incidents/3"),
            (Some("/digests/7"), "/digests/7"),
            (Some("https://evil.example/app"), "/app"),
            (Some("//evil.example/app"), "/app"),
            (Some("/app\\..\\x"), "/app"),
            (None, "/app"),
        ] {
            assert_eq!(safe_next(given), kept);
        }
    }

    #[test]
    fn cross_site_forms_are_refused() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(same_origin(&headers(Some("http://127.0.0.1:8080"))).is_ok());
        assert!(same_origin(&headers(None)).is_ok());
        assert!(same_origin(&headers(Some("https://evil.example"))).is_err());
        assert!(same_origin(&headers(Some("null"))).is_err());
    }
}
