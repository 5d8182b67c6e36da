//! `/metrics`: Prometheus (OpenMetrics) text exposition of the service's [`Metrics`].

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{ApiError, AppState};
pub use crate::service::metrics::Metrics;
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format 0.0.4
/// otherwise, which older tools such as `promtool check metrics` read.
async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    // A database that does not answer must not stall the scrape: the counts are skipped.
    let counts = state.store.incidents().notification_counts();
    match tokio::time::timeout(std::time::Duration::from_secs(1), counts).await {
        Ok(Ok(counts)) => state.metrics.set_notification_counts(&counts),
        Ok(Err(e)) => tracing::warn!(error = %e, "/metrics: notification counts unavailable"),
        Err(_) => {
            tracing::warn!("/metrics: notification counts unavailable: the database did not answer")
        }
    }
    state.metrics.set_leader(state.cluster.is_leader());
    let body = state
        .metrics
        .encode(
            Some(state.scheduler.stats()),
            Some(state.writer.queue_depth()),
            Some(state.telemetry.stats()),
        )
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(if openmetrics {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], body)
    } else {
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], prometheus_text(&body))
    })
}

/// OpenMetrics text → Prometheus text 0.0.4: a counter family's `HELP`/`TYPE` lines name its
/// samples (`x_total`), and there are no `UNIT` or `EOF` lines.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match meta {
            Some(rewritten) => out.push_str(rewritten.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_text_names_counter_families_by_their_samples() {
        let om = "# HELP runs Runs.\n# TYPE runs counter\nruns_total{a=\"b\"} 3\n\
                  # HELP lag Lag.\n# TYPE lag histogram\n# UNIT lag seconds\nlag_sum 1.0\n# EOF\n";
        assert_eq!(
            super::prometheus_text(om),
            "# HELP runs_total Runs.\n# TYPE runs_total counter\nruns_total{a=\"b\"} 3\n\
             # HELP lag Lag.\n# TYPE lag histogram\nlag_sum 1.0\n"
        );
    }

    use std::time::Duration;

    use super::super::test_support::{call, get, state};
    use crate::run::RunResult;
    use crate::run::testkit::{self, step};
    use crate::scheduler::SchedulerStats;
    use crate::telemetry::TelemetryStats;
    use axum::http::StatusCode;

    fn run() -> RunResult {
        testkit::run("shop")
            .at("2026-03-14T10:00:00Z".parse().unwrap())
            .failed()
            .duration_ms(1000.0)
            .step(step("home").ms(250.0))
            .step(step("later").skipped().attempts(0))
            .build()
    }

    #[tokio::test]
    async fn exposition_has_every_family() {
        let (state, _, _dir) = state(None).await;
        state.metrics.record_run(&run(), Duration::from_millis(20));
        state.metrics.record_dropped();
        let text = state
            .metrics
            .encode(
                Some(SchedulerStats {
                    in_flight: 2,
                    skipped_overlap: 3,
                    ..SchedulerStats::default()
                }),
                Some(7),
                Some(TelemetryStats {
                    spans_lost: 5,
                    ..TelemetryStats::default()
                }),
            )
            .unwrap();
        for line in [
            "waymark_runs_total{journey=\"shop\",outcome=\"failed\"} 1",
            "waymark_step_duration_seconds_count{journey=\"shop\",step=\"home\",kind=\"http\"} 1",
            "waymark_scheduling_lag_seconds_count 1",
            "waymark_scheduler_runs_in_flight 2",
            "waymark_scheduler_skipped_overlap_total 3",
            "waymark_store_writer_queue_depth 7",
            "waymark_store_runs_dropped_total 1",
            "waymark_telemetry_spans_lost_total 5",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(!text.contains("step=\"later\""), "{text}");
        // Mirrored counters do not double on a second scrape.
        let again = state
            .metrics
            .encode(
                Some(SchedulerStats {
                    skipped_overlap: 4,
                    ..SchedulerStats::default()
                }),
                None,
                None,
            )
            .unwrap();
        assert!(
            again.contains("waymark_scheduler_skipped_overlap_total 4\n"),
            "{again}"
        );

        let app = super::super::router(state);
        let (status, body) = call(&app, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("# TYPE waymark_runs_total counter\n"),
            "{body}"
        );
        assert!(!body.contains("# EOF"), "{body}");
        let openmetrics = axum::http::Request::get("/metrics")
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, body) = call(&app, openmetrics).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
