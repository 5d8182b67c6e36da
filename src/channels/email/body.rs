//! The message: subject, a complete plain-text part and an HTML part from a template.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::alert::{Notification, NotificationKind, ResolvedBy, Severity};
use crate::channels::is_web_url;
use crate::format::{self, duration as human_duration};
use crate::templates;
use minijinja::{Value, context};

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
        NotificationKind::Resolved => match &i.resolved_by {
            Some(ResolvedBy::Auto) | None => format!("Resolved after {lasted}: runs pass again."),
            Some(ResolvedBy::User(who)) => format!("Resolved by {who} after {lasted}."),
        },
    }
}

/// Every known fact of the incident, labelled, in reading order.
fn facts(n: &Notification) -> Vec<(&'static str, String)> {
    let i = &n.incident;
    let c = &i.cause;
    let by = |at: DateTime<Utc>, who: Option<&str>| match who {
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
            i.acknowledged_at
                .map(|t| by(t, i.acknowledged_by.as_deref())),
        ),
        (
            "Resolved",
            i.resolved_at
                .map(|t| by(t, i.resolved_by.as_ref().map(ResolvedBy::as_str))),
        ),
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

/// The HTML part (`ui/templates/email/alert.html`): the text part's content, laid out with
/// inline CSS; every value escaped by the template. A link that is not an http(s) URL (a
/// runbook written as prose, or a `javascript:` trap) is shown as text instead.
pub(super) fn html(n: &Notification) -> String {
    let links: Vec<Value> = links(n)
        .into_iter()
        .map(|(label, href)| context! { label, href, web => is_web_url(href) })
        .collect();
    templates::mail_or_text(
        "email/alert.html",
        context! {
            summary => n.summary(),
            color => color(n),
            what => what(n),
            facts => facts(n),
            links,
            footer => footer(n),
        },
        &text(n),
    )
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
