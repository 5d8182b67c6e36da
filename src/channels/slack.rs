//! Slack through an incoming webhook: one Block Kit message per notification.
//!
//! The message is a header (status emoji + summary), what is wrong, a few fields, a context
//! line and link buttons; `text` repeats the summary for notifications and clients that do not
//! render blocks. Slack rejects a whole message when one block breaks a limit, so every text
//! is cut to its block's limit here rather than trusted to be short.
//!
//! Slack answers 200 `ok`; 400 `invalid_payload`, 403, 404 `no_service` and 410 are permanent
//! (bad message, revoked or unknown webhook); 429 (with `Retry-After`) and 5xx are retried:
//! [`post_json`] classifies. The webhook URL is the credential: it never appears in errors.

use serde_json::{Value, json};

use super::{Http, Post, Request, is_web_url};
use crate::alert::{Notification, NotificationKind, ResolvedBy, Severity};
use crate::channels::config::SlackConfig;
use crate::format::{self, truncate};

/// Block Kit limits, in characters (<https://api.slack.com/reference/block-kit/blocks>).
pub(crate) const HEADER_MAX: usize = 150;
pub(crate) const TEXT_MAX: usize = 3000;
pub(crate) const FIELD_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;
pub(crate) const BUTTON_TEXT_MAX: usize = 75;
pub(crate) const BUTTON_URL_MAX: usize = 3000;

/// The Slack channel.
pub type Slack = Http<SlackConfig>;

impl Post for SlackConfig {
    fn request<'a>(&'a self, n: &Notification) -> Request<'a> {
        Request {
            url: self.webhook_url.expose(),
            headers: Vec::new(),
            body: serde_json::to_vec(&message(n)).expect("a message serializes to JSON"),
        }
    }
}

/// The whole message: fallback `text` and the blocks.
fn message(n: &Notification) -> Value {
    let mut blocks = vec![header(n), what(n), fields(n), context(n)];
    blocks.extend(actions(n));
    json!({ "text": escape(&n.summary()), "blocks": blocks })
}

fn header(n: &Notification) -> Value {
    let text = format!("{} {}", emoji(n), n.summary());
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&text, HEADER_MAX), "emoji": true },
    })
}

fn emoji(n: &Notification) -> &'static str {
    match (n.kind, n.incident.severity) {
        (NotificationKind::Resolved, _) => ":white_check_mark:",
        (NotificationKind::Acknowledged, _) => ":eyes:",
        (NotificationKind::Flapping | NotificationKind::Reminder, _) => ":repeat:",
        (_, Severity::Failure) => ":red_circle:",
        (_, Severity::Degraded) => ":large_orange_circle:",
    }
}

/// What is wrong, and what changed with this notification.
fn what(n: &Notification) -> Value {
    let i = &n.incident;
    let headline = escape(&i.cause.headline(i.severity));
    let lasted = format::duration(i.duration(n.created_at));
    let text = match n.kind {
        NotificationKind::Triggered => headline,
        NotificationKind::Escalated => format!("*Escalated to failure:* {headline}"),
        NotificationKind::Reopened => format!("*Failing again* (reopened): {headline}"),
        NotificationKind::Reminder => format!("*Still open after {lasted}:* {headline}"),
        NotificationKind::Flapping => format!(
            "*Flapping:* the journey changes state too often; further changes are not \
             notified until it settles. Latest: {headline}"
        ),
        NotificationKind::Acknowledged => format!(
            "*Acknowledged by {}.* {headline}",
            escape(i.acknowledged_by.as_deref().unwrap_or("someone"))
        ),
        NotificationKind::Resolved => match &i.resolved_by {
            Some(ResolvedBy::Auto) | None => format!("*Resolved after {lasted}:* runs pass again."),
            Some(ResolvedBy::User(who)) => {
                format!("*Resolved by {} after {lasted}.*", escape(who))
            }
        },
    };
    json!({ "type": "section", "text": mrkdwn(&truncate(&text, TEXT_MAX)) })
}

/// The evidence as two columns of labelled values, only those known.
fn fields(n: &Notification) -> Value {
    let i = &n.incident;
    let c = &i.cause;
    let step = c.step.as_ref().map(|s| match &c.dependency {
        Some(d) => format!("{s} ({d})"),
        None => s.clone(),
    });
    let locations = Some(c.locations().join(", ")).filter(|l| !l.is_empty());
    // A runbook that is a link is a button; one written as prose is shown here.
    let runbook = n.runbook().filter(|r| !is_web_url(r)).map(str::to_string);
    let fields: Vec<Value> = [
        ("Journey", Some(i.journey.clone())),
        ("Step", step),
        ("Condition", c.condition.clone()),
        ("Actual value", c.actual.clone()),
        ("Owner", i.owner.clone()),
        ("Locations", locations),
        ("Runbook", runbook),
    ]
    .into_iter()
    .filter_map(|(label, value)| {
        let text = format!("*{label}*\n{}", escape(&value?));
        Some(mrkdwn(&truncate(&text, FIELD_MAX)))
    })
    .take(FIELDS_MAX)
    .collect();
    json!({ "type": "section", "fields": fields })
}

/// The small print: which incident, since when, and the raw error.
fn context(n: &Notification) -> Value {
    let i = &n.incident;
    let mut elements = vec![
        format!("Incident #{}", i.id),
        format!("Started {}", format::timestamp(i.started_at)),
    ];
    elements.extend(i.cause.error.as_ref().map(|e| format!("Error: {e}")));
    let elements: Vec<Value> = elements
        .iter()
        .map(|text| mrkdwn(&truncate(&escape(text), TEXT_MAX)))
        .collect();
    json!({ "type": "context", "elements": elements })
}

/// Link buttons, or no block at all when there is no link (an empty actions block is
/// invalid). Slack rejects the whole message over a button whose `url` is not a URL or is
/// too long, so those are left out (cut, a link would lead nowhere).
fn actions(n: &Notification) -> Option<Value> {
    let buttons: Vec<Value> = [
        ("waymark_run", "View run", n.links.run.as_deref()),
        ("waymark_trace", "Trace", n.links.trace.as_deref()),
        ("waymark_runbook", "Runbook", n.runbook()),
        ("waymark_incident", "Incident", n.links.incident.as_deref()),
    ]
    .into_iter()
    .filter_map(|(action_id, text, url)| {
        let url = url.filter(|u| is_web_url(u) && u.len() <= BUTTON_URL_MAX)?;
        Some(json!({
            "type": "button",
            "action_id": action_id,
            "text": { "type": "plain_text", "text": truncate(text, BUTTON_TEXT_MAX) },
            "url": url,
        }))
    })
    .collect();
    (!buttons.is_empty()).then(|| json!({ "type": "actions", "elements": buttons }))
}

pub(crate) fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

/// Slack reads `&`, `<` and `>` in mrkdwn as entities and links: values must not.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::config::Secret;
    use crate::channels::test_support::{
        RUN_ID, Recorder, assert_errors_classified, assert_unreachable_is_retried, closed_port,
        degraded_notification, notification,
    };
    use crate::channels::{Delivered, DeliveryError, Notifier};

    const HOOK_PATH: &str = "/services/T0001/B0001/hooksecretpart";

    fn slack(url: String) -> Slack {
        let config = SlackConfig {
            webhook_url: Secret::new(url),
        };
        Slack::new(&config, crate::channels::http_client())
    }

    /// Sends `n` to a webhook answering `ok` and returns the message Slack received.
    async fn sent(n: &Notification) -> Value {
        let server = Recorder::start(200, "ok").await;
        let delivered = slack(server.url(HOOK_PATH)).send(n).await.unwrap();
        assert_eq!(delivered, Delivered { status: Some(200) });
        let request = server.take_one();
        assert_eq!(request.path, HOOK_PATH);
        assert_eq!(request.header("content-type"), "application/json");
        request.json()
    }

    fn block_types(message: &Value) -> Vec<&str> {
        message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect()
    }

    fn texts(block: &Value, key: &str) -> Vec<String> {
        block[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_failure_is_a_message_with_header_evidence_and_link_buttons() {
        let m = sent(&notification(NotificationKind::Triggered)).await;
        let summary = "[FAILURE] shop-checkout: step \"pay\" failed: [STATUS] == 200 (actual 503)";
        assert_eq!(m["text"], summary);
        assert_eq!(
            block_types(&m),
            ["header", "section", "section", "context", "actions"]
        );
        let b = &m["blocks"];
        assert_eq!(
            b[0]["text"],
            json!({"type": "plain_text", "text": format!(":red_circle: {summary}"), "emoji": true})
        );
        assert_eq!(b[1]["text"]["type"], "mrkdwn");
        assert_eq!(
            b[1]["text"]["text"],
            "step \"pay\" failed: [STATUS] == 200 (actual 503)"
        );
        assert_eq!(
            texts(&b[2], "fields"),
            [
                "*Journey*\nshop-checkout",
                "*Step*\npay (payments-api)",
                "*Condition*\n[STATUS] == 200",
                "*Actual value*\n503",
                "*Owner*\nteam-payments",
                "*Locations*\neu-west, us-east",
            ]
        );
        assert_eq!(
            texts(&b[3], "elements"),
            [
                "Incident #42",
                "Started 2026-03-01 10:00:00 UTC",
                "Error: condition failed: [STATUS] == 200 (actual 503)",
            ]
        );
        assert_eq!(
            b[4]["elements"],
            json!([
                {"type": "button", "action_id": "waymark_run",
                 "text": {"type": "plain_text", "text": "View run"},
                 "url": format!("https://waymark.example.com/runs/{RUN_ID}")},
                {"type": "button", "action_id": "waymark_trace",
                 "text": {"type": "plain_text", "text": "Trace"},
                 "url": "http://jaeger.example.com:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"},
                {"type": "button", "action_id": "waymark_runbook",
                 "text": {"type": "plain_text", "text": "Runbook"},
                 "url": "https://wiki.example.com/runbooks/checkout"},
                {"type": "button", "action_id": "waymark_incident",
                 "text": {"type": "plain_text", "text": "Incident"},
                 "url": "https://waymark.example.com/incidents/42"},
            ])
        );
    }

    #[tokio::test]
    async fn a_resolution_says_how_long_the_incident_lasted() {
        let m = sent(&notification(NotificationKind::Resolved)).await;
        assert_eq!(m["text"], "[RESOLVED] shop-checkout: resolved");
        let b = &m["blocks"];
        assert_eq!(
            b[0]["text"]["text"],
            ":white_check_mark: [RESOLVED] shop-checkout: resolved"
        );
        assert_eq!(
            b[1]["text"]["text"],
            "*Resolved after 1h 4m:* runs pass again."
        );

        let mut by_hand = notification(NotificationKind::Resolved);
        by_hand.incident.resolved_by = Some(ResolvedBy::User("bob".into()));
        assert_eq!(
            what(&by_hand)["text"]["text"],
            "*Resolved by bob after 1h 4m.*"
        );
    }

    #[test]
    fn each_kind_has_its_emoji_and_sentence() {
        // (notification, emoji, how its sentence starts)
        for (n, want_emoji, start) in [
            (
                notification(NotificationKind::Acknowledged),
                ":eyes:",
                "*Acknowledged by alice.* step \"pay\" failed",
            ),
            (
                notification(NotificationKind::Reminder),
                ":repeat:",
                "*Still open after 2m:*",
            ),
        ] {
            assert_eq!(emoji(&n), want_emoji);
            assert!(
                what(&n)["text"]["text"]
                    .as_str()
                    .unwrap()
                    .starts_with(start)
            );
        }
        assert_eq!(emoji(&notification(NotificationKind::Flapping)), ":repeat:");
        // (notification, emoji, its whole sentence)
        for (n, want_emoji, sentence) in [
            (
                degraded_notification(NotificationKind::Triggered),
                ":large_orange_circle:",
                "step \"search\" is slower than its baseline (412 ms, usually 80 ms)",
            ),
            (
                notification(NotificationKind::Escalated),
                ":red_circle:",
                "*Escalated to failure:* step \"pay\" failed: [STATUS] == 200 (actual 503)",
            ),
        ] {
            assert_eq!(emoji(&n), want_emoji);
            assert_eq!(what(&n)["text"]["text"], sentence);
        }
    }

    #[test]
    fn only_known_fields_and_links_are_shown() {
        let m = message(&degraded_notification(NotificationKind::Triggered));
        let b = &m["blocks"];
        assert_eq!(
            texts(&b[2], "fields"),
            [
                "*Journey*\nshop-checkout",
                "*Step*\nsearch",
                "*Locations*\neu-west"
            ]
        );
        assert_eq!(texts(&b[3], "elements").len(), 2, "no error line");
        let buttons = b[4]["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 1);
        assert_eq!(buttons[0]["action_id"], "waymark_incident");

        let mut prose = degraded_notification(NotificationKind::Triggered);
        prose.incident.runbook = Some("ask <#payments> first".into());
        let m = message(&prose);
        let fields = texts(&m["blocks"][2], "fields");
        assert_eq!(
            fields.last().unwrap(),
            "*Runbook*\nask &lt;#payments&gt; first"
        );
        let buttons = m["blocks"][4]["elements"].as_array().unwrap();
        assert_eq!(
            buttons.len(),
            1,
            "no button for a runbook that is not a link"
        );

        let mut bare = degraded_notification(NotificationKind::Triggered);
        bare.links.incident = None;
        let m = message(&bare);
        assert_eq!(block_types(&m), ["header", "section", "section", "context"]);
    }

    #[test]
    fn long_values_are_cut_to_block_kit_limits_and_markup_is_escaped() {
        let mut n = notification(NotificationKind::Triggered);
        n.incident.journey = "j".repeat(400);
        n.incident.cause.condition = Some(format!("<b>&{}", "x".repeat(5000)));
        n.incident.cause.error = Some("e".repeat(5000));
        n.links.trace = Some(format!("https://t.example.com/{}", "t".repeat(3000)));
        let m = message(&n);
        let b = &m["blocks"];
        let header = b[0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), HEADER_MAX);
        assert!(header.ends_with('…'));
        assert!(b[1]["text"]["text"].as_str().unwrap().chars().count() <= TEXT_MAX);
        let fields = texts(&b[2], "fields");
        assert!(fields.len() <= FIELDS_MAX);
        assert!(fields.iter().all(|f| f.chars().count() <= FIELD_MAX));
        assert!(
            fields[2].starts_with("*Condition*\n&lt;b&gt;&amp;xxx"),
            "{}",
            fields[2]
        );
        assert!(
            texts(&b[3], "elements")
                .iter()
                .all(|t| t.chars().count() <= TEXT_MAX)
        );
        let buttons = b[4]["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 3, "the over-long trace link is left out");
        assert!(buttons.iter().all(|b| b["action_id"] != "waymark_trace"));
    }

    #[tokio::test]
    async fn answers_are_classified_and_errors_hold_no_webhook_url() {
        let server = Recorder::start(200, "ok").await;
        assert_errors_classified(&slack(server.url(HOOK_PATH)), &server).await;
        server.answer(404, &[], "no_service");
        let e = slack(server.url(HOOK_PATH))
            .send(&notification(NotificationKind::Triggered))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            DeliveryError::Permanent {
                status: Some(404),
                message: "HTTP 404: no_service".into()
            }
        );
        let port = closed_port().await;
        let unreachable = slack(format!("http://127.0.0.1:{port}{HOOK_PATH}"));
        assert_unreachable_is_retried(&unreachable, "hooksecretpart").await;
    }
}
