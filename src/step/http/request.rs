//! The concrete request of one hop: the step's templates rendered once per attempt, then
//! rewritten for each redirect.
//!
//! Everything that could fail because of the journey (undefined variables, a URL that does
//! not parse after rendering, a header value with a newline) fails here, before any network
//! traffic, as a `Template` failure.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use url::Url;

use super::HttpError;
use super::transport::Protocol;
use crate::journey::redact::is_credential_header;
use crate::journey::template::{RenderError, Scope, Template};
use crate::journey::{HttpBody, HttpStep, JsonTemplate};
use crate::step::StepContext;

pub(crate) const USER_AGENT: &str = concat!("waymark/", env!("CARGO_PKG_VERSION"));

const HTTP_SCHEMES: [&str; 2] = ["http", "https"];

/// Headers that identify the caller, sent only to the host the step named. A `Host` override
/// is in the list too: it is meant for the step's own host, never for a redirect target.
fn host_bound_headers() -> [HeaderName; 4] {
    [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::HOST,
    ]
}

/// One hop's request, before protocol-specific framing (`Host`, request target).
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub method: Method,
    pub url: Url,
    /// Headers to send, defaults (`User-Agent`, `Accept-Encoding`, `Content-Type`,
    /// `Content-Length`) included.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RequestSpec {
    /// Renders every template of the step with the attempt's scope.
    pub fn render(step: &HttpStep, ctx: &StepContext<'_>) -> Result<RequestSpec, HttpError> {
        let scope = &ctx.scope;
        let url = render_url(step, scope)?;
        let mut headers = render_headers(&step.headers, scope)?;
        add_propagation_headers(&mut headers, &ctx.propagation_headers);
        let (body, content_type) = render_body(step.body.as_ref(), scope)?;
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        if step.compressed && !headers.contains_key(header::ACCEPT_ENCODING) {
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static(super::decode::ACCEPT_ENCODING),
            );
        }
        if let Some(ct) = content_type.filter(|_| !headers.contains_key(header::CONTENT_TYPE)) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        set_content_length(&mut headers, &step.method, &body);
        Ok(RequestSpec {
            method: step.method.clone(),
            url,
            headers,
            body,
        })
    }

    /// The hyper request for this hop. HTTP/1.1 gets an origin-form target and a `Host`
    /// header; HTTP/2 gets the absolute URL, from which hyper derives `:authority`.
    pub(super) fn to_request(&self, protocol: Protocol) -> Result<Request<Full<Bytes>>, HttpError> {
        let target = match protocol {
            Protocol::Http1 => &self.url[url::Position::BeforePath..url::Position::AfterQuery],
            Protocol::Http2 => &self.url[..url::Position::AfterQuery],
        };
        let uri: http::Uri = target
            .parse()
            .map_err(|e| HttpError::Template(format!("URL `{}` cannot be sent: {e}", self.url)))?;
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.clone();
        if protocol == Protocol::Http1 && !self.headers.contains_key(header::HOST) {
            request.headers_mut().insert(
                header::HOST,
                host_header(&self.url).map_err(|e| HttpError::Template(e.to_string()))?,
            );
        }
        Ok(request)
    }

    /// The request for the next hop after a redirect `status` to `location`.
    ///
    /// 303, and 301/302 after anything but GET/HEAD, become a GET without body (what browsers
    /// do, and what servers expect after a form POST); 307/308 repeat method and body.
    /// Credentials are dropped when the redirect leaves the host the step named.
    pub fn redirect(&self, status: StatusCode, location: &str) -> Result<RequestSpec, HttpError> {
        let url = self.url.join(location).map_err(|e| {
            HttpError::Protocol(format!("redirect to invalid Location `{location}`: {e}"))
        })?;
        let url = sendable(url, HTTP_SCHEMES)
            .map_err(|e| HttpError::Protocol(format!("redirect to `{location}`: {e}")))?;
        let mut next = self.clone();
        if switches_to_get(status, &self.method) {
            next.method = Method::GET;
            next.body = Bytes::new();
            next.headers.remove(header::CONTENT_TYPE);
            next.headers.remove(header::CONTENT_LENGTH);
        }
        if url.host_str() != self.url.host_str() {
            for name in host_bound_headers() {
                next.headers.remove(name);
            }
        }
        next.url = url;
        Ok(next)
    }
}

fn switches_to_get(status: StatusCode, method: &Method) -> bool {
    let keeps_method = *method == Method::GET || *method == Method::HEAD;
    match status {
        StatusCode::SEE_OTHER => *method != Method::HEAD,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => !keeps_method,
        _ => false,
    }
}

/// Renders the URL and appends the step's `query` pairs, form-encoded.
fn render_url(step: &HttpStep, scope: &Scope<'_>) -> Result<Url, HttpError> {
    let rendered = step.url.render(scope)?;
    let url = Url::parse(&rendered)
        .map_err(|e| HttpError::Template(format!("url `{rendered}` is not a valid URL: {e}")))?;
    let mut url = sendable(url, HTTP_SCHEMES)
        .map_err(|e| HttpError::Template(format!("url `{rendered}`: {e}")))?;
    if !step.query.is_empty() {
        let pairs = step
            .query
            .iter()
            .map(|(k, t)| Ok((k, t.render(scope)?)))
            .collect::<Result<Vec<_>, RenderError>>()?;
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url)
}

/// Why a URL cannot be sent by this client (the step's URL, a redirect's, a WebSocket's).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    #[error("not a valid URL: {0}")]
    Invalid(#[from] url::ParseError),
    #[error("scheme `{scheme}` is not supported (only {plain} and {secure})")]
    Scheme {
        scheme: String,
        plain: String,
        secure: String,
    },
    #[error("the URL has no host")]
    NoHost,
    #[error("credentials in the URL are not supported; set an Authorization header")]
    Credentials,
    /// The host and port do not make a `Host` header value.
    #[error("host of `{url}`: {source}")]
    Host {
        url: Url,
        source: http::header::InvalidHeaderValue,
    },
}

/// Checks that a URL is one this client can send: one of the `[plain, secure]` schemes
/// (`http`/`https`, or `ws`/`wss` for WebSocket), a host, no credentials; strips the fragment
/// (which never goes on the wire).
pub(crate) fn sendable(mut url: Url, [plain, secure]: [&str; 2]) -> Result<Url, UrlError> {
    if url.scheme() != plain && url.scheme() != secure {
        return Err(UrlError::Scheme {
            scheme: url.scheme().to_string(),
            plain: plain.to_string(),
            secure: secure.to_string(),
        });
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    url.set_fragment(None);
    Ok(url)
}

/// `Host` for HTTP/1.1 (and WebSocket upgrades): host, plus the port when it is not the
/// scheme's default.
pub(crate) fn host_header(url: &Url) -> Result<HeaderValue, UrlError> {
    let host = url.host_str().unwrap_or_default();
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::try_from(value).map_err(|source| UrlError::Host {
        url: url.clone(),
        source,
    })
}

pub(crate) fn render_headers(
    headers: &[(String, Template)],
    scope: &Scope<'_>,
) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::new();
    for (name, template) in headers {
        let value = template.render(scope)?;
        if is_credential_header(name) {
            scope.redactor.register_credential(&value);
        }
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| HttpError::Template(format!("`{name}` is not a valid header name")))?;
        // The value is not quoted in the message: it may hold a secret.
        let value = HeaderValue::try_from(value).map_err(|_| {
            HttpError::Template(format!(
                "header `{name}` renders to an invalid header value"
            ))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// Adds trace-propagation headers, except those the step sets itself: the journey author's
/// explicit choice wins. Invalid ones are skipped (they come from the runner, not the target).
pub(crate) fn add_propagation_headers(headers: &mut HeaderMap, propagation: &[(String, String)]) {
    let own: Vec<HeaderName> = headers.keys().cloned().collect();
    for (name, value) in propagation {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) if !own.contains(&name) => {
                headers.append(name, value);
            }
            (Ok(_), Ok(_)) => {}
            _ => tracing::warn!(header = %name, "skipping invalid propagation header"),
        }
    }
}

/// The body bytes and the `Content-Type` it implies (set only if the step sets none).
fn render_body(
    body: Option<&HttpBody>,
    scope: &Scope<'_>,
) -> Result<(Bytes, Option<&'static str>), HttpError> {
    Ok(match body {
        None => (Bytes::new(), None),
        Some(HttpBody::Raw(t)) => (Bytes::from(t.render(scope)?), None),
        Some(HttpBody::Json(j)) => (
            Bytes::from(render_json(j, scope)?.to_string()),
            Some("application/json"),
        ),
        Some(HttpBody::Form(fields)) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, t) in fields {
                form.append_pair(k, &t.render(scope)?);
            }
            (
                Bytes::from(form.finish()),
                Some("application/x-www-form-urlencoded"),
            )
        }
    })
}

pub(crate) fn render_json(
    template: &JsonTemplate,
    scope: &Scope<'_>,
) -> Result<Value, RenderError> {
    Ok(match template {
        JsonTemplate::Null => Value::Null,
        JsonTemplate::Bool(b) => Value::Bool(*b),
        JsonTemplate::Number(n) => Value::Number(n.clone()),
        JsonTemplate::String(t) => scope.render_json_leaf(t)?,
        JsonTemplate::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, scope))
                .collect::<Result<_, _>>()?,
        ),
        JsonTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, scope)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
    })
}

/// Always the real length: a stale `Content-Length` from the journey would desynchronise the
/// connection. Methods that carry a body get one even when it is empty (some servers answer
/// 411 otherwise); others only when they have a body.
fn set_content_length(headers: &mut HeaderMap, method: &Method, body: &Bytes) {
    let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if expects_body || !body.is_empty() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    } else {
        headers.remove(header::CONTENT_LENGTH);
    }
}
