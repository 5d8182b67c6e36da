//! Email over SMTP (lettre): one `multipart/alternative` message per notification, to every
//! configured recipient.
//!
//! - The plain-text part is complete (every fact and link): it is what a pager gateway or a
//!   terminal mail reader shows. The HTML part says the same with a little inline CSS (mail
//!   clients drop `<style>` and external sheets); every value in it is HTML-escaped, since
//!   errors and conditions come from the monitored service.
//! - `Message-ID: <{notification id}@waymark>`: a retried notification is the same message, so
//!   relays and clients that dedupe on it show it once.
//! - TLS: STARTTLS (required, never opportunistic), implicit TLS, or none for a local relay;
//!   roots are webpki's plus the configured `ca_file`.
//! - SMTP 5xx replies are permanent, 4xx and connection, TLS and timeout failures are retried;
//!   the reply code is the error's `status`. The password goes only to the AUTH exchange.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::human_duration;
use super::{BoxFuture, Delivered, DeliveryError, Notifier, SEND_TIMEOUT};
use crate::alert::config::{EmailConfig, SmtpTls};
use crate::alert::{Notification, NotificationKind, Severity};

pub struct Email {
    /// What sends, or why this configuration cannot: reported on every attempt as permanent,
    /// since retrying cannot fix a configuration.
    ready: Result<Ready, String>,
}

struct Ready {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(config: &EmailConfig) -> Email {
        Email {
            ready: Ready::new(config),
        }
    }
}

impl Notifier for Email {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let ready = self.ready.as_ref().map_err(|e| permanent(e.clone()))?;
            let message = message(n, &ready.from, &ready.to).map_err(permanent)?;
            // lettre's timeout bounds each step; this bounds the whole attempt.
            match tokio::time::timeout(SEND_TIMEOUT, ready.transport.send(message)).await {
                Ok(Ok(response)) => Ok(Delivered {
                    status: Some(response.code().into()),
                }),
                Ok(Err(e)) => Err(classify(&e)),
                Err(_) => Err(DeliveryError::Retry {
                    status: None,
                    message: format!("SMTP delivery timed out after {SEND_TIMEOUT:?}"),
                    retry_after: None,
                }),
            }
        })
    }
}

/// The configuration's problem, if it has one (addresses, CA file), for checking at load.
pub fn check(config: &EmailConfig) -> Result<(), String> {
    Ready::new(config).map(drop)
}

impl Ready {
    fn new(config: &EmailConfig) -> Result<Ready, String> {
        let parse = |address: &String| {
            address
                .parse::<Mailbox>()
                .map_err(|e| format!("invalid address {address:?}: {e}"))
        };
        Ok(Ready {
            transport: transport(config)?,
            from: parse(&config.from)?,
            to: config.to.iter().map(parse).collect::<Result<_, _>>()?,
        })
    }
}

fn transport(config: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
        .port(config.port())
        .timeout(Some(SEND_TIMEOUT))
        .tls(tls(config)?);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

fn tls(config: &EmailConfig) -> Result<Tls, String> {
    let wrap = match config.tls {
        SmtpTls::None => return Ok(Tls::None),
        SmtpTls::Starttls => Tls::Required,
        SmtpTls::Implicit => Tls::Wrapper,
    };
    let mut params = TlsParameters::builder(config.smtp_host.clone())
        .certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = &config.ca_file {
        for cert in ca_certificates(path)? {
            params = params.add_root_certificate(cert);
        }
    }
    let params = params
        .build()
        .map_err(|e| format!("TLS settings for {}: {e}", config.smtp_host))?;
    Ok(wrap(params))
}

/// Every certificate of a PEM file; a file without one is a mistake worth naming.
fn ca_certificates(path: &std::path::Path) -> Result<Vec<Certificate>, String> {
    let what = || format!("ca_file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", what()))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", what()))?;
    if ders.is_empty() {
        return Err(format!("{} holds no certificate", what()));
    }
    ders.into_iter()
        .map(|der| Certificate::from_der(der.to_vec()).map_err(|e| format!("{}: {e}", what())))
        .collect()
}

fn permanent(message: String) -> DeliveryError {
    DeliveryError::Permanent {
        status: None,
        message,
    }
}

/// 5xx replies are permanent; everything else (4xx, connection, TLS, timeouts, garbled
/// replies) may pass on a later attempt.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let status = e.status().map(u16::from);
    let message = format!("SMTP: {e}");
    if e.is_permanent() {
        DeliveryError::Permanent { status, message }
    } else {
        DeliveryError::Retry {
            status,
            message,
            retry_after: None,
        }
    }
}

fn message(n: &Notification, from: &Mailbox, to: &[Mailbox]) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(n.summary())
        .message_id(Some(format!("<{}@waymark>", n.id)))
        .date(SystemTime::from(n.created_at));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(text(n), html(n)))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// What changed with this notification, in one sentence.
fn what(n: &Notification) -> String {
    let i = &n.incident;
    let headline = i.cause.headline(i.severity);
    let lasted = human_duration(i.duration(n.created_at));
    match n.kind {
        NotificationKind::Triggered => format!("{headline}."),
        NotificationKind::Escalated => format!("Escalated to failure: {headline}."),
        NotificationKind::Reopened => format!("Failing again (reopened): {headline}."),
        NotificationKind::Reminder => format!("Still open after {lasted}: {headline}."),
        NotificationKind::Flapping => format!(
            "The journey changes state too often; further changes are not notified until it \
             settles. Latest: {headline}."
        ),
        NotificationKind::Acknowledged => format!(
            "Acknowledged by {}: {headline}.",
            i.acknowledged_by.as_deref().unwrap_or("someone")
        ),
        NotificationKind::Resolved => match i.resolved_by.as_deref() {
            Some("auto") | None => format!("Resolved after {lasted}: runs pass again."),
            Some(who) => format!("Resolved by {who} after {lasted}."),
        },
    }
}

/// Every known fact of the incident, labelled, in reading order.
fn facts(n: &Notification) -> Vec<(&'static str, String)> {
    let i = &n.incident;
    let c = &i.cause;
    let by = |at: DateTime<Utc>, who: &Option<String>| match who {
        Some(who) => format!("{} by {who}", stamp(at)),
        None => stamp(at),
    };
    let anomaly = c.anomaly.as_ref().map(|a| {
        format!(
            "{} of step \"{}\" at {}: {} (baseline {}), episode {}",
            a.detector, a.step, a.location, a.value, a.baseline, a.episode_id
        )
    });
    [
        ("Journey", Some(i.journey.clone())),
        ("Severity", Some(i.severity.as_str().to_string())),
        ("State", Some(i.state.as_str().to_string())),
        ("Incident", Some(format!("#{}", i.id))),
        ("Started", Some(stamp(i.started_at))),
        ("Opened", Some(stamp(i.opened_at))),
        (
            "Acknowledged",
            i.acknowledged_at.map(|t| by(t, &i.acknowledged_by)),
        ),
        ("Resolved", i.resolved_at.map(|t| by(t, &i.resolved_by))),
        ("Duration", Some(human_duration(i.duration(n.created_at)))),
        (
            "Reopened",
            (i.reopened > 0).then(|| format!("{} times", i.reopened)),
        ),
        ("Flapping", i.flapping.then(|| "yes".to_string())),
        ("Owner", i.owner.clone()),
        ("Runbook", n.runbook().map(str::to_string)),
        ("Tags", (!i.tags.is_empty()).then(|| i.tags.join(", "))),
        ("Step", c.step.clone()),
        ("Dependency", c.dependency.clone()),
        ("Failure class", c.failure_class.clone()),
        ("Condition", c.condition.clone()),
        ("Actual value", c.actual.clone()),
        ("Error", c.error.clone()),
        ("Location", c.location.clone()),
        (
            "Failing locations",
            (!c.failing_locations.is_empty()).then(|| c.failing_locations.join(", ")),
        ),
        ("Anomaly", anomaly),
        ("Run", c.run_id.map(|id| id.to_string())),
        ("Trace ID", c.trace_id.clone()),
    ]
    .into_iter()
    .filter_map(|(label, value)| Some((label, value?)))
    .collect()
}

fn links(n: &Notification) -> Vec<(&'static str, &str)> {
    [
        ("Incident", n.links.incident.as_deref()),
        ("Run", n.links.run.as_deref()),
        ("Trace", n.links.trace.as_deref()),
        ("Runbook", n.runbook()),
    ]
    .into_iter()
    .filter_map(|(label, href)| Some((label, href?)))
    .collect()
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn footer(n: &Notification) -> String {
    format!(
        "Waymark notification {} ({}) for channel {}.",
        n.id,
        n.kind.as_str(),
        n.channel
    )
}

/// The plain-text part: summary, sentence, facts, links, footer.
fn text(n: &Notification) -> String {
    const INDENT: usize = 19;
    let mut out = format!("{}\n\n{}\n\n", n.summary(), what(n));
    for (label, value) in facts(n) {
        let value = value.replace('\n', &format!("\n{:INDENT$}", ""));
        out += &format!("{:<INDENT$}{value}\n", format!("{label}:"));
    }
    let links = links(n);
    if !links.is_empty() {
        out += "\nLinks:\n";
        for (label, href) in links {
            out += &format!("  {:<INDENT$}{href}\n", format!("{label}:"));
        }
    }
    out + "\n-- \n" + &footer(n) + "\n"
}

const BODY_CSS: &str = "margin:0;padding:16px;font-family:-apple-system,'Segoe UI',Helvetica,\
                        Arial,sans-serif;color:#1f2328;background:#ffffff;";
const TH_CSS: &str = "text-align:left;vertical-align:top;padding:3px 16px 3px 0;color:#57606a;\
                      font-weight:normal;white-space:nowrap;";
const TD_CSS: &str = "padding:3px 0;white-space:pre-wrap;word-break:break-word;";
const BUTTON_CSS: &str = "display:inline-block;margin:0 8px 8px 0;padding:6px 12px;\
                          border:1px solid #d0d7de;border-radius:6px;color:#0969da;\
                          text-decoration:none;";
const SMALL_CSS: &str = "margin:16px 0 0;color:#57606a;font-size:12px;";

/// The HTML part: the text part's content, laid out; every value escaped.
fn html(n: &Notification) -> String {
    let rows: String = facts(n)
        .iter()
        .map(|(label, value)| {
            format!(
                "<tr><th style=\"{TH_CSS}\">{}</th><td style=\"{TD_CSS}\">{}</td></tr>\n",
                escape(label),
                escape(value)
            )
        })
        .collect();
    let buttons: String = links(n).iter().map(|(l, href)| button(l, href)).collect();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{summary}</title></head>\n\
         <body style=\"{BODY_CSS}\">\n\
         <div style=\"border-left:6px solid {color};padding:4px 16px;\">\n\
         <h2 style=\"margin:0 0 8px;font-size:18px;\">{summary}</h2>\n\
         <p style=\"margin:0 0 12px;font-size:15px;\">{what}</p>\n\
         <table style=\"border-collapse:collapse;font-size:14px;\">\n{rows}</table>\n\
         <p style=\"margin:12px 0 0;\">{buttons}</p>\n\
         </div>\n<p style=\"{SMALL_CSS}\">{footer}</p>\n</body></html>\n",
        summary = escape(&n.summary()),
        color = color(n),
        what = escape(&what(n)),
        footer = escape(&footer(n)),
    )
}

/// A link styled as a button; a value that is not an http(s) URL (a runbook written as
/// prose, or a `javascript:` trap) is shown as text instead.
fn button(label: &str, href: &str) -> String {
    if super::is_web_url(href) {
        format!(
            "<a href=\"{}\" style=\"{BUTTON_CSS}\">{}</a>",
            escape(href),
            escape(label)
        )
    } else {
        format!("<span>{}: {}</span> ", escape(label), escape(href))
    }
}

/// The accent colour: red failing, amber degraded, green resolved, blue acknowledged.
fn color(n: &Notification) -> &'static str {
    match (n.kind, n.incident.severity) {
        (NotificationKind::Resolved, _) => "#1a7f37",
        (NotificationKind::Acknowledged, _) => "#0969da",
        (_, Severity::Failure) => "#cf222e",
        (_, Severity::Degraded) => "#bf8700",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::alert::config::Secret;
    use crate::alert::notify::test_support::{
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
        assert!(
            plain.contains("Error:             upstream said <script>alert('x')</script> & quit")
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(
                "upstream said &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; quit"
            )
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
            run = crate::alert::notify::test_support::RUN_ID,
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
        resolved.incident.resolved_by = Some("bob".into());
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
            crate::alert::notify::test_support::RUN_ID
        )));
    }
}
