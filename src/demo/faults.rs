//! Fault injection: what is currently wrong with the demo shop, changed at run time through
//! `GET`/`PUT /admin/faults` or [`Faults::set`], so that a newcomer can watch Waymark notice a
//! slow search, a failing payment provider, a silent feed or an N+1 query.

use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// The most search latency one can inject: a minute already fails every journey's timeout.
const MAX_SEARCH_LATENCY_MS: u64 = 60_000;

/// The faults in force, shared by the shop, the payments service and whoever injects them.
#[derive(Clone, Default)]
pub struct Faults(Arc<RwLock<FaultSet>>);

impl Faults {
    pub fn get(&self) -> FaultSet {
        self.0.read().expect("faults lock").clone()
    }

    /// Replaces every fault at once; unchecked, see [`FaultSet::validate`].
    pub fn set(&self, faults: FaultSet) {
        *self.0.write().expect("faults lock") = faults;
    }
}

/// One set of faults; the default is a healthy shop.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSet {
    /// Added to every catalogue search (`GET /api/items`).
    pub search_latency_ms: u64,
    /// Share (0..=1) of payment charges the payments service refuses with 503.
    pub payment_error_rate: f64,
    /// The order feed WebSocket stays open but stops sending updates.
    pub feed_stalled: bool,
    /// Reading an order (`GET /api/orders/{id}`) also loads its recommendations one query per
    /// catalogue item (the N+1 pattern), each query slow enough (~5–10 ms) to show.
    pub n_plus_one: bool,
}

/// Why a fault set is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("payment_error_rate must be between 0 and 1, not {0}")]
    PaymentErrorRate(f64),
    #[error("search_latency_ms must be at most {MAX_SEARCH_LATENCY_MS}, not {0}")]
    SearchLatency(u64),
}

impl FaultSet {
    pub fn validate(&self) -> Result<(), FaultError> {
        let rate = self.payment_error_rate;
        if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
            return Err(FaultError::PaymentErrorRate(rate));
        }
        if self.search_latency_ms > MAX_SEARCH_LATENCY_MS {
            return Err(FaultError::SearchLatency(self.search_latency_ms));
        }
        Ok(())
    }
}

/// `GET /admin/faults` and `PUT /admin/faults`.
///
/// No authentication: the demo listens on loopback only, and being able to break it on purpose
/// is its point.
pub(super) fn router(faults: Faults) -> Router {
    Router::new()
        .route("/admin/faults", get(current).put(replace))
        .with_state(faults)
}

async fn current(State(faults): State<Faults>) -> Json<FaultSet> {
    Json(faults.get())
}

/// Reads the body itself rather than through `Json`, so that every refusal is a JSON 400
/// naming what is wrong (axum's own rejections are plain text, some of them 422).
async fn replace(State(faults): State<Faults>, body: Bytes) -> Response {
    let refuse = |message: String| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
    };
    let set: FaultSet = match serde_json::from_slice(&body) {
        Ok(set) => set,
        Err(e) => return refuse(format!("invalid fault set: {e}")),
    };
    if let Err(e) = set.validate() {
        return refuse(e.to_string());
    }
    faults.set(set.clone());
    tracing::info!(faults = ?set, "demo faults changed");
    Json(set).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_outside_zero_to_one_and_long_latencies_are_refused() {
        let ok = |f: FaultSet| f.validate().is_ok();
        assert!(ok(FaultSet::default()));
        for rate in [0.0, 0.25, 1.0] {
            assert!(ok(FaultSet {
                payment_error_rate: rate,
                ..FaultSet::default()
            }));
        }
        for rate in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(!ok(FaultSet {
                payment_error_rate: rate,
                ..FaultSet::default()
            }));
        }
        assert!(ok(FaultSet {
            search_latency_ms: 60_000,
            ..FaultSet::default()
        }));
        assert!(!ok(FaultSet {
            search_latency_ms: 60_001,
            ..FaultSet::default()
        }));
    }

    #[test]
    fn missing_fields_default_and_unknown_fields_are_errors() {
        let f: FaultSet = serde_json::from_str(r#"{"feed_stalled":true}"#).unwrap();
        assert_eq!(
            f,
            FaultSet {
                feed_stalled: true,
                ..FaultSet::default()
            }
        );
        assert!(serde_json::from_str::<FaultSet>(r#"{"feed_stall":true}"#).is_err());
    }
}
