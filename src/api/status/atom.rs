//! The incidents of public journeys as an Atom feed (RFC 4287), for feed readers and chat
//! integrations: one entry per incident, updated when it resolves.

use super::snapshot::{PublicIncident, Snapshot};
use crate::format;
// Atom is XML, escaped like SVG.
use crate::svg::escape as esc;

fn summary(i: &PublicIncident) -> String {
    let started = format::timestamp_minutes(i.started_at);
    let lasted = format::duration_secs(i.duration_s as f64);
    match i.resolved_at {
        Some(r) => format!(
            "Started {started}; resolved {} after {lasted}.",
            format::timestamp_minutes(r)
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
        format::rfc3339(updated),
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
            format::rfc3339(i.started_at),
            format::rfc3339(i.resolved_at.unwrap_or(i.started_at)),
            esc(base),
            esc(&summary(i)),
        ));
    }
    out.push_str("</feed>\n");
    out
}
