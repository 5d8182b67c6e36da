//! HTTP step executor: one attempt of an [`HttpStep`], from rendering its templates to the
//! last byte of the final response.
//!
//! This module owns the whole client path (DNS, TCP, TLS, hyper handshake, redirects, capped
//! body reads) instead of using a pooled client, because synthetic monitoring reports each
//! phase separately and a pool hides or merges them. Every attempt opens fresh connections
//! (one per redirect hop) and tears them down when it returns, so nothing outlives it.
//!
//! Layout:
//! - this file: the attempt as a whole, the redirect loop, and filling [`Attempt`];
//! - `request`: turning the step's templates into a concrete request, and redirect rewriting;
//! - `transport`: the hop's connection (over `step::net` and `step::tls_client`), the hyper
//!   handshake, sending, and the capped body read;
//! - `decode`: gzip, deflate and br bodies, decoded as they stream in, capped decoded.

pub(crate) mod decode;
pub(crate) mod request;
pub(crate) mod transport;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::net::Budget;
use super::{
    Attempt, Failure, FailureClass, RequestSummary, ResponseSummary, StepContext, StepExecutor,
    Timings, finish, summarize_headers,
};
use crate::journey::HttpStep;
use crate::journey::template::RenderError;
use request::RequestSpec;

impl StepExecutor for HttpStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let budget = Budget::new(ctx.deadline);
        let spec = match RequestSpec::render(self, ctx) {
            Ok(spec) => spec,
            Err(HttpError::Render(e)) => return Attempt::from(e),
            Err(e) => return Attempt::failed(e.class(), e.to_string()),
        };
        let mut attempt = Attempt::default();
        let outcome = exchange(self, spec, &budget, &mut attempt).await;
        finish(&mut attempt, budget.elapsed());
        if let Err(e) = outcome {
            attempt.failure = Some(e.into());
        }
        attempt
    }
}

/// Why an attempt stopped early; it becomes a [`Failure`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The rendered request cannot be sent (bad URL, invalid header value).
    #[error("{0}")]
    Template(String),
    /// Already classified by the shared plumbing: DNS, connect, TLS, or the deadline.
    #[error("{}", .0.message)]
    Failed(Failure),
    #[error("{0}")]
    Protocol(String),
    #[error("response body is larger than max_body_bytes ({limit} bytes): {detail}")]
    BodyTooLarge { limit: u64, detail: String },
    #[error("more than {max} redirects (next Location: {next})")]
    TooManyRedirects { max: u32, next: String },
}

impl HttpError {
    pub(crate) fn class(&self) -> FailureClass {
        match self {
            HttpError::Render(_) | HttpError::Template(_) => FailureClass::Template,
            HttpError::Failed(f) => f.class,
            HttpError::Protocol(_) => FailureClass::Protocol,
            HttpError::BodyTooLarge { .. } => FailureClass::BodyTooLarge,
            HttpError::TooManyRedirects { .. } => FailureClass::TooManyRedirects,
        }
    }
}

impl From<Failure> for HttpError {
    fn from(f: Failure) -> HttpError {
        HttpError::Failed(f)
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Failure {
        match e {
            HttpError::Failed(f) => f,
            e => super::failure(e.class(), e.to_string()),
        }
    }
}

/// Runs request hops until a response that is not a followed redirect, then reads its body.
/// Facts, timings and summaries are written into `attempt` as soon as they are known, so a
/// failure keeps everything observed before it.
async fn exchange(
    step: &HttpStep,
    mut spec: RequestSpec,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<(), HttpError> {
    let mut redirects = 0;
    loop {
        // Known before connecting, so a refused connection still says where it went; replaced
        // by what was really sent once the request is built.
        attempt.request = Some(summarize_spec(&spec, &spec.headers));
        // The connection (and its driver task) lives exactly as long as this hop.
        let mut conn = transport::connect(
            &spec.url,
            step.insecure_skip_verify,
            step.max_body_bytes,
            budget,
            attempt,
        )
        .await?;
        let request = spec.to_request(conn.protocol())?;
        attempt.request = Some(summarize_request(&request, &spec));
        let started = Instant::now();
        let response = conn.send(request, budget).await?;
        Timings::add(&mut attempt.timings.ttfb, started.elapsed());
        record_head(&response, &spec, redirects, attempt);

        if let Some(location) = followed_location(step, &response) {
            if redirects == step.max_redirects {
                return Err(HttpError::TooManyRedirects {
                    max: step.max_redirects,
                    next: location,
                });
            }
            // A redirect's body is never read: its connection is simply dropped, so it costs
            // no download time and no memory.
            spec = spec.redirect(response.status(), &location)?;
            redirects += 1;
            continue;
        }
        return read_final_body(step, &spec.method, response, budget, attempt).await;
    }
}

/// The `Location` to follow, if the step follows redirects and this response is one.
fn followed_location(step: &HttpStep, response: &Response<Incoming>) -> Option<String> {
    const REDIRECTS: [StatusCode; 5] = [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    if !step.follow_redirects || !REDIRECTS.contains(&response.status()) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?;
    Some(String::from_utf8_lossy(location.as_bytes()).into_owned())
}

/// Reads the final response's body under the size cap and the deadline, decoding it when it
/// has a `Content-Encoding` this client undoes; fills `[BODY]` and the download phase only
/// when the body arrived whole.
async fn read_final_body(
    step: &HttpStep,
    method: &Method,
    response: Response<Incoming>,
    budget: &Budget,
    attempt: &mut Attempt,
) -> Result<(), HttpError> {
    let coding = decode::Coding::of(response.headers()).filter(|_| step.compressed);
    let mut body = Vec::new();
    let started = Instant::now();
    let (read, download, wire_bytes) = match coding {
        // The announced length is the encoded one: the cap is on what it decodes to.
        Some(coding) => {
            let (wire, read) = decode::read_decoded(
                response.into_body(),
                coding,
                step.max_body_bytes,
                &mut body,
                budget,
            )
            .await;
            let download = wire.last_byte.unwrap_or_else(|| started.elapsed());
            (read, download, Some(wire.bytes))
        }
        None => {
            let read = match announced_length(method, &response) {
                Some(len) if len > step.max_body_bytes => Err(HttpError::BodyTooLarge {
                    limit: step.max_body_bytes,
                    detail: format!("Content-Length is {len}"),
                }),
                _ => {
                    transport::read_body(
                        response.into_body(),
                        step.max_body_bytes,
                        &mut body,
                        budget,
                    )
                    .await
                }
            };
            (read, started.elapsed(), None)
        }
    };
    if let Some(summary) = attempt.response.as_mut() {
        summary.body_bytes = body.len() as u64;
        summary.wire_bytes = wire_bytes;
    }
    read?;
    Timings::add(&mut attempt.timings.download, download);
    attempt.facts.body = Some(body);
    Ok(())
}

/// The body length the server announced, when it describes a body that will actually follow
/// (a HEAD, 204 or 304 response carries the length of a body it does not send).
fn announced_length(method: &Method, response: &Response<Incoming>) -> Option<u64> {
    let no_body = *method == Method::HEAD
        || response.status() == StatusCode::NO_CONTENT
        || response.status() == StatusCode::NOT_MODIFIED;
    if no_body {
        return None;
    }
    response
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records the response head as the current final response: status and headers as facts,
/// and the response summary (its body size is filled once the body is read).
fn record_head(
    response: &Response<Incoming>,
    spec: &RequestSpec,
    redirects: u32,
    attempt: &mut Attempt,
) {
    let headers = header_pairs(response.headers());
    attempt.facts.status = Some(response.status().as_u16());
    attempt.response = Some(ResponseSummary {
        status: response.status().as_u16(),
        protocol: protocol_name(response.version()).to_string(),
        headers: summarize_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        body_bytes: 0,
        wire_bytes: None,
        redirects,
        url: spec.url.to_string(),
    });
    attempt.facts.headers = headers;
}

/// What was sent on the wire for the final hop (`Host` included), credentials masked.
fn summarize_request(request: &Request<Full<Bytes>>, spec: &RequestSpec) -> RequestSummary {
    summarize_spec(spec, request.headers())
}

fn summarize_spec(spec: &RequestSpec, headers: &HeaderMap) -> RequestSummary {
    let headers = header_pairs(headers);
    RequestSummary {
        method: spec.method.to_string(),
        url: spec.url.to_string(),
        headers: summarize_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        body_bytes: spec.body.len() as u64,
    }
}

/// Header names (always lower-case in `http`) and values, non-UTF-8 bytes replaced.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}
