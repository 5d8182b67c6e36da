//! Server-rendered pages: the shared template environment (`templates`, auto-escaped) with
//! the dashboard's own filters, the static files of `ui/static` compiled into the binary (no
//! front-end build, nothing to install beside it), and the security headers every page
//! carries.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value};

use super::ApiError;
use crate::{format, svg, templates};

const STATIC: &[(&str, &str, &str)] = &[
    (
        "waymark.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/static/waymark.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../ui/static/favicon.svg"),
    ),
];

/// No inline script or style, no framing, nothing from elsewhere.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                            img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

/// The shared environment (`templates`) with the dashboard's own filters.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = templates::environment();
    env.add_filter("sparkline", sparkline);
    env.add_filter("bar_class", bar_class);
    env.add_filter("day_text", day_text);
    env
});

/// Renders `template` as a page with the security headers. A page that does not say when its
/// data is from (`generated_at`) was read from the store just now, and says so.
pub fn page(template: &str, context: Value) -> Result<Response, ApiError> {
    let dated = context
        .get_attr("generated_at")
        .is_ok_and(|v| !v.is_undefined() && !v.is_none());
    let context = if dated {
        context
    } else {
        let now = format::timestamp(chrono::Utc::now());
        minijinja::context! { generated_at => now, ..context }
    };
    let html = render(template, context)?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    response.headers_mut().extend(page_headers(PAGE_CSP));
    Ok(response)
}

/// `template` rendered with `context`.
pub fn render(template: &str, context: Value) -> Result<String, ApiError> {
    ENV.get_template(template)
        .and_then(|t| t.render(context))
        .map_err(|source| {
            ApiError::Internal(super::Internal::Template {
                template: template.to_owned(),
                source,
            })
        })
}

/// The headers every page gets, with its Content-Security-Policy.
pub fn page_headers(csp: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h
}

/// Adds the headers every page gets, with its Content-Security-Policy.
pub fn with_headers(mut response: Response, csp: &'static str) -> Response {
    response.headers_mut().extend(page_headers(csp));
    response
}

/// `GET /static/{file}`: cached for an hour (the files change only with the binary).
pub async fn static_file(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let (_, kind, body) = STATIC
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound(format!("no static file `{file}`")))?;
    Ok(with_headers(
        (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        PAGE_CSP,
    ))
}

// --- filters -------------------------------------------------------------------------------

/// Hourly p95s as a small inline SVG line (gaps where an hour had no run), with the range in
/// its title: the number is there in words as well as in the shape.
fn sparkline(points: Vec<Option<f64>>) -> Value {
    let values: Vec<f64> = points.iter().flatten().copied().collect();
    let Some(max) = values.iter().copied().reduce(f64::max) else {
        return Value::from("–");
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let (w, h) = (96.0, 20.0);
    let step = w / (points.len().max(2) - 1) as f64;
    let mut paths = String::new();
    let mut pen_down = false;
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => {
                let y = h - 2.0 - (h - 4.0) * v / max.max(1e-9);
                let cmd = if pen_down { 'L' } else { 'M' };
                paths.push_str(&format!("{cmd}{:.1},{y:.1} ", i as f64 * step));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let title = format!(
        "p95 over the last 24 hours: {} to {}",
        format::ms(min),
        format::ms(max)
    );
    let svg = svg::figure("spark", w, h, &title)
        .attr("width", w)
        .attr("height", h)
        .title(&title)
        .child(svg::element("path").attr("d", paths.trim_end()));
    Value::from_safe_string(svg.to_string())
}

fn day_field(day: &Value, field: &str) -> Value {
    day.get_attr(field).unwrap_or(Value::UNDEFINED)
}

/// `full`, `minor` (some failures, ≥ 99 %), `major` (< 99 %) or `none` (no runs): drawn with
/// different heights as well as colours.
fn bar_class(day: Value) -> &'static str {
    match day_field(&day, "uptime").as_f64_opt() {
        None => "none",
        Some(u) if u >= 100.0 => "full",
        Some(u) if u >= 99.0 => "minor",
        Some(_) => "major",
    }
}

fn day_text(day: Value) -> String {
    let date = day_field(&day, "date");
    let runs = day_field(&day, "runs").as_i64_opt().unwrap_or(0);
    let failures = day_field(&day, "failures").as_i64_opt().unwrap_or(0);
    let incidents = day_field(&day, "incidents").as_i64_opt().unwrap_or(0);
    let mut text = match day_field(&day, "uptime").as_f64_opt() {
        None => format!("{date}: no data"),
        Some(u) => format!(
            "{date}: {} ({failures} of {runs} failed)",
            format::percent(u)
        ),
    };
    if incidents > 0 {
        text.push_str(&format!(
            ", {incidents} incident{}",
            if incidents == 1 { "" } else { "s" }
        ));
    }
    text
}

trait ValueExt {
    fn as_f64_opt(&self) -> Option<f64>;
    fn as_i64_opt(&self) -> Option<i64>;
}

impl ValueExt for Value {
    fn as_f64_opt(&self) -> Option<f64> {
        if self.is_none() || self.is_undefined() {
            return None;
        }
        f64::try_from(self.clone()).ok()
    }

    fn as_i64_opt(&self) -> Option<i64> {
        i64::try_from(self.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_break_at_hours_without_runs() {
        let svg = sparkline(vec![Some(100.0), Some(200.0), None, Some(50.0)]).to_string();
        assert!(svg.contains("d=\"M0.0,"), "{svg}");
        assert_eq!(svg.matches('M').count(), 2, "two segments: {svg}");
        assert!(svg.contains("50.0 ms to 200 ms"), "{svg}");
        assert_eq!(sparkline(vec![None, None]).to_string(), "–");
    }

    #[test]
    fn login_renders() {
        let context = minijinja::context! { site => minijinja::context! { title => "Status" }, next => "/app", error => None::<String>, no_users => true };
        let rendered = ENV
            .get_template("login.html")
            .and_then(|t| t.render(&context));
        assert!(rendered.is_ok(), "{:#}", rendered.unwrap_err());
    }
}
