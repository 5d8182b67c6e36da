//! Server spans for the demo's two services, continuing the caller's W3C trace context, so
//! that a Waymark step span and the spans of the request it made form one trace.
//!
//! The middleware ([`server_span`]) hands the request's context to the handler as a
//! [`RequestSpan`] request extension rather than attaching it to the thread: an attached
//! context is thread-local and would not follow the handler across `.await`s on a
//! multi-threaded runtime. Handlers pass it on to [`super::db::Db::sql`] and to the payments
//! client, whose spans become its children.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;

/// The context of the request being served: holds its server span.
#[derive(Clone)]
pub(super) struct RequestSpan(pub Context);

impl<S: Send + Sync> FromRequestParts<S> for RequestSpan {
    type Rejection = std::convert::Infallible;

    /// Without the middleware (a router used bare), spans start new traces.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestSpan>()
            .cloned()
            .unwrap_or_else(|| RequestSpan(Context::new())))
    }
}

/// Wraps every route of a service (`Router::layer(from_fn_with_state(tracer, server_span))`):
/// a SERVER span `{METHOD} {route}` per request, child of the incoming `traceparent` when it is
/// valid.
pub(super) async fn server_span(
    State(tracer): State<SdkTracer>,
    mut request: Request,
    next: Next,
) -> Response {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    // Unmatched requests are named by their method alone: the raw path has unbounded
    // cardinality.
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", request.uri().path().to_string()),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    request.extensions_mut().insert(RequestSpan(cx.clone()));

    let response = next.run(request).await;

    let status = response.status();
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_attribute(KeyValue::new("error.type", status.as_str().to_string()));
        span.set_status(Status::error(status.to_string()));
    }
    span.end();
    response
}

/// Adds `traceparent` (and `tracestate`) for `cx`'s span to outgoing `headers`.
pub(super) fn inject(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
