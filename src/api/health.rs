//! Liveness and readiness probes.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{ApiError, AppState};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Ready once the store answers, within a second (a silent database must not hang probes).
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping());
    match ping.await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            Err(ApiError::Unavailable("the store does not answer".into()))
        }
        Err(_) => {
            tracing::warn!("readiness: the store did not answer within 1 s");
            Err(ApiError::Unavailable(
                "the store did not answer within 1 s".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call, get, state};
    use axum::http::StatusCode;

    #[tokio::test]
    async fn healthz_and_readyz() {
        let (state, _, _dir) = state(None).await;
        let store = state.store.clone();
        let app = super::router(state);
        assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
        store.close().await;
        let (status, body) = call(&app, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"error\""), "{body}");
        assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
    }
}
