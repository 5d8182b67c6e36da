//! The email notifier against a real SMTP server (tests/peers/smtp_sink.py, aiosmtpd).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::body::*;
use super::*;
use crate::alert::{NotificationKind, ResolvedBy};
use crate::channels::config::Secret;
use crate::channels::test_support::{
    NOTIFICATION_ID, closed_port, degraded_notification, notification,
};

const PASSWORD: &str = "Sm7p-pa55word-9qX";

/// `tests/peers/smtp_sink.py` on 127.0.0.1, killed when dropped.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start(args: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg("tests/peers/smtp_sink.py")
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the sink prints its port, not {line:?}"));
        Sink { child, port, dir }
    }

    /// The `n`th message the sink accepted (from 1).
    async fn message(&self, n: usize) -> Value {
        let path = self.dir.path().join(format!("{n}.json"));
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the sink received no message {n}");
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16) -> EmailConfig {
    EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: Some(port),
        tls: SmtpTls::None,
        ca_file: None,
        username: None,
        password: None,
        from: "Waymark <alerts@waymark.test>".into(),
        to: vec![
            "oncall@example.com".into(),
            "Payments Team <payments@example.com>".into(),
        ],
    }
}

/// A self-signed certificate for 127.0.0.1 (an IP SAN: rustls checks IP names too),
/// written as `cert.pem` and `key.pem` into `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn part<'v>(mail: &'v Value, content_type: &str) -> &'v str {
    mail["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {mail}"))["content"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn a_notification_is_a_plain_and_html_mail_to_every_recipient() {
    let sink = Sink::start(&[]);
    let mut n = notification(NotificationKind::Triggered);
    n.incident.cause.error = Some("upstream said <script>alert('x')</script> & quit".into());
    let delivered = Email::new(&config(sink.port)).send(&n).await.unwrap();
    assert_eq!(delivered, Delivered { status: Some(250) });

    let mail = sink.message(1).await;
    assert_eq!(mail["mail_from"], "alerts@waymark.test");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "payments@example.com"])
    );
    let headers = &mail["headers"];
    assert_eq!(headers["Subject"], n.summary());
    assert_eq!(
        headers["Message-ID"],
        format!("<{NOTIFICATION_ID}@waymark>")
    );
    assert_eq!(headers["From"], "Waymark <alerts@waymark.test>");
    assert_eq!(
        headers["To"],
        "oncall@example.com, Payments Team <payments@example.com>"
    );
    assert_eq!(headers["Date"], "Sun, 01 Mar 2026 10:02:00 +0000");
    let content_type = headers["Content-Type"].as_str().unwrap();
    assert!(
        content_type.starts_with("multipart/alternative;"),
        "{content_type}"
    );
    assert_eq!(mail["parts"].as_array().unwrap().len(), 2);

    let plain = part(&mail, "text/plain");
    let html = part(&mail, "text/html");
    for body in [plain, html] {
        assert!(
            body.contains("https://wiki.example.com/runbooks/checkout"),
            "{body}"
        );
        assert!(body.contains("team-payments"), "{body}");
        assert!(body.contains("shop-checkout"), "{body}");
    }
    assert!(plain.contains("Error:             upstream said <script>alert('x')</script> & quit"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("upstream said &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; quit")
    );
}

#[tokio::test]
async fn starttls_and_auth_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let sink = Sink::start(&[
        "--starttls-cert",
        cert.to_str().unwrap(),
        "--starttls-key",
        key.to_str().unwrap(),
        "--user",
        "waymark",
        "--password",
        PASSWORD,
    ]);
    let mut c = config(sink.port);
    c.tls = SmtpTls::Starttls;
    c.ca_file = Some(cert.clone());
    c.username = Some("waymark".into());
    c.password = Some(Secret::new(PASSWORD));
    let n = notification(NotificationKind::Resolved);
    let delivered = Email::new(&c).send(&n).await.unwrap();
    assert_eq!(delivered, Delivered { status: Some(250) });

    let mail = sink.message(1).await;
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["login"], "waymark");
    assert_eq!(
        mail["headers"]["Subject"],
        "[RESOLVED] shop-checkout: resolved"
    );
    assert!(part(&mail, "text/plain").contains("Resolved after 1h 4m: runs pass again."));
    assert!(!mail.to_string().contains(PASSWORD), "the password leaked");
    assert!(!mail["raw"].as_str().unwrap().contains("pa55word"));

    c.password = Some(Secret::new("wrong-password"));
    let e = Email::new(&c).send(&n).await.unwrap_err();
    assert!(
        matches!(
            &e,
            DeliveryError::Permanent {
                status: Some(535),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("wrong-password"), "{e}");

    c.ca_file = None;
    c.password = Some(Secret::new(PASSWORD));
    let e = Email::new(&c).send(&n).await.unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Retry { status: None, .. }),
        "an untrusted certificate is a TLS failure: {e:?}"
    );
    assert_eq!(sink.count(), 1, "nothing else got through");
}

#[tokio::test]
async fn starttls_is_required_not_opportunistic() {
    let sink = Sink::start(&[]);
    let mut c = config(sink.port);
    c.tls = SmtpTls::Starttls;
    let e = Email::new(&c)
        .send(&notification(NotificationKind::Triggered))
        .await
        .unwrap_err();
    assert!(matches!(&e, DeliveryError::Retry { .. }), "{e:?}");
    assert_eq!(sink.count(), 0, "nothing was sent in plain text");
}

#[tokio::test]
async fn a_rejected_recipient_is_permanent() {
    let sink = Sink::start(&["--reject-rcpt", "payments@example.com"]);
    let e = Email::new(&config(sink.port))
        .send(&notification(NotificationKind::Triggered))
        .await
        .unwrap_err();
    let DeliveryError::Permanent { status, message } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*status, Some(550));
    assert!(message.contains("mailbox unavailable"), "{message}");
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_closed_port_is_retried() {
    let port = closed_port().await;
    let e = Email::new(&config(port))
        .send(&notification(NotificationKind::Triggered))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            DeliveryError::Retry {
                status: None,
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn configuration_mistakes_fail_every_attempt_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let mut bad_from = config(1);
    bad_from.from = "not an address".into();
    let mut missing_ca = config(1);
    missing_ca.tls = SmtpTls::Implicit;
    missing_ca.ca_file = Some("/nonexistent/ca.pem".into());
    let mut empty_ca = config(1);
    empty_ca.tls = SmtpTls::Starttls;
    empty_ca.ca_file = Some(empty.clone());
    for (c, expected) in [
        (bad_from, "invalid address \"not an address\"".to_string()),
        (missing_ca, "cannot read ca_file /nonexistent/ca.pem".into()),
        (
            empty_ca,
            format!("ca_file {} holds no certificate", empty.display()),
        ),
    ] {
        let e = Email::new(&c)
            .send(&notification(NotificationKind::Triggered))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, DeliveryError::Permanent { status: None, message } if message.contains(&expected)),
            "{expected}: {e:?}"
        );
    }
}

#[test]
fn the_text_part_lists_every_fact_and_link() {
    let n = notification(NotificationKind::Acknowledged);
    let expected = format!(
        "[ACK] shop-checkout: acknowledged

Acknowledged by alice: step \"pay\" failed: [STATUS] == 200 (actual 503).

Journey:           shop-checkout
Severity:          failure
State:             acknowledged
Incident:          #42
Started:           2026-03-01 10:00:00 UTC
Opened:            2026-03-01 10:02:00 UTC
Acknowledged:      2026-03-01 10:10:00 UTC by alice
Duration:          10m
Owner:             team-payments
Runbook:           https://wiki.example.com/runbooks/checkout
Tags:              shop, critical-path
Step:              pay
Dependency:        payments-api
Failure class:     condition
Condition:         [STATUS] == 200
Actual value:      503
Error:             condition failed: [STATUS] == 200 (actual 503)
Location:          eu-west
Failing locations: eu-west, us-east
Run:               {run}
Trace ID:          4bf92f3577b34da6a3ce929d0e0e4736

Links:
  Incident:          https://waymark.example.com/incidents/42
  Run:               https://waymark.example.com/runs/{run}
  Trace:             http://jaeger.example.com:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736
  Runbook:           https://wiki.example.com/runbooks/checkout

-- 
Waymark notification {id} (acknowledged) for channel oncall.
",
        run = crate::channels::test_support::RUN_ID,
        id = NOTIFICATION_ID,
    );
    assert_eq!(text(&n), expected);
}

#[test]
fn degradations_resolutions_and_odd_values_read_well() {
    let mut slow = degraded_notification(NotificationKind::Reminder);
    slow.incident.reopened = 2;
    slow.incident.flapping = true;
    slow.incident.cause.error = Some("line one\nline two".into());
    let t = text(&slow);
    assert!(t.contains("Still open after 2m: step \"search\" is slower than its baseline"));
    assert!(t.contains("\nAnomaly:           latency of step \"search\" at eu-west: 412.4 (baseline 80), episode 7\n"));
    assert!(t.contains("\nReopened:          2 times\nFlapping:          yes\n"));
    assert!(t.contains("\nError:             line one\n                   line two\n"));
    assert!(!t.contains("Owner:") && !t.contains("Runbook"), "{t}");

    let mut resolved = notification(NotificationKind::Resolved);
    resolved.incident.resolved_by = Some(ResolvedBy::User("bob".into()));
    assert_eq!(what(&resolved), "Resolved by bob after 1h 4m.");
    assert!(text(&resolved).contains("\nResolved:          2026-03-01 11:04:12 UTC by bob\n"));
    assert!(html(&resolved).contains("border-left:6px solid #1a7f37"));

    let mut odd = notification(NotificationKind::Triggered);
    odd.links.runbook = Some("javascript:alert(1)".into());
    odd.incident.journey = "a\"b".into();
    let h = html(&odd);
    assert!(!h.contains("href=\"javascript:"), "{h}");
    assert!(
        h.contains("<span>Runbook: javascript:alert(1)</span>"),
        "{h}"
    );
    assert!(h.contains("<title>[FAILURE] a&quot;b: step"), "{h}");
    assert!(h.contains(&format!(
        "<a href=\"https://waymark.example.com/runs/{}\" style=",
        crate::channels::test_support::RUN_ID
    )));
}
