//! Sending a stored digest to one channel: the whole report by email, a short summary with a
//! link to the digest page on Slack, or a line in the log.
//!
//! The email is `multipart/alternative`: the complete plain text, then `multipart/related`
//! holding the HTML and its chart PNGs, referenced by `cid:` (mail clients block remote
//! images, and most drop `data:` URIs). `Message-ID: <digest-{id}@waymark>`: a digest resent
//! after a crash is the same message to relays and clients that dedupe.
//!
//! Failures are classified like notifications' (`DeliveryError`): SMTP 5xx and HTTP 4xx are
//! permanent, the rest is retried by the caller.

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde_json::{Value, json};

use super::model::{Digest, Trend};
use super::render::{self, Images, LinkBase, Rendered};
use crate::channels::config::{ChannelKind, Channels, Secret};
use crate::channels::email::Mailer;
use crate::channels::slack::{
    BUTTON_TEXT_MAX, BUTTON_URL_MAX, HEADER_MAX, TEXT_MAX, escape, mrkdwn,
};
use crate::channels::{Delivered, DeliveryError, http_client, is_web_url, post_json};
use crate::format::{self, count, truncate};

/// Where one channel's digests go.
pub struct DigestChannel(Kind);

enum Kind {
    Email(Box<Mailer>),
    Slack {
        webhook_url: Secret,
        client: reqwest::Client,
    },
    Log,
}

impl DigestChannel {
    /// The channel named `name` in `[alerting.channels]` (or the built-in `log`); the
    /// configuration was validated at load, so an unknown name is a bug worth an error.
    pub fn new(name: &str, channels: &Channels) -> Result<DigestChannel, String> {
        if name == crate::alert::route::LOG_CHANNEL {
            return Ok(DigestChannel(Kind::Log));
        }
        let kind = match channels.get(name).map(|c| &c.kind) {
            Some(ChannelKind::Email(c)) => Kind::Email(Box::new(Mailer::new(c)?)),
            Some(ChannelKind::Slack(c)) => Kind::Slack {
                webhook_url: c.webhook_url.clone(),
                client: http_client(),
            },
            Some(ChannelKind::Log(_)) => Kind::Log,
            Some(other) => {
                return Err(format!(
                    "channel `{name}` ({}) cannot carry a digest",
                    other.name()
                ));
            }
            None => return Err(format!("channel `{name}` is not defined")),
        };
        Ok(DigestChannel(kind))
    }

    /// One attempt to deliver digest `id`.
    pub async fn send(
        &self,
        id: i64,
        digest: &Digest,
        links: &LinkBase,
    ) -> Result<Delivered, DeliveryError> {
        match &self.0 {
            Kind::Email(mailer) => {
                let rendered = render::render(digest, links, Images::Cid);
                let message =
                    email(id, digest, &rendered, &mailer.from, &mailer.to).map_err(|message| {
                        DeliveryError::Permanent {
                            status: None,
                            message,
                        }
                    })?;
                mailer.send(message).await
            }
            Kind::Slack {
                webhook_url,
                client,
            } => {
                let body = serde_json::to_vec(&slack(id, digest, links))
                    .expect("a message serializes to JSON");
                post_json(client, webhook_url.expose(), &[], body).await
            }
            Kind::Log => {
                tracing::info!(
                    digest = id,
                    owner = %digest.owner,
                    summary = %render::subject(digest),
                    "feedback digest"
                );
                Ok(Delivered { status: None })
            }
        }
    }
}

/// The email: text, and HTML with its charts as inline parts.
pub fn email(
    id: i64,
    digest: &Digest,
    rendered: &Rendered,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, String> {
    let mut related = MultiPart::related().singlepart(SinglePart::html(rendered.html.clone()));
    for (cid, png) in &rendered.images {
        related = related.singlepart(Attachment::new_inline(cid.clone()).body(
            png.clone(),
            ContentType::parse("image/png").expect("a valid content type"),
        ));
    }
    let body = MultiPart::alternative()
        .singlepart(SinglePart::plain(rendered.text.clone()))
        .multipart(related);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(rendered.subject.clone())
        .message_id(Some(format!("<digest-{id}@waymark>")))
        .date(SystemTime::from(digest.generated_at));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .multipart(body)
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// Most items listed per kind in the Slack summary; the digest page has the rest.
const SLACK_ITEMS: usize = 5;

/// The Slack summary: the figures that matter, what needs attention, and a link to the rest.
pub fn slack(id: i64, d: &Digest, links: &LinkBase) -> Value {
    let s = &d.summary;
    let subject = render::subject(d);
    let pct = |v: Option<f64>| format::optional(v, format::percent);
    let secs = |v: Option<f64>| format::optional(v, format::duration_secs);
    let header = format!(":bar_chart: Feedback digest: {}", d.owner);
    let overview = format!(
        "*{} to {}*: {} available over {}; {} (MTTD {}, MTTR {}); {}, {}; {}; {}.",
        format::date(d.from),
        format::date(d.to),
        pct(s.availability),
        count(s.runs, "run"),
        count(s.incidents as u64, "incident"),
        secs(s.mttd_s),
        secs(s.mttr_s),
        count(s.regressions as u64, "regression"),
        count(s.improvements as u64, "improvement"),
        count(s.new_failure_modes as u64, "new failure mode"),
        count(s.flaky_steps as u64, "flaky step"),
    );
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(&header, HEADER_MAX), "emoji": true },
        }),
        json!({ "type": "section", "text": mrkdwn(&truncate(&escape(&overview), TEXT_MAX)) }),
    ];
    let attention = attention(d);
    if !attention.is_empty() {
        let text = format!("*Needs attention*\n{}", attention.join("\n"));
        blocks.push(json!({ "type": "section", "text": mrkdwn(&truncate(&text, TEXT_MAX)) }));
    }
    if let Some(url) = links
        .page(&format!("/digests/{id}"))
        .filter(|u| is_web_url(u) && u.len() <= BUTTON_URL_MAX)
    {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "action_id": "waymark_digest",
                "text": { "type": "plain_text", "text": truncate("Open the digest", BUTTON_TEXT_MAX) },
                "url": url,
            }],
        }));
    }
    json!({ "text": escape(&subject), "blocks": blocks })
}

/// Journeys under their SLO, regressions and new failure modes, a few of each, as bullets.
fn attention(d: &Digest) -> Vec<String> {
    let mut out = Vec::new();
    let below_slo = d
        .journeys
        .iter()
        .filter(|j| matches!((j.availability, j.slo), (Some(a), Some(slo)) if a < slo));
    for j in below_slo.take(SLACK_ITEMS) {
        out.push(format!(
            "• `{}` below its SLO: {} (SLO {}%)",
            escape(&j.name),
            format::percent(j.availability.unwrap_or(0.0)),
            j.slo.unwrap_or(100.0)
        ));
    }
    let regressions = d
        .journeys
        .iter()
        .flat_map(|j| j.steps.iter().map(move |s| (j, s)))
        .filter(|(_, s)| s.trend == Trend::Regression);
    for (j, s) in regressions.take(SLACK_ITEMS) {
        let change = s.shift.map_or(0.0, |x| x.change * 100.0);
        out.push(format!(
            "• `{} / {}` slower by {change:.0}%",
            escape(&j.name),
            escape(&s.name)
        ));
    }
    let new_modes = d
        .journeys
        .iter()
        .flat_map(|j| j.failure_modes.iter().map(move |m| (j, m)))
        .filter(|(_, m)| m.new);
    for (j, m) in new_modes.take(SLACK_ITEMS) {
        out.push(format!(
            "• new failure in `{} / {}`: {} ×{}",
            escape(&j.name),
            escape(&m.step),
            escape(&truncate(&m.signature, 200)),
            m.count
        ));
    }
    out
}
