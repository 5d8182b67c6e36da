//! The incidents of public journeys as an Atom feed (RFC 4287), for feed readers and chat
//! integrations: one entry per incident, updated when it resolves.

use chrono::{DateTime, Utc};

use super::snapshot::{PublicIncident, Snapshot};
use crate::digest::render::esc;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn summary(i: &PublicIncident) -> String {
    let started = i.started_at.format("%Y-%m-%d %H:%M UTC");
    let lasted =
        crate::channels::human_duration(std::time::Duration::from_secs(i.duration_s.max(0) as u64));
    match i.resolved_at {
        Some(r) => format!(
            "Started {started}; resolved {} after {lasted}.",
            r.format("%Y-%m-%d %H:%M UTC")
        ),
        None => format!("Started {started}; ongoing for {lasted}."),
    }
}

/// The feed; `base` is the public URL of the status page (empty: links are relative).
pub fn atom(s: &Snapshot, title: &str, base: &str) -> String {
    let base = base.trim_end_matches('/');
    let updated = s
        .incidents
        .iter()
        .map(|i| i.resolved_at.unwrap_or(i.started_at))
        .max()
        .unwrap_or(s.generated_at);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{} incidents</title>\n<id>urn:waymark:status</id>\n<updated>{}</updated>\n\
         <link rel=\"alternate\" href=\"{}/\"/>\n<author><name>Waymark</name></author>\n",
        esc(title),
        time(updated),
        esc(base)
    );
    for i in &s.incidents {
        out.push_str(&format!(
            "<entry>\n<title>{}{}</title>\n<id>urn:waymark:incident:{}</id>\n\
             <published>{}</published>\n<updated>{}</updated>\n\
             <link rel=\"alternate\" href=\"{}/\"/>\n<summary>{}</summary>\n</entry>\n",
            if i.resolved_at.is_some() {
                "Resolved: "
            } else {
                ""
            },
            esc(&i.title),
            i.id,
            time(i.started_at),
            time(i.resolved_at.unwrap_or(i.started_at)),
            esc(base),
            esc(&summary(i)),
        ));
    }
    out.push_str("</feed>\n");
    out
}
