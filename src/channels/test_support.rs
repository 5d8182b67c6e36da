//! Fixtures shared by the notifier tests: realistic notifications of one incident, and a
//! recording HTTP server on 127.0.0.1 for the HTTP notifiers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use tokio::net::TcpListener;

use super::{DeliveryError, Notifier};
use crate::alert::{
    AnomalyCause, Cause, Incident, IncidentState, Links, Notification, NotificationKind,
    ResolvedBy, Severity,
};

pub(crate) const NOTIFICATION_ID: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f0c_2a1e_8d3b_4c7a_9e61_0b2d_4f8a_c913);
pub(crate) const RUN_ID: uuid::Uuid =
    uuid::Uuid::from_u128(0x0190_7c6e_1a2b_7c3d_8e4f_5a6b_7c8d_9e0f);
pub(crate) const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A notification of incident 42: `shop-checkout` fails at step `pay` (HTTP 503 from the
/// payments API) in two locations, with owner, runbook, tags and every link. It started
/// 2026-03-01 10:00:00 UTC and opened 2 min in; state and timestamps follow `kind`:
/// acknowledged 10 min in, resolved 1h 4m 12s in.
pub(crate) fn notification(kind: NotificationKind) -> Notification {
    let started = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    let opened = started + chrono::Duration::minutes(2);
    let acked = started + chrono::Duration::minutes(10);
    let resolved = started + chrono::Duration::seconds(3852);
    let mut incident = failure_incident(started, opened);
    let created_at = match kind {
        NotificationKind::Acknowledged => {
            incident.state = IncidentState::Acknowledged;
            incident.acknowledged_at = Some(acked);
            incident.acknowledged_by = Some("alice".into());
            acked
        }
        NotificationKind::Resolved => {
            incident.state = IncidentState::Resolved;
            incident.resolved_at = Some(resolved);
            incident.resolved_by = Some(ResolvedBy::Auto);
            resolved
        }
        _ => opened,
    };
    Notification {
        id: NOTIFICATION_ID,
        channel: "oncall".into(),
        kind,
        created_at,
        incident,
        links: Links {
            incident: Some("https://waymark.example.com/incidents/42".into()),
            run: Some(format!("https://waymark.example.com/runs/{RUN_ID}")),
            trace: Some(format!("http://jaeger.example.com:16686/trace/{TRACE_ID}")),
            runbook: Some("https://wiki.example.com/runbooks/checkout".into()),
        },
    }
}

fn failure_incident(started: DateTime<Utc>, opened: DateTime<Utc>) -> Incident {
    Incident {
        id: 42,
        cause: Cause {
            run_id: Some(RUN_ID),
            trace_id: Some(TRACE_ID.into()),
            location: Some("eu-west".into()),
            failing_locations: vec!["eu-west".into(), "us-east".into()],
            step: Some("pay".into()),
            dependency: Some("payments-api".into()),
            failure_class: Some("condition".into()),
            condition: Some("[STATUS] == 200".into()),
            actual: Some("503".into()),
            error: Some("condition failed: [STATUS] == 200 (actual 503)".into()),
            anomaly: None,
        },
        channels: vec!["oncall".into()],
        owner: Some("team-payments".into()),
        runbook: Some("https://wiki.example.com/runbooks/checkout".into()),
        tags: vec!["shop".into(), "critical-path".into()],
        ..Incident::opened(
            "shop-checkout".into(),
            Severity::Failure,
            "waymark/shop-checkout/42".into(),
            started,
            opened,
        )
    }
}

/// A degradation of the same journey behind a latency anomaly episode: no failing run, no
/// owner, no tags, no runbook, and only the incident link.
pub(crate) fn degraded_notification(kind: NotificationKind) -> Notification {
    let mut n = notification(kind);
    let i = &mut n.incident;
    i.severity = Severity::Degraded;
    i.owner = None;
    i.runbook = None;
    i.tags.clear();
    i.cause = Cause {
        location: Some("eu-west".into()),
        step: Some("search".into()),
        anomaly: Some(AnomalyCause {
            episode_id: 7,
            step: "search".into(),
            location: "eu-west".into(),
            detector: "latency".into(),
            baseline: 80.0,
            value: 412.4,
        }),
        ..Cause::default()
    };
    n.links = Links {
        incident: n.links.incident.take(),
        ..Links::default()
    };
    n
}

/// One request the [`Recorder`] received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// What the [`Recorder`] answers, until changed.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    answer: Arc<Mutex<Answer>>,
}

/// An HTTP server on 127.0.0.1 that records every request and answers with a configurable
/// status, headers and body. It stops with the test's runtime.
pub(crate) struct Recorder {
    base: String,
    shared: Shared,
}

impl Recorder {
    /// Starts a server answering `status` with `body` to every request.
    pub async fn start(status: u16, body: &'static str) -> Recorder {
        let shared = Shared {
            requests: Arc::default(),
            answer: Arc::new(Mutex::new(Answer {
                status: StatusCode::from_u16(status).unwrap(),
                headers: Vec::new(),
                body,
            })),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { base, shared }
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn answer(
        &self,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &'static str,
    ) {
        *self.shared.answer.lock().unwrap() = Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: headers.to_vec(),
            body,
        };
    }

    /// Every request received since the last call, which it forgets.
    pub fn take_all(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.shared.requests.lock().unwrap())
    }

    /// The one request received since the last call, which it forgets.
    pub fn take_one(&self) -> Recorded {
        let mut requests = self.take_all();
        assert_eq!(requests.len(), 1, "expected exactly one request");
        requests.pop().unwrap()
    }
}

async fn record(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        headers,
        body,
    });
    let answer = shared.answer.lock().unwrap().clone();
    let mut response = (answer.status, answer.body).into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    response
}

/// A 127.0.0.1 port nothing listens on (bound, then released).
pub(crate) async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Checks how `notifier` (pointed at `server`) classifies the answers receivers document:
/// 400 permanent, 503 retryable, 429 retryable after its `Retry-After`; messages quote the
/// answer and nothing else (no URL, no credential).
pub(crate) async fn assert_errors_classified(notifier: &dyn Notifier, server: &Recorder) {
    let n = notification(NotificationKind::Triggered);
    let mut errors = Vec::new();
    server.answer(400, &[], "invalid_payload");
    errors.push(notifier.send(&n).await.unwrap_err());
    server.answer(503, &[], "unavailable");
    errors.push(notifier.send(&n).await.unwrap_err());
    server.answer(429, &[("retry-after", "2")], "rate_limited");
    errors.push(notifier.send(&n).await.unwrap_err());
    assert_eq!(
        errors,
        [
            DeliveryError::Permanent {
                status: Some(400),
                message: "HTTP 400: invalid_payload".into(),
            },
            DeliveryError::Retry {
                status: Some(503),
                message: "HTTP 503: unavailable".into(),
                retry_after: None,
            },
            DeliveryError::Retry {
                status: Some(429),
                message: "HTTP 429: rate_limited".into(),
                retry_after: Some(Duration::from_secs(2)),
            },
        ]
    );
    assert_eq!(server.take_all().len(), 3);
}

/// Checks that a receiver that cannot be reached is worth retrying, and that the error does
/// not name the URL (`secret` is a part of it that must not leak).
pub(crate) async fn assert_unreachable_is_retried(notifier: &dyn Notifier, secret: &str) {
    let e = notifier
        .send(&notification(NotificationKind::Triggered))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Retry { status: None, .. }),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("cannot connect"), "{e}");
    assert!(!e.to_string().contains(secret), "{e}");
}
