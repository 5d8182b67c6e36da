//! The payments provider the shop depends on: its own service on its own port, so that a
//! journey can check it separately and a trace shows the hop from shop to provider.
//!
//! - `GET /health` → `{"status":"ok","provider":"demo-pay"}`;
//! - `POST /charge` `{amount_cents, reference}` → 201 `{"charge_id","status":"captured"}`, or
//!   503 for a share [`FaultSet::payment_error_rate`](super::FaultSet) of charges.
//!
//! [`PaymentsClient`] is the shop's side of that call.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::Faults;
use super::trace::inject;

/// What the shop waits for the provider at most before it gives up on an order.
const CHARGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The payments service's routes (the caller adds the tracing layer).
pub(super) fn router(faults: Faults) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({ "status": "ok", "provider": "demo-pay" })) }),
        )
        .route("/charge", post(charge))
        .with_state(faults)
}

#[derive(Serialize, Deserialize)]
struct Charge {
    amount_cents: i64,
    reference: String,
}

async fn charge(State(faults): State<Faults>, Json(charge): Json<Charge>) -> Response {
    if charge.amount_cents <= 0 {
        let message = json!({ "error": "amount_cents must be positive" });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(message)).into_response();
    }
    // `random()` is in [0, 1): a rate of 1 always fails, 0 never.
    if rand::random::<f64>() < faults.get().payment_error_rate {
        let message = json!({ "error": "payment provider unavailable" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(message)).into_response();
    }
    let charge_id = format!("ch_{}", uuid::Uuid::new_v4().simple());
    let body = json!({ "charge_id": charge_id, "status": "captured" });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// The shop's connection to the payments service.
#[derive(Clone)]
pub(super) struct PaymentsClient {
    http: reqwest::Client,
    addr: SocketAddr,
    tracer: SdkTracer,
}

impl PaymentsClient {
    pub fn new(addr: SocketAddr, tracer: SdkTracer) -> Result<PaymentsClient, reqwest::Error> {
        // reqwest is built without a TLS provider of its own (see Cargo.toml); the payments URL
        // is plain HTTP, but the builder wants one installed all the same.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(CHARGE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(PaymentsClient { http, addr, tracer })
    }

    /// Charges `amount_cents` in a CLIENT span under `parent`, whose id goes to the provider in
    /// `traceparent`. The charge id, or why there is none, for the shopper.
    pub async fn charge(
        &self,
        parent: &Context,
        amount_cents: i64,
        reference: &str,
    ) -> Result<String, String> {
        let url = format!("http://{}/charge", self.addr);
        let span = self
            .tracer
            .span_builder("POST /charge")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.full", url.clone()),
                KeyValue::new("server.address", self.addr.ip().to_string()),
                KeyValue::new("server.port", i64::from(self.addr.port())),
            ])
            .start_with_context(&self.tracer, parent);
        let cx = parent.with_span(span);
        let mut headers = axum::http::HeaderMap::new();
        inject(&cx, &mut headers);
        let body = Charge {
            amount_cents,
            reference: reference.to_string(),
        };
        let sent = self
            .http
            .post(url)
            .headers(headers)
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await;
        let span = cx.span();
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                let body = response.bytes().await.unwrap_or_default();
                let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match answer["charge_id"].as_str() {
                    Some(id) if status.is_success() => Ok(id.to_string()),
                    _ if status.is_success() => {
                        Err(format!("payments answered {status} without a charge id"))
                    }
                    _ => {
                        span.set_attribute(KeyValue::new(
                            "error.type",
                            status.as_str().to_string(),
                        ));
                        Err(format!("payments answered {status}"))
                    }
                }
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                span.set_attribute(KeyValue::new("error.type", kind));
                Err(format!("payments unreachable: {e}"))
            }
        };
        if let Err(e) = &outcome {
            span.set_status(Status::error(e.clone()));
        }
        span.end();
        outcome
    }
}
