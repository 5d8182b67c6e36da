//! One shape for every error answer, whoever produced it: axum's own rejections (an unmatched
//! route's empty 404, a 405 with its `Allow`, 413 from the body limit, 415 and 422 from the
//! `Json` and `Form` extractors, all plain text) and our handlers' [`ApiError`]s.
//!
//! - Under `/api` (and for `.json` documents) the answer is JSON `{"error": …}`, as
//!   [`ApiError`] answers, so API clients parse one format.
//!   Probes and `/metrics` count as API.
//! - Everywhere else (the status page, `/app`, `/digests`) a person is reading: the answer is
//!   the `error.html` page, with the security headers of every page. A JSON error from a
//!   handler there (an unknown journey, a missing badge) becomes that page too.
//!
//! Status and headers (`Allow`, `WWW-Authenticate`) are kept; only the body changes.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use super::{AppState, ErrorBody, ui};

/// Error bodies longer than this are not read back (axum's are a line).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Who reads the answer to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// A program (the API, `.json` documents, probes, metrics): JSON.
    Program,
    /// A person on a page of the dashboard (`/app`, `/digests`): HTML.
    Dashboard,
    /// A person on the public side (status page, badges, feeds): HTML.
    Public,
}

fn reader(path: &str) -> Reader {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let machine = ["/api", "/metrics", "/healthz", "/readyz"];
    if machine.iter().any(|p| under(p)) || path.ends_with(".json") {
        Reader::Program
    } else if under("/app") || under("/digests") {
        Reader::Dashboard
    } else {
        Reader::Public
    }
}

/// The middleware: reshapes error answers for who reads them.
pub(super) async fn shape(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let reader = reader(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let kind = content_kind(&response);
    let reshape = match (reader, kind) {
        (_, Kind::Html) | (Reader::Program, Kind::Json) => false,
        (Reader::Dashboard | Reader::Public, Kind::Json) | (_, Kind::Plain) => true,
    };
    if !reshape {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let message = message(status, kind, &bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let shaped = match reader {
        Reader::Program => axum::Json(ErrorBody { error: message }).into_response(),
        Reader::Dashboard | Reader::Public => page(&state, status, &message, reader),
    };
    let (shaped_parts, shaped_body) = shaped.into_parts();
    // The new body's own headers (type, CSP, ...) over the original ones.
    for (name, value) in &shaped_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, shaped_body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Html,
    /// Plain text or no body: axum's own answers.
    Plain,
}

fn content_kind(response: &Response) -> Kind {
    let value = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if value.starts_with("application/json") {
        Kind::Json
    } else if value.starts_with("text/html") {
        Kind::Html
    } else {
        Kind::Plain
    }
}

/// What went wrong, in a sentence: the body axum or the handler gave, or the status's name.
fn message(status: StatusCode, kind: Kind, body: &[u8]) -> String {
    let text = match kind {
        Kind::Json => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_default(),
        Kind::Html | Kind::Plain => String::from_utf8_lossy(body).trim().to_string(),
    };
    if !text.is_empty() {
        return text;
    }
    match status {
        StatusCode::NOT_FOUND => "there is nothing at this address".into(),
        StatusCode::METHOD_NOT_ALLOWED => "this address does not accept that method".into(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    }
}

/// The `error.html` page; a plain-text fallback if the template itself fails.
fn page(state: &AppState, status: StatusCode, message: &str, reader: Reader) -> Response {
    let (home, home_label) = match reader {
        Reader::Dashboard => ("/app", "Back to the dashboard"),
        Reader::Program | Reader::Public => ("/", "Back to the status page"),
    };
    let context = context! {
        site => Value::from_serialize(&state.config.status_page),
        status => status.as_u16(),
        reason => status.canonical_reason().unwrap_or("Error"),
        message,
        home,
        home_label,
    };
    match ui::page("error.html", context) {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "the error page failed to render");
            let mut response = Response::new(Body::from(message.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests;
