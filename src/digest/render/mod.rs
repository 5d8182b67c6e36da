//! The digest as an email: a subject, a complete plain-text version and an HTML version with
//! inline CSS (mail clients drop `<style>` blocks and external sheets) whose charts are PNG
//! attachments referenced by `cid:` — or `data:` URIs for a preview file opened in a browser.
//!
//! The HTML is `ui/templates/digest/*.html`, rendered by `templates::mail`: this module gives
//! it plain figures and words, and the template escapes every value (step names, messages
//! and signatures come from journey files and monitored services). Trends are said in words
//! and arrows, never by colour alone.

use base64::Engine as _;

mod html;
#[cfg(test)]
mod tests;
mod text;

use super::chart::{self, ChartInput};
use super::model::*;
use html::*;

/// Where links point: the dashboard and the trace viewer, when configured.
#[derive(Debug, Clone, Default)]
pub struct LinkBase {
    pub dashboard_url: Option<String>,
    /// `{trace_id}` is replaced.
    pub trace_url: Option<String>,
}

impl LinkBase {
    pub(crate) fn page(&self, path: &str) -> Option<String> {
        let base = self.dashboard_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}{path}"))
    }

    fn trace(&self, id: &str) -> Option<String> {
        Some(self.trace_url.as_deref()?.replace("{trace_id}", id))
    }
}

/// How charts are referenced from the HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// `cid:chart-N`, with the PNGs in [`Rendered::images`] (email).
    Cid,
    /// Inline `data:image/png;base64,…` (a preview file).
    DataUri,
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Content id and PNG of each chart (empty with [`Images::DataUri`]).
    pub images: Vec<(String, Vec<u8>)>,
}

pub fn render(d: &Digest, links: &LinkBase, images: Images) -> Rendered {
    let mut attached = Vec::new();
    let journeys: Vec<_> = d
        .journeys
        .iter()
        .enumerate()
        .map(|(i, j)| {
            // A journey that did not run has nothing to draw.
            let src = (j.runs > 0).then(|| {
                let png = chart::png(&chart_input(d, j));
                match images {
                    Images::Cid => {
                        let cid = format!("chart-{i}");
                        attached.push((cid.clone(), png));
                        format!("cid:{cid}")
                    }
                    Images::DataUri => format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(&png)
                    ),
                }
            });
            journey(d, j, src, links)
        })
        .collect();
    let text = text::text(d, links);
    let context = minijinja::context! {
        subject => subject(d),
        owner => &d.owner,
        from => date(d.from),
        to => date(d.to),
        period => period_words(d),
        tiles => tiles(&d.summary),
        journeys,
        incidents => incidents(&d.incidents, links),
        dependencies => dependencies(&d.dependencies, links),
        coverage => coverage(&d.coverage, links),
        generated => stamp(d.generated_at),
    };
    Rendered {
        subject: subject(d),
        html: crate::templates::mail_or_text("digest/digest.html", context, &text),
        text,
        images: attached,
    }
}

pub fn subject(d: &Digest) -> String {
    let availability = d.summary.availability.map_or("no runs".to_string(), |a| {
        format!("{} available", crate::format::percent(a))
    });
    format!(
        "Waymark digest for {}, {} to {}: {availability}, {}",
        d.owner,
        date(d.from),
        date(d.to),
        count(d.summary.incidents as u64, "incident"),
    )
}

fn chart_input(d: &Digest, j: &JourneyDigest) -> ChartInput {
    ChartInput {
        from: d.from,
        to: d.to,
        p50: j.chart.p50.clone(),
        p95: j.chart.p95.clone(),
        band: j.chart.band,
        incidents: d
            .incidents
            .iter()
            .filter(|i| i.journey == j.name)
            .map(|i| (i.started_at, i.resolved_at.unwrap_or(d.to)))
            .collect(),
    }
}

// --- formatting -------------------------------------------------------------------------

use crate::format::timestamp_minutes as stamp;
pub(super) use crate::format::{count, date, duration_secs as secs, ms};

fn pct(v: Option<f64>) -> String {
    crate::format::optional(v, crate::format::percent)
}

/// "two weeks", "7 days", "6h": the length of the period, for "compared with the … before".
fn period_words(d: &Digest) -> String {
    let length = d.to - d.from;
    match length.num_days() {
        14 if length == chrono::Duration::days(14) => "two weeks".to_string(),
        7 if length == chrono::Duration::days(7) => "week".to_string(),
        n if n > 0 && length == chrono::Duration::days(n) => format!("{n} days"),
        _ => secs(length.num_milliseconds() as f64 / 1000.0),
    }
}

/// An axis value as the chart's caption states it: `250`, `2.5`.
fn axis_value(v: f64) -> String {
    crate::format::number(v, 2)
}

/// Availability change in percentage points, with a word: the arrow is not the only signal.
fn change(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(n), Some(b)) if (n - b).abs() < 0.005 => "unchanged".to_string(),
        (Some(n), Some(b)) if n > b => format!("▲ up {:.2} pts", n - b),
        (Some(n), Some(b)) => format!("▼ down {:.2} pts", b - n),
        _ => "no previous data".to_string(),
    }
}

fn trend(s: &StepDigest) -> String {
    match (s.trend, &s.shift) {
        (Trend::Regression, Some(x)) => {
            format!("▲ slower by {:.0}% (regression)", x.change * 100.0)
        }
        (Trend::Improvement, Some(x)) => {
            format!("▼ faster by {:.0}% (improvement)", -x.change * 100.0)
        }
        _ if s.ran == 0 => "did not run".to_string(),
        (_, None) => "too few runs to compare".to_string(),
        _ => "no significant change".to_string(),
    }
}

/// A piece of a table cell: text, a link (plain text without a dashboard or trace URL) or
/// emphasis. The template writes and escapes it (`rich` in `digest/macros.html`).
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Part {
    text: String,
    href: Option<String>,
    strong: bool,
}

/// A table cell.
pub(super) type Cell = Vec<Part>;

pub(super) fn text_part(text: impl Into<String>) -> Part {
    Part {
        text: text.into(),
        href: None,
        strong: false,
    }
}

pub(super) fn strong(text: &str) -> Part {
    Part {
        strong: true,
        ..text_part(text)
    }
}

pub(super) fn link(href: Option<String>, label: &str) -> Part {
    Part {
        href,
        ..text_part(label)
    }
}

/// A cell linking `label` to the dashboard's page at `path` (plain text without a
/// dashboard URL).
pub(super) fn page_cell(links: &LinkBase, path: &str, label: &str) -> Cell {
    vec![link(links.page(path), label)]
}

/// A cell of plain text.
pub(super) fn plain(text: impl ToString) -> Cell {
    vec![text_part(text.to_string())]
}

/// Links to a run's page and its trace.
fn run_and_trace(links: &LinkBase, run_id: uuid::Uuid, trace_id: &str) -> Vec<Part> {
    vec![
        link(links.page(&format!("/app/runs/{run_id}")), "run"),
        text_part(" "),
        link(links.trace(trace_id), "trace"),
    ]
}

/// A table for `m.table`: column headers and rows of cells.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Table {
    headers: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(super) fn new(headers: &'static [&'static str], rows: Vec<Vec<Cell>>) -> Table {
        Table { headers, rows }
    }
}

/// `None` without rows, so the template leaves the section out.
pub(super) fn table(headers: &'static [&'static str], rows: Vec<Vec<Cell>>) -> Option<Table> {
    (!rows.is_empty()).then_some(Table { headers, rows })
}
