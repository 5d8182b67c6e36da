//! The templates of `ui/templates`, compiled into the binary (nothing to install beside it), and
//! the one minijinja environment all of Waymark's HTML is rendered with: the dashboard and the
//! status page (`api::ui`), alert emails (`channels::email`) and feedback digests
//! (`digest::render`). The filters that format figures (`pct`, `ms`, `duration`, `stamp`,
//! `segment`) are registered here, so a page and an email write a figure the same way.
//!
//! Auto-escaping is on for every `.html` template: a value from a journey file or a monitored
//! service can never become markup. Pages keep minijinja's escaping; mail ([`mail`]) escapes
//! with [`crate::svg::escape`] instead, which leaves `/` alone, so links in a message's source
//! stay the URLs they are for the filters and link scanners of mail systems.

#![deny(clippy::disallowed_methods)]

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, Value};

/// `(name, source)` of files in `ui/templates`, compiled in.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../ui/templates/", $name)))),*]
    };
}

/// Every template, by name (a template extends or includes others by these names).
pub const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "status.html",
    "login.html",
    "app.html",
    "overview.html",
    "incidents.html",
    "incident.html",
    "run.html",
    "journey.html",
    "dependencies.html",
    "nodes.html",
    "error.html",
    "digests.html",
    "email/alert.html",
    "digest/digest.html",
    "digest/journey.html",
    "digest/macros.html",
];

/// A template that did not render: a bug in a template or in the context given to it.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source:#}")]
pub struct RenderError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// Every template with the shared filters; `api::ui` adds the dashboard's own filters to it.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env.add_filter("pct", |v: Option<f64>| {
        crate::format::optional(v, crate::format::percent)
    });
    env.add_filter("ms", |v: Option<f64>| {
        crate::format::optional(v, crate::format::ms)
    });
    env.add_filter("duration", |secs: f64| crate::format::duration_secs(secs));
    env.add_filter("stamp", stamp);
    // A name as one URL path segment (`/` and spaces encoded), unlike `urlencode`.
    env.add_filter("segment", |name: &str| crate::links::segment(name));
    env
}

/// An RFC 3339 instant as [`crate::format::timestamp_minutes`]; anything else as it is.
fn stamp(v: Value) -> String {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(
            || v.to_string(),
            |t| crate::format::timestamp_minutes(t.to_utc()),
        )
}

static MAIL: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = environment();
    env.set_formatter(mail_formatter);
    env
});

/// minijinja's formatter with [`crate::svg::escape`] for auto-escaped values.
fn mail_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() == AutoEscape::None || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = match value.as_str() {
        Some(s) => crate::svg::escape(s),
        None if value.is_none() || value.is_undefined() => String::new(),
        None => crate::svg::escape(&value.to_string()),
    };
    out.write_str(&text).map_err(minijinja::Error::from)
}

/// A mail template (`email/…`, `digest/…`) rendered with `context`.
pub fn mail(name: &str, context: Value) -> Result<String, RenderError> {
    MAIL.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|source| RenderError {
            name: name.to_string(),
            source,
        })
}

/// [`mail`], or, should the template fail (a bug, caught by the tests that render each one),
/// `text` as preformatted HTML: the plain-text part is complete, and a mail that says
/// everything in plain words is better than none.
pub fn mail_or_text(name: &str, context: Value, text: &str) -> String {
    mail(name, context).unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendering a mail's HTML part; sending its text instead");
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body><pre>{}</pre></body></html>",
            crate::svg::escape(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `ui/templates`, with its path from there.
    fn files(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_in_ui_templates_is_compiled_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/templates");
        let mut found = Vec::new();
        files(std::path::Path::new(dir), "", &mut found);
        found.sort();
        let mut names: Vec<String> = TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(found, names);
    }

    #[test]
    fn mail_escapes_values_but_not_slashes() {
        let ctx = minijinja::context! { u => "https://x.example/a?b=1&c", t => "<it's>", n => () };
        let render = |env: &mut Environment<'static>| {
            env.add_template("t.html", "<a href=\"{{ u }}\">{{ t }}</a>{{ n }}")
                .unwrap();
            env.get_template("t.html").unwrap().render(&ctx).unwrap()
        };
        let page = render(&mut environment());
        assert!(page.starts_with("<a href=\"https:&#x2f;&#x2f;"), "{page}");
        let mut env = environment();
        env.set_formatter(mail_formatter);
        let mail = render(&mut env);
        assert_eq!(
            mail,
            "<a href=\"https://x.example/a?b=1&amp;c\">&lt;it&#39;s&gt;</a>"
        );
        assert!(
            mail_or_text("no/such.html", Value::UNDEFINED, "a < b").contains("<pre>a &lt; b</pre>")
        );
    }
}
