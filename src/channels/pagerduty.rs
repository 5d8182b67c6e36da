//! PagerDuty through the Events API v2 (`POST /v2/enqueue`): one event per notification.
//!
//! The incident's `dedup_key` ties every event of one incident (reopenings included) to one
//! PagerDuty alert: alerting notifications `trigger` it (PagerDuty deduplicates repeats into
//! the alert's log), acknowledgements `acknowledge` it, resolutions `resolve` it. Only trigger
//! events carry a payload, links and the client; PagerDuty ignores them on the others.
//!
//! PagerDuty answers 202 when it accepted the event, 400 when the event is invalid
//! (permanent), 429 or 5xx when it cannot take it now (retry): [`post_json`] classifies.

use chrono::SecondsFormat;
use serde::Serialize;

use super::{Http, Post, Request, is_web_url};
use crate::alert::{AnomalyCause, Notification, NotificationKind, Severity};
use crate::channels::config::PagerDutyConfig;

/// PagerDuty's limit on `payload.summary`, in characters.
const SUMMARY_MAX_CHARS: usize = 1024;

/// The PagerDuty channel.
pub type PagerDuty = Http<PagerDutyConfig>;

impl Post for PagerDutyConfig {
    fn request<'a>(&'a self, n: &Notification) -> Request<'a> {
        let event = event(self.routing_key.expose(), n);
        let body = serde_json::to_vec(&event).expect("an event serializes to JSON");
        Request {
            url: &self.url,
            headers: Vec::new(),
            body,
        }
    }
}

/// One Events API v2 event.
#[derive(Debug, Serialize)]
struct Event<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
    #[serde(flatten)]
    trigger: Option<Trigger<'a>>,
}

/// What only a trigger event carries.
#[derive(Debug, Serialize)]
struct Trigger<'a> {
    payload: Payload<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link<'a>>,
    client: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    summary: String,
    source: &'a str,
    severity: &'static str,
    timestamp: String,
    component: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    class: String,
    custom_details: Details<'a>,
}

/// Shown as a table in the alert: everything a responder needs without opening Waymark.
#[derive(Debug, Serialize)]
struct Details<'a> {
    kind: &'static str,
    incident_id: i64,
    journey: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dependency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anomaly: Option<&'a AnomalyCause>,
}

#[derive(Debug, Serialize)]
struct Link<'a> {
    href: &'a str,
    text: &'static str,
}

/// The event a notification becomes.
fn event<'a>(routing_key: &'a str, n: &'a Notification) -> Event<'a> {
    Event {
        routing_key,
        event_action: action(n.kind),
        dedup_key: &n.incident.dedup_key,
        trigger: n.kind.is_alerting().then(|| Trigger {
            payload: payload(n),
            links: links(n),
            client: "Waymark",
            client_url: n.links.incident.as_deref(),
        }),
    }
}

fn action(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Triggered
        | NotificationKind::Escalated
        | NotificationKind::Reopened
        | NotificationKind::Reminder
        | NotificationKind::Flapping => "trigger",
        NotificationKind::Acknowledged => "acknowledge",
        NotificationKind::Resolved => "resolve",
    }
}

fn payload(n: &Notification) -> Payload<'_> {
    let i = &n.incident;
    Payload {
        summary: n.summary().chars().take(SUMMARY_MAX_CHARS).collect(),
        source: i.cause.location.as_deref().unwrap_or("waymark"),
        severity: match i.severity {
            Severity::Failure => "critical",
            Severity::Degraded => "warning",
        },
        timestamp: n.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        component: &i.journey,
        group: i.owner.as_deref().or(i.tags.first().map(String::as_str)),
        class: class(n),
        custom_details: details(n),
    }
}

/// The failure class, else the anomaly detector, else the severity (`degraded` when a
/// `degraded_when` condition holds).
fn class(n: &Notification) -> String {
    let cause = &n.incident.cause;
    match (&cause.failure_class, &cause.anomaly) {
        (Some(class), _) => class.clone(),
        (None, Some(a)) => format!("anomaly:{}", a.detector),
        (None, None) => n.incident.severity.as_str().to_string(),
    }
}

fn details(n: &Notification) -> Details<'_> {
    let i = &n.incident;
    let c = &i.cause;
    let locations = c.locations();
    Details {
        kind: n.kind.as_str(),
        incident_id: i.id,
        journey: &i.journey,
        step: c.step.as_deref(),
        dependency: c.dependency.as_deref(),
        failure_class: c.failure_class.as_deref(),
        condition: c.condition.as_deref(),
        actual: c.actual.as_deref(),
        error: c.error.as_deref(),
        run_id: c.run_id,
        trace_id: c.trace_id.as_deref(),
        locations,
        owner: i.owner.as_deref(),
        runbook: n.runbook(),
        anomaly: c.anomaly.as_ref(),
    }
}

fn links(n: &Notification) -> Vec<Link<'_>> {
    [
        (n.links.run.as_deref(), "View run"),
        (n.links.trace.as_deref(), "Trace"),
        (n.links.incident.as_deref(), "Incident in Waymark"),
        (n.runbook(), "Runbook"),
    ]
    .into_iter()
    .filter_map(|(href, text)| Some(Link { href: href?, text }))
    // PagerDuty may refuse a whole event over a link that is not a URL (a runbook written as
    // prose): such values stay in `custom_details` only.
    .filter(|link| is_web_url(link.href))
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::channels::config::Secret;
    use crate::channels::test_support::{
        RUN_ID, Recorder, TRACE_ID, assert_errors_classified, assert_unreachable_is_retried,
        closed_port, degraded_notification, notification,
    };
    use crate::channels::{Delivered, Notifier};

    const KEY: &str = "R0UT1NGK3Y0000000000000000000000";

    fn pagerduty(url: String) -> PagerDuty {
        let config = PagerDutyConfig {
            routing_key: Secret::new(KEY),
            url,
        };
        PagerDuty::new(&config, crate::channels::http_client())
    }

    async fn accepted() -> Recorder {
        Recorder::start(
            202,
            r#"{"status":"success","message":"Event processed","dedup_key":"waymark/shop-checkout/42"}"#,
        )
        .await
    }

    /// Sends `n` and returns the event PagerDuty received.
    async fn sent(n: &Notification) -> Value {
        let server = accepted().await;
        let delivered = pagerduty(server.url("/v2/enqueue")).send(n).await.unwrap();
        assert_eq!(delivered, Delivered { status: Some(202) });
        let request = server.take_one();
        assert_eq!(request.path, "/v2/enqueue");
        assert_eq!(request.header("content-type"), "application/json");
        request.json()
    }

    #[tokio::test]
    async fn a_failure_triggers_an_alert_with_every_detail() {
        let event = sent(&notification(NotificationKind::Triggered)).await;
        assert_eq!(
            event,
            json!({
                "routing_key": KEY,
                "event_action": "trigger",
                "dedup_key": "waymark/shop-checkout/42",
                "payload": {
                    "summary": "[FAILURE] shop-checkout: step \"pay\" failed: [STATUS] == 200 (actual 503)",
                    "source": "eu-west",
                    "severity": "critical",
                    "timestamp": "2026-03-01T10:02:00Z",
                    "component": "shop-checkout",
                    "group": "team-payments",
                    "class": "condition",
                    "custom_details": {
                        "kind": "triggered",
                        "incident_id": 42,
                        "journey": "shop-checkout",
                        "step": "pay",
                        "dependency": "payments-api",
                        "failure_class": "condition",
                        "condition": "[STATUS] == 200",
                        "actual": "503",
                        "error": "condition failed: [STATUS] == 200 (actual 503)",
                        "run_id": RUN_ID.to_string(),
                        "trace_id": TRACE_ID,
                        "locations": ["eu-west", "us-east"],
                        "owner": "team-payments",
                        "runbook": "https://wiki.example.com/runbooks/checkout",
                    },
                },
                "links": [
                    {"href": format!("https://waymark.example.com/runs/{RUN_ID}"), "text": "View run"},
                    {"href": format!("http://jaeger.example.com:16686/trace/{TRACE_ID}"), "text": "Trace"},
                    {"href": "https://waymark.example.com/incidents/42", "text": "Incident in Waymark"},
                    {"href": "https://wiki.example.com/runbooks/checkout", "text": "Runbook"},
                ],
                "client": "Waymark",
                "client_url": "https://waymark.example.com/incidents/42",
            })
        );
    }

    #[tokio::test]
    async fn acknowledge_and_resolve_name_the_same_alert_without_a_payload() {
        for (kind, action) in [
            (NotificationKind::Acknowledged, "acknowledge"),
            (NotificationKind::Resolved, "resolve"),
        ] {
            let event = sent(&notification(kind)).await;
            assert_eq!(
                event,
                json!({
                    "routing_key": KEY,
                    "event_action": action,
                    "dedup_key": "waymark/shop-checkout/42",
                })
            );
        }
    }

    #[test]
    fn every_alerting_kind_triggers() {
        for kind in [
            NotificationKind::Triggered,
            NotificationKind::Escalated,
            NotificationKind::Reopened,
            NotificationKind::Reminder,
            NotificationKind::Flapping,
        ] {
            let n = notification(kind);
            let e = event(KEY, &n);
            assert_eq!(e.event_action, "trigger", "{kind:?}");
            let details = &e
                .trigger
                .expect("a trigger has a payload")
                .payload
                .custom_details;
            assert_eq!(details.kind, kind.as_str());
        }
    }

    #[tokio::test]
    async fn an_anomaly_is_a_warning_with_the_detector_as_class() {
        let event = sent(&degraded_notification(NotificationKind::Triggered)).await;
        let payload = &event["payload"];
        assert_eq!(payload["severity"], "warning");
        assert_eq!(payload["class"], "anomaly:latency");
        assert_eq!(payload["source"], "eu-west");
        assert!(
            payload.get("group").is_none(),
            "no owner, no tags: {payload}"
        );
        assert_eq!(
            payload["custom_details"]["anomaly"],
            json!({"episode_id": 7, "step": "search", "location": "eu-west",
                   "detector": "latency", "baseline": 80.0, "value": 412.4})
        );
        assert_eq!(payload["custom_details"]["locations"], json!(["eu-west"]));
        assert!(payload["custom_details"].get("runbook").is_none());
        assert_eq!(
            event["links"],
            json!([{"href": "https://waymark.example.com/incidents/42", "text": "Incident in Waymark"}])
        );
    }

    #[test]
    fn fallbacks_for_source_group_class_and_runbook() {
        let mut n = degraded_notification(NotificationKind::Reminder);
        n.incident.cause.anomaly = None;
        n.incident.cause.location = None;
        n.incident.tags = vec!["shop".into(), "web".into()];
        n.incident.runbook = Some("https://wiki.example.com/search".into());
        let e = event(KEY, &n);
        let t = e.trigger.unwrap();
        assert_eq!(t.payload.source, "waymark");
        assert_eq!(t.payload.group, Some("shop"));
        assert_eq!(t.payload.class, "degraded");
        assert_eq!(
            t.payload.custom_details.runbook,
            Some("https://wiki.example.com/search")
        );
        assert_eq!(
            t.links.last().unwrap().href,
            "https://wiki.example.com/search"
        );
        assert!(t.payload.custom_details.locations.is_empty());

        n.incident.runbook = Some("ask #payments on chat".into());
        let t = event(KEY, &n).trigger.unwrap();
        assert_eq!(
            t.payload.custom_details.runbook,
            Some("ask #payments on chat")
        );
        assert_eq!(t.links.len(), 1, "only the incident link: {:?}", t.links);
    }

    #[test]
    fn long_summaries_are_cut_to_pagerdutys_limit() {
        let mut n = notification(NotificationKind::Triggered);
        n.incident.cause.condition = None;
        n.incident.cause.error = Some("é".repeat(3000));
        let summary = payload(&n).summary;
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(summary.starts_with("[FAILURE] shop-checkout: step \"pay\" failed: éé"));
    }

    #[tokio::test]
    async fn answers_are_classified_and_errors_hold_no_key() {
        let server = accepted().await;
        assert_errors_classified(&pagerduty(server.url("/v2/enqueue")), &server).await;
        let port = closed_port().await;
        let unreachable = pagerduty(format!("http://127.0.0.1:{port}/v2/enqueue"));
        assert_unreachable_is_retried(&unreachable, KEY).await;
    }
}
