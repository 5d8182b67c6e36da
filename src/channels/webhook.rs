//! Generic webhooks: one signed JSON `POST` per notification, in Waymark's own documented
//! format ([`SCHEMA`]), for receivers that are not PagerDuty or Slack.
//!
//! Headers:
//! - `Waymark-Delivery`: the notification id, the same on every retry: receivers dedupe on it.
//! - `Waymark-Timestamp`: Unix seconds when this attempt was sent; receivers should refuse
//!   old ones (replays).
//! - `Waymark-Signature`: `v1=` and the lowercase hex HMAC-SHA256 of `{timestamp}.{body}`
//!   with the channel's secret ([`sign`]). The version prefix lets a new scheme be sent next
//!   to the old one while receivers migrate.
//!
//! Answers are classified by [`post_json`]: 2xx accepted, 408/429/5xx retried, others
//! permanent. The URL may carry a token: errors never include it.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::{Http, Post, Request};
use crate::alert::{AnomalyCause, Cause, Incident, Links, Notification, ResolvedBy};
use crate::channels::config::WebhookConfig;

/// The body's format and version, its `schema` field. Within a version fields may be added
/// (receivers must ignore unknown ones); renaming, removing or changing the meaning of one
/// makes a new version.
pub const SCHEMA: &str = "waymark.notification/v1";

/// The webhook channel.
pub type Webhook = Http<WebhookConfig>;

impl Post for WebhookConfig {
    fn request<'a>(&'a self, n: &Notification) -> Request<'a> {
        let body = serde_json::to_vec(&Body::new(n)).expect("a body serializes to JSON");
        let timestamp = Utc::now().timestamp();
        Request {
            url: self.url.expose(),
            headers: headers(self.secret.expose().as_bytes(), timestamp, n, &body),
            body,
        }
    }
}

/// Lowercase hex HMAC-SHA256 of `{timestamp}.` followed by `body`, keyed with `secret`.
/// Receivers compute the same over the raw body they received and compare in constant time.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The headers of one attempt, besides `Content-Type`.
fn headers(
    secret: &[u8],
    timestamp: i64,
    n: &Notification,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("Waymark-Delivery", n.id.to_string()),
        ("Waymark-Timestamp", timestamp.to_string()),
        (
            "Waymark-Signature",
            format!("v1={}", sign(secret, timestamp, body)),
        ),
    ]
}

/// Version 1 of the body. Its own structs, not the stored types' serde: the wire format
/// changes only on purpose. Absent values are `null`, never left out; timestamps are
/// RFC 3339 in UTC.
#[derive(Debug, Serialize)]
struct Body<'a> {
    schema: &'static str,
    /// The notification's id, as in `Waymark-Delivery`.
    id: uuid::Uuid,
    /// `triggered`, `escalated`, `reopened`, `acknowledged`, `resolved`, `reminder` or
    /// `flapping`.
    kind: &'static str,
    created_at: DateTime<Utc>,
    /// The configured channel's name.
    channel: &'a str,
    /// One line: `[FAILURE] shop-checkout: step "pay" failed`.
    summary: String,
    incident: IncidentBody<'a>,
    links: LinksBody<'a>,
}

#[derive(Debug, Serialize)]
struct IncidentBody<'a> {
    id: i64,
    journey: &'a str,
    /// `degraded` or `failure`.
    severity: &'static str,
    /// `open`, `acknowledged` or `resolved`.
    state: &'static str,
    /// The same for the incident's whole life, reopenings included.
    dedup_key: &'a str,
    started_at: DateTime<Utc>,
    opened_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledged_by: Option<&'a str>,
    resolved_at: Option<DateTime<Utc>>,
    /// `auto`, or who resolved it through the API.
    resolved_by: Option<&'a str>,
    /// From `started_at` to its resolution, or to `created_at` while it is open.
    duration_seconds: u64,
    reopened: u32,
    flapping: bool,
    owner: Option<&'a str>,
    runbook: Option<&'a str>,
    tags: &'a [String],
    cause: CauseBody<'a>,
}

#[derive(Debug, Serialize)]
struct CauseBody<'a> {
    run_id: Option<uuid::Uuid>,
    trace_id: Option<&'a str>,
    location: Option<&'a str>,
    failing_locations: &'a [String],
    step: Option<&'a str>,
    dependency: Option<&'a str>,
    failure_class: Option<&'a str>,
    condition: Option<&'a str>,
    actual: Option<&'a str>,
    error: Option<&'a str>,
    anomaly: Option<AnomalyBody<'a>>,
}

#[derive(Debug, Serialize)]
struct AnomalyBody<'a> {
    episode_id: i64,
    step: &'a str,
    location: &'a str,
    /// `latency` or `failure_rate`.
    detector: &'a str,
    /// What the baseline expected: milliseconds, or a failure rate between 0 and 1.
    baseline: f64,
    /// What was observed at the episode's peak, in the same unit.
    value: f64,
}

#[derive(Debug, Serialize)]
struct LinksBody<'a> {
    incident: Option<&'a str>,
    run: Option<&'a str>,
    trace: Option<&'a str>,
    runbook: Option<&'a str>,
}

impl<'a> Body<'a> {
    fn new(n: &'a Notification) -> Body<'a> {
        Body {
            schema: SCHEMA,
            id: n.id,
            kind: n.kind.as_str(),
            created_at: n.created_at,
            channel: &n.channel,
            summary: n.summary(),
            incident: IncidentBody::new(&n.incident, n.created_at),
            links: LinksBody::new(&n.links),
        }
    }
}

impl<'a> IncidentBody<'a> {
    fn new(i: &'a Incident, now: DateTime<Utc>) -> IncidentBody<'a> {
        IncidentBody {
            id: i.id,
            journey: &i.journey,
            severity: i.severity.as_str(),
            state: i.state.as_str(),
            dedup_key: &i.dedup_key,
            started_at: i.started_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            acknowledged_by: i.acknowledged_by.as_deref(),
            resolved_at: i.resolved_at,
            resolved_by: i.resolved_by.as_ref().map(ResolvedBy::as_str),
            duration_seconds: i.duration(now).as_secs(),
            reopened: i.reopened,
            flapping: i.flapping,
            owner: i.owner.as_deref(),
            runbook: i.runbook.as_deref(),
            tags: &i.tags,
            cause: CauseBody::new(&i.cause),
        }
    }
}

impl<'a> CauseBody<'a> {
    fn new(c: &'a Cause) -> CauseBody<'a> {
        CauseBody {
            run_id: c.run_id,
            trace_id: c.trace_id.as_deref(),
            location: c.location.as_deref(),
            failing_locations: &c.failing_locations,
            step: c.step.as_deref(),
            dependency: c.dependency.as_deref(),
            failure_class: c.failure_class.as_deref(),
            condition: c.condition.as_deref(),
            actual: c.actual.as_deref(),
            error: c.error.as_deref(),
            anomaly: c.anomaly.as_ref().map(AnomalyBody::new),
        }
    }
}

impl<'a> AnomalyBody<'a> {
    fn new(a: &'a AnomalyCause) -> AnomalyBody<'a> {
        AnomalyBody {
            episode_id: a.episode_id,
            step: &a.step,
            location: &a.location,
            detector: &a.detector,
            baseline: a.baseline,
            value: a.value,
        }
    }
}

impl<'a> LinksBody<'a> {
    fn new(l: &'a Links) -> LinksBody<'a> {
        LinksBody {
            incident: l.incident.as_deref(),
            run: l.run.as_deref(),
            trace: l.trace.as_deref(),
            runbook: l.runbook.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use serde_json::{Value, json};

    use super::*;
    use crate::alert::NotificationKind;
    use crate::channels::config::Secret;
    use crate::channels::test_support::{
        NOTIFICATION_ID, RUN_ID, Recorded, Recorder, TRACE_ID, assert_errors_classified,
        assert_unreachable_is_retried, closed_port, degraded_notification, notification,
    };
    use crate::channels::{Delivered, Notifier};

    const SECRET: &str = "whsec_Xk2p9Lq4";

    fn webhook(url: String) -> Webhook {
        let config = WebhookConfig {
            url: Secret::new(url),
            secret: Secret::new(SECRET),
        };
        Webhook::new(&config, crate::channels::http_client())
    }

    /// Sends `n` to a receiver answering 204 and returns what it received.
    async fn sent(n: &Notification) -> Recorded {
        let server = Recorder::start(204, "").await;
        let delivered = webhook(server.url("/hooks/waymark")).send(n).await.unwrap();
        assert_eq!(delivered, Delivered { status: Some(204) });
        server.take_one()
    }

    /// The signature as the `openssl` command computes it over `{timestamp}.{body}`.
    fn openssl_signature(timestamp: &str, body: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signed");
        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        std::fs::write(&file, signed).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", SECRET])
            .arg(&file)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // `HMAC-SHA256(/path/signed)= 5f3a…`
        text.trim().rsplit("= ").next().unwrap().to_string()
    }

    #[tokio::test]
    async fn requests_are_signed_as_documented() {
        let request = sent(&notification(NotificationKind::Triggered)).await;
        assert_eq!(request.path, "/hooks/waymark");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(
            request.header("waymark-delivery"),
            NOTIFICATION_ID.to_string()
        );
        let timestamp = request.header("waymark-timestamp");
        let sent_at: i64 = timestamp.parse().unwrap();
        assert!((Utc::now().timestamp() - sent_at).abs() < 60, "{sent_at}");
        let expected = openssl_signature(timestamp, &request.body);
        assert_eq!(expected.len(), 64);
        assert_eq!(
            request.header("waymark-signature"),
            format!("v1={expected}")
        );
        assert_ne!(
            sign(b"another secret", sent_at, &request.body),
            expected,
            "the key matters"
        );
        assert_ne!(
            sign(SECRET.as_bytes(), sent_at + 1, &request.body),
            expected,
            "the timestamp matters"
        );
    }

    #[tokio::test]
    async fn the_body_follows_the_v1_schema() {
        let request = sent(&notification(NotificationKind::Acknowledged)).await;
        assert_eq!(
            request.json(),
            json!({
                "schema": "waymark.notification/v1",
                "id": NOTIFICATION_ID.to_string(),
                "kind": "acknowledged",
                "created_at": "2026-03-01T10:10:00Z",
                "channel": "oncall",
                "summary": "[ACK] shop-checkout: acknowledged",
                "incident": {
                    "id": 42,
                    "journey": "shop-checkout",
                    "severity": "failure",
                    "state": "acknowledged",
                    "dedup_key": "waymark/shop-checkout/42",
                    "started_at": "2026-03-01T10:00:00Z",
                    "opened_at": "2026-03-01T10:02:00Z",
                    "acknowledged_at": "2026-03-01T10:10:00Z",
                    "acknowledged_by": "alice",
                    "resolved_at": null,
                    "resolved_by": null,
                    "duration_seconds": 600,
                    "reopened": 0,
                    "flapping": false,
                    "owner": "team-payments",
                    "runbook": "https://wiki.example.com/runbooks/checkout",
                    "tags": ["shop", "critical-path"],
                    "cause": {
                        "run_id": RUN_ID.to_string(),
                        "trace_id": TRACE_ID,
                        "location": "eu-west",
                        "failing_locations": ["eu-west", "us-east"],
                        "step": "pay",
                        "dependency": "payments-api",
                        "failure_class": "condition",
                        "condition": "[STATUS] == 200",
                        "actual": "503",
                        "error": "condition failed: [STATUS] == 200 (actual 503)",
                        "anomaly": null,
                    },
                },
                "links": {
                    "incident": "https://waymark.example.com/incidents/42",
                    "run": format!("https://waymark.example.com/runs/{RUN_ID}"),
                    "trace": format!("http://jaeger.example.com:16686/trace/{TRACE_ID}"),
                    "runbook": "https://wiki.example.com/runbooks/checkout",
                },
            })
        );
    }

    #[test]
    fn resolutions_and_anomalies_fill_their_fields() {
        let resolved = notification(NotificationKind::Resolved);
        let body = serde_json::to_value(Body::new(&resolved)).unwrap();
        assert_eq!(body["incident"]["state"], "resolved");
        assert_eq!(body["incident"]["resolved_at"], "2026-03-01T11:04:12Z");
        assert_eq!(body["incident"]["resolved_by"], "auto");
        assert_eq!(body["incident"]["duration_seconds"], 3852);

        let slow = degraded_notification(NotificationKind::Triggered);
        let body = serde_json::to_value(Body::new(&slow)).unwrap();
        assert_eq!(body["incident"]["severity"], "degraded");
        assert_eq!(
            body["incident"]["cause"]["anomaly"],
            json!({"episode_id": 7, "step": "search", "location": "eu-west",
                   "detector": "latency", "baseline": 80.0, "value": 412.4})
        );
        assert_eq!(body["links"]["run"], Value::Null);
        assert_eq!(body["incident"]["owner"], Value::Null);
        assert_eq!(body["incident"]["tags"], json!([]));
    }

    #[tokio::test]
    async fn a_retry_is_the_same_delivery_with_the_same_body() {
        let server = Recorder::start(200, "").await;
        let hook = webhook(server.url("/hook"));
        let n = notification(NotificationKind::Triggered);
        hook.send(&n).await.unwrap();
        hook.send(&n).await.unwrap();
        let [first, second] = <[Recorded; 2]>::try_from(server.take_all()).unwrap();
        assert_eq!(first.body, second.body);
        assert_eq!(
            first.header("waymark-delivery"),
            second.header("waymark-delivery")
        );
        for r in [first, second] {
            let ts: i64 = r.header("waymark-timestamp").parse().unwrap();
            let signature = format!("v1={}", sign(SECRET.as_bytes(), ts, &r.body));
            assert_eq!(r.header("waymark-signature"), signature);
        }
    }

    #[tokio::test]
    async fn answers_are_classified_and_errors_hold_no_url() {
        let server = Recorder::start(200, "").await;
        assert_errors_classified(&webhook(server.url("/hook")), &server).await;
        let port = closed_port().await;
        let unreachable = webhook(format!("http://127.0.0.1:{port}/hook?token=urlsecret"));
        assert_unreachable_is_retried(&unreachable, "urlsecret").await;
    }
}
