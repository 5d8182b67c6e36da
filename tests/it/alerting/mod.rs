//! Alerting end to end: the real `waymark serve` runs a journey every second against a target
//! the test switches between healthy, failing and slow; notifications arrive at local stand-ins
//! for PagerDuty, Slack and a webhook receiver, and at a real SMTP server. Every field is
//! checked against what PagerDuty (Events API v2) and Slack (incoming webhooks, Block Kit)
//! document; delivery faults and a crash lose nothing.

pub(crate) mod peers;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::serve::{Serve, TOKEN, client, eventually, setup};
use peers::{Health, Received, Receiver, SmtpSink, Target};

const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000042";
const HOOK_SECRET: &str = "whsec-test-4f1d2c9a8b7e6d5c";

fn journey_yaml(target: &str) -> String {
    format!(
        r#"name: checkout
schedule: {{ every: 1s }}
owner: shop-team
tags: [critical]
runbook: https://wiki.example.com/runbooks/checkout
steps:
  - name: pay
    dependency: payments
    timeout: 3s
    http: {{ url: "{target}" }}
    conditions: ["[STATUS] == 200"]
    degraded_when: ["[RESPONSE_TIME] > 300"]
"#
    )
}

/// Failures page (PagerDuty + email), everything goes to Slack and the webhook.
fn config(receiver: &str, smtp_port: u16) -> String {
    format!(
        r#"
[alerting]
dashboard_url = "http://127.0.0.1:9999"
trace_url = "http://127.0.0.1:16686/trace/{{trace_id}}"
retry = {{ initial = "200ms", max = "2s" }}

[alerting.channels.pager]
type = "pagerduty"
routing_key = "${{TEST_PD_ROUTING_KEY}}"
url = "{receiver}/v2/enqueue"

[alerting.channels.chat]
type = "slack"
webhook_url = "{receiver}/slack/T0000/B0000/XXXXXXXX"

[alerting.channels.hook]
type = "webhook"
url = "{receiver}/hook"
secret = "${{TEST_HOOK_SECRET}}"

[alerting.channels.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "Waymark <waymark@example.com>"
to = ["oncall@example.com"]

[[alerting.routes]]
severity = ["failure"]
channels = ["pager", "mail"]

[[alerting.routes]]
channels = ["chat", "hook"]
"#
    )
}

const SECRETS: &[(&str, &str)] = &[
    ("TEST_PD_ROUTING_KEY", ROUTING_KEY),
    ("TEST_HOOK_SECRET", HOOK_SECRET),
];

struct Setup {
    dir: tempfile::TempDir,
    target: Target,
    receiver: Receiver,
    smtp: SmtpSink,
}

async fn set_up() -> Setup {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let dir = setup(&[("checkout.yaml", journey_yaml(&target.url))]);
    let smtp = SmtpSink::start(&dir.path().join("mail"));
    std::fs::write(
        dir.path().join("waymark.toml"),
        config(&receiver.base, smtp.port),
    )
    .unwrap();
    Setup {
        dir,
        target,
        receiver,
        smtp,
    }
}

pub(crate) async fn post(
    serve: &Serve,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}{path}", serve.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until the receiver holds `n` requests under `path`; returns them.
async fn requests(serve: &Serve, rx: &Receiver, path: &str, n: usize, secs: u64) -> Vec<Received> {
    eventually(
        &format!("{n} requests to {path}"),
        serve,
        Duration::from_secs(secs),
        || async { Some(rx.received(path)).filter(|r| r.len() >= n) },
    )
    .await
}

async fn incident(serve: &Serve, state: &str) -> Value {
    eventually(
        &format!("an {state} incident"),
        serve,
        Duration::from_secs(20),
        || async {
            let v = serve
                .json(&format!("/api/v1/incidents?state={state}"))
                .await;
            v["incidents"].as_array().and_then(|a| a.first().cloned())
        },
    )
    .await
}

/// PagerDuty Events API v2, as documented: a trigger carries routing_key, event_action,
/// dedup_key and a payload with summary, source and severity (required), timestamp,
/// component, group, class and custom_details; links are {href, text}.
fn check_pagerduty_trigger(event: &Value, incident: &Value) {
    assert_eq!(event["routing_key"], ROUTING_KEY);
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], incident["dedup_key"]);
    let p = &event["payload"];
    let summary = p["summary"].as_str().unwrap();
    assert!(
        summary.len() <= 1024 && summary.contains("checkout"),
        "{summary}"
    );
    assert!(
        summary.contains("[STATUS] == 200") && summary.contains("503"),
        "{summary}"
    );
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "local");
    assert_eq!(p["component"], "checkout");
    assert_eq!(p["group"], "shop-team");
    assert_eq!(p["class"], "http_status");
    chrono::DateTime::parse_from_rfc3339(p["timestamp"].as_str().unwrap()).unwrap();
    let d = &p["custom_details"];
    assert_eq!(d["step"], "pay");
    assert_eq!(d["dependency"], "payments");
    assert_eq!(d["condition"], "[STATUS] == 200");
    assert_eq!(d["actual"], "503");
    assert_eq!(d["run_id"], incident["cause"]["run_id"]);
    assert_eq!(d["trace_id"], incident["cause"]["trace_id"]);
    assert_eq!(d["runbook"], "https://wiki.example.com/runbooks/checkout");
    assert_eq!(d["owner"], "shop-team");
    let hrefs: Vec<&str> = event["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l["text"].as_str().is_some_and(|t| !t.is_empty()), "{l}");
            l["href"].as_str().unwrap()
        })
        .collect();
    let run = format!(
        "http://127.0.0.1:9999/app/runs/{}",
        d["run_id"].as_str().unwrap()
    );
    let trace = format!(
        "http://127.0.0.1:16686/trace/{}",
        d["trace_id"].as_str().unwrap()
    );
    for link in [
        run.as_str(),
        trace.as_str(),
        "https://wiki.example.com/runbooks/checkout",
    ] {
        assert!(hrefs.contains(&link), "{link} not in {hrefs:?}");
    }
}

/// Slack incoming webhooks take `text` (the notification fallback) and `blocks`; Block Kit
/// limits: header plain_text ≤ 150 chars, section text ≤ 3000, ≤ 10 fields, buttons with
/// text ≤ 75 chars, a url and a unique action_id.
fn check_slack(message: &Value, words: &[&str]) {
    let text = message["text"].as_str().unwrap();
    for w in words {
        assert!(text.contains(w), "`{w}` not in {text}");
    }
    let blocks = message["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    let mut action_ids = Vec::new();
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                if let Some(t) = b.get("text") {
                    assert!(t["text"].as_str().unwrap().chars().count() <= 3000);
                }
                if let Some(f) = b.get("fields") {
                    assert!(f.as_array().unwrap().len() <= 10);
                }
            }
            "actions" => {
                for e in b["elements"].as_array().unwrap() {
                    assert_eq!(e["type"], "button");
                    assert!(e["text"]["text"].as_str().unwrap().chars().count() <= 75);
                    assert!(e["url"].as_str().unwrap().starts_with("http"));
                    action_ids.push(e["action_id"].as_str().unwrap().to_string());
                }
            }
            "context" | "divider" => {}
            other => panic!("unexpected block type {other}"),
        }
    }
    let unique: std::collections::BTreeSet<_> = action_ids.iter().collect();
    assert_eq!(unique.len(), action_ids.len(), "action_ids must be unique");
}

/// Verifies `Waymark-Signature` with openssl, as docs/alerting.md tells receivers to.
fn check_signature(request: &Received, dir: &Path) {
    let ts = &request.headers["waymark-timestamp"];
    let signature = request.headers["waymark-signature"]
        .strip_prefix("v1=")
        .unwrap()
        .to_string();
    let signed = dir.join("signed-payload");
    let mut bytes = format!("{ts}.").into_bytes();
    bytes.extend_from_slice(&request.body);
    std::fs::write(&signed, bytes).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", HOOK_SECRET, "-hex"])
        .arg(&signed)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = text.trim().rsplit(' ').next().unwrap();
    assert_eq!(signature, expected, "openssl says {text}");
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {ts}");
}

/// The database and every log of the test's `waymark serve` processes.
fn no_secrets_in(dir: &Path) {
    let mut haystacks = Vec::new();
    for name in ["w.db", "w.db-wal", "serve-1.log", "serve-2.log"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            haystacks.push((name.to_string(), bytes));
        }
    }
    for (name, bytes) in haystacks {
        let text = String::from_utf8_lossy(&bytes);
        for secret in [ROUTING_KEY, HOOK_SECRET] {
            assert!(!text.contains(secret), "a secret is in the {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_page_degradations_tell_the_team_and_recoveries_resolve() {
    let s = set_up().await;
    let serve = Serve::start_with(s.dir.path(), 1, SECRETS);
    let rx = &s.receiver;
    eventually(
        "two passing runs",
        &serve,
        Duration::from_secs(10),
        || async {
            let v = serve.json("/api/v1/journeys").await;
            let last = &v["journeys"][0]["last_run"];
            (last["outcome"] == "passed").then_some(())
        },
    )
    .await;

    // Failing: the second failed run opens a failure incident and pages.
    s.target.set(Health::Failing);
    let pd = requests(&serve, rx, "/v2/enqueue", 1, 20).await;
    let open = incident(&serve, "open").await;
    assert_eq!(open["severity"], "failure");
    check_pagerduty_trigger(&pd[0].json(), &open);
    assert_eq!(pd[0].headers["content-type"], "application/json");
    // Time from the run that confirmed the failure to the page, on loopback.
    let run_id = open["cause"]["run_id"].as_str().unwrap();
    let run = eventually(
        "the confirming run stored",
        &serve,
        Duration::from_secs(5),
        || async {
            let (status, body) = serve.get(&format!("/api/v1/runs/{run_id}")).await;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
        },
    )
    .await;
    let finished = chrono::DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let latency = pd[0].at - finished;
    println!(
        "confirming run finished → PagerDuty request received: {} ms",
        latency.num_milliseconds()
    );
    assert!(latency < chrono::Duration::seconds(1), "{latency}");
    assert!(latency >= chrono::Duration::zero(), "{latency}");

    let slack = requests(&serve, rx, "/slack/", 1, 10).await;
    check_slack(&slack[0].json(), &["checkout"]);
    let hook = requests(&serve, rx, "/hook", 1, 10).await;
    check_signature(&hook[0], s.dir.path());
    let body = hook[0].json();
    assert_eq!(body["schema"], "waymark.notification/v1");
    assert_eq!(body["kind"], "triggered");
    assert_eq!(body["incident"]["dedup_key"], open["dedup_key"]);
    assert_eq!(
        body["incident"]["runbook"],
        "https://wiki.example.com/runbooks/checkout"
    );
    assert_eq!(
        hook[0].headers["waymark-delivery"],
        body["id"].as_str().unwrap()
    );
    let mail = eventually(
        "the paging email",
        &serve,
        Duration::from_secs(10),
        || async { s.smtp.messages().into_iter().next() },
    )
    .await;
    let subject = mail["headers"]["Subject"].as_str().unwrap();
    assert!(
        subject.contains("FAILURE") && subject.contains("checkout"),
        "{subject}"
    );
    let types: Vec<&str> = mail["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert!(
        mail["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/alternative")
    );
    assert_eq!(types, ["text/plain", "text/html"]);
    for part in mail["parts"].as_array().unwrap() {
        let content = part["content"].as_str().unwrap();
        assert!(
            content.contains("https://wiki.example.com/runbooks/checkout")
                && content.contains("shop-team")
        );
    }

    // Healthy again: two good runs resolve it, everywhere, with the same dedup key.
    s.target.set(Health::Healthy);
    let pd = requests(&serve, rx, "/v2/enqueue", 2, 20).await;
    let resolve = pd[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], open["dedup_key"]);
    assert_eq!(resolve["routing_key"], ROUTING_KEY);
    let slack = requests(&serve, rx, "/slack/", 2, 10).await;
    check_slack(&slack[1].json(), &["checkout"]);
    let resolved_text = serde_json::to_string(&slack[1].json()).unwrap();
    assert!(
        resolved_text.to_lowercase().contains("resolved"),
        "{resolved_text}"
    );
    let path = format!("/api/v1/incidents/{}", open["id"]);
    eventually(
        "8 notifications delivered",
        &serve,
        Duration::from_secs(10),
        || async {
            let v = serve.json(&path).await;
            assert_eq!(v["incident"]["state"], "resolved");
            let statuses: Vec<String> = v["notifications"]
                .as_array()?
                .iter()
                .map(|n| n["status"].to_string())
                .collect();
            // 4 channels × trigger and resolve.
            (statuses.len() == 8 && statuses.iter().all(|s| s == "\"delivered\"")).then_some(())
        },
    )
    .await;
    let mails = eventually(
        "the resolve email",
        &serve,
        Duration::from_secs(10),
        || async { Some(s.smtp.messages()).filter(|m| m.len() == 2) },
    )
    .await;
    assert!(
        mails[1]["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("RESOLVED")
    );

    // Slow: a degradation goes to Slack and the webhook, not to the pager; acknowledged
    // through the API (token required), then resolved by good runs. Resolved less than 30
    // minutes ago, so it is the same incident, reopened.
    s.target.set(Health::Slow);
    let degraded = incident(&serve, "open").await;
    assert_eq!(degraded["severity"], "degraded");
    assert_eq!(degraded["id"], open["id"]);
    assert_eq!(degraded["reopened"], 1);
    assert_eq!(degraded["cause"]["condition"], "[RESPONSE_TIME] > 300");
    let slack = requests(&serve, rx, "/slack/", 3, 10).await;
    check_slack(&slack[2].json(), &["checkout"]);
    let id = degraded["id"].as_i64().unwrap();
    let (status, _) = post(&serve, &format!("/api/v1/incidents/{id}/ack"), None, "").await;
    assert_eq!(status, 401);
    let (status, acked) = post(
        &serve,
        &format!("/api/v1/incidents/{id}/ack"),
        Some(TOKEN),
        r#"{"by": "ada"}"#,
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["incident"]["state"], "acknowledged");
    assert_eq!(acked["incident"]["acknowledged_by"], "ada");
    let (status, _) = post(
        &serve,
        &format!("/api/v1/incidents/{id}/ack"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(&serve, "/api/v1/incidents/999999/resolve", Some(TOKEN), "").await;
    assert_eq!(status, 404);
    requests(&serve, rx, "/slack/", 4, 10).await;
    s.target.set(Health::Healthy);
    eventually(
        "the degradation resolved",
        &serve,
        Duration::from_secs(20),
        || async {
            let v = serve.json(&format!("/api/v1/incidents/{id}")).await;
            (v["incident"]["state"] == "resolved").then_some(())
        },
    )
    .await;
    requests(&serve, rx, "/slack/", 5, 10).await;
    assert_eq!(
        rx.received("/v2/enqueue").len(),
        2,
        "the pager heard nothing of the degradation"
    );

    let detail = serve.json(&format!("/api/v1/incidents/{id}")).await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // One incident: the degradation came within 30 minutes of the failure's resolution.
    assert_eq!(
        kinds,
        [
            "triggered",
            "resolved",
            "reopened",
            "acknowledged",
            "resolved"
        ]
    );
    let metrics = serve.get("/metrics").await.1;
    assert!(
        metrics.contains(
            "waymark_notification_attempts_total{channel=\"pager\",outcome=\"delivered\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("waymark_notifications{channel=\"pager\",status=\"delivered\"} 2"));
    assert!(metrics.contains("waymark_incidents_open 0"), "{metrics}");
    serve.stop(libc::SIGTERM).await;
    no_secrets_in(s.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_errors_are_retried_with_backoff_and_retry_after_is_honoured() {
    let s = set_up().await;
    let rx = &s.receiver;
    rx.script("/v2/enqueue", &[(500, None), (500, None), (500, None)]);
    let serve = Serve::start_with(s.dir.path(), 1, SECRETS);
    s.target.set(Health::Failing);
    let pd = requests(&serve, rx, "/v2/enqueue", 4, 30).await;
    let statuses: Vec<u16> = pd.iter().map(|r| r.answered).collect();
    assert_eq!(statuses, [500, 500, 500, 202]);
    let keys: Vec<Value> = pd.iter().map(|r| r.json()["dedup_key"].clone()).collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one incident on PagerDuty's side: {keys:?}"
    );
    // Backoff grows: 200 ms, 400 ms, 800 ms, each in [½, 1] of that.
    let gaps: Vec<i64> = pd
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_milliseconds())
        .collect();
    assert!(gaps[0] >= 90 && gaps[2] >= 390, "{gaps:?}");
    let open = incident(&serve, "open").await;
    let detail = eventually(
        "attempts recorded",
        &serve,
        Duration::from_secs(5),
        || async {
            let v = serve
                .json(&format!("/api/v1/incidents/{}", open["id"]))
                .await;
            let pager = v["notifications"]
                .as_array()?
                .iter()
                .find(|n| n["channel"] == "pager")?
                .clone();
            (pager["status"] == "delivered").then_some(pager)
        },
    )
    .await;
    let attempts: Vec<(&str, u64)> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap(),
                a["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("retry", 500),
            ("retry", 500),
            ("retry", 500),
            ("delivered", 202)
        ]
    );

    // The resolve meets a 429 with Retry-After: 2; the next attempt waits at least that.
    rx.script("/v2/enqueue", &[(429, Some(2))]);
    s.target.set(Health::Healthy);
    let pd = requests(&serve, rx, "/v2/enqueue", 6, 30).await;
    assert_eq!((pd[4].answered, pd[5].answered), (429, 202));
    assert_eq!(pd[5].json()["event_action"], "resolve");
    let waited = pd[5].at - pd[4].at;
    assert!(waited >= chrono::Duration::milliseconds(1950), "{waited}");
    assert!(waited < chrono::Duration::milliseconds(3500), "{waited}");
    serve.stop(libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_pages_survive_a_sigkill_and_go_out_after_restart() {
    let s = set_up().await;
    let rx = &s.receiver;
    rx.set_down("/v2/enqueue", Some(503));
    let serve = Serve::start_with(s.dir.path(), 1, SECRETS);
    s.target.set(Health::Failing);
    let open = incident(&serve, "open").await;
    requests(&serve, rx, "/v2/enqueue", 1, 20).await;
    assert_eq!(serve.stop(libc::SIGKILL).await, None);
    let refused = rx.received("/v2/enqueue").len();

    rx.set_down("/v2/enqueue", None);
    let serve = Serve::start_with(s.dir.path(), 2, SECRETS);
    let pd = requests(&serve, rx, "/v2/enqueue", refused + 1, 20).await;
    let delivered = pd.last().unwrap();
    assert_eq!(delivered.answered, 202);
    assert_eq!(delivered.json()["dedup_key"], open["dedup_key"]);
    assert_eq!(delivered.json()["event_action"], "trigger");
    let all = serve.json("/api/v1/incidents").await;
    assert_eq!(
        all["incidents"].as_array().unwrap().len(),
        1,
        "resumed, not reopened: {all}"
    );
    serve.stop(libc::SIGTERM).await;
}
