//! The message: subject, a complete plain-text part and an escaped HTML part.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::alert::{Notification, NotificationKind, Severity};
use crate::channels::is_web_url;
use crate::format::{self, duration as human_duration};

pub(super) fn message(n: &Notification, from: &Mailbox, to: &[Mailbox]) -> Result<Message, String> {
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
pub(super) fn what(n: &Notification) -> String {
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
        Some(who) => format!("{} by {who}", format::timestamp(at)),
        None => format::timestamp(at),
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
        ("Started", Some(format::timestamp(i.started_at))),
        ("Opened", Some(format::timestamp(i.opened_at))),
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

fn footer(n: &Notification) -> String {
    format!(
        "Waymark notification {} ({}) for channel {}.",
        n.id,
        n.kind.as_str(),
        n.channel
    )
}

/// The plain-text part: summary, sentence, facts, links, footer.
pub(super) fn text(n: &Notification) -> String {
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
pub(super) fn html(n: &Notification) -> String {
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
    if is_web_url(href) {
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

pub(crate) fn escape(text: &str) -> String {
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
