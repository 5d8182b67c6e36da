//! The `http:` block of a step.

use std::collections::BTreeSet;

use super::super::model::{DEFAULT_MAX_BODY_BYTES, HttpBody, HttpStep, JsonTemplate};
use super::super::template::{Ref, Template};
use super::super::yaml::{Node, Value};
use super::checker::{Checker, did_you_mean, every};

const HTTP_KEYS: &[&str] = &[
    "method",
    "extension_method",
    "url",
    "headers",
    "query",
    "body",
    "json",
    "form",
    "follow_redirects",
    "max_redirects",
    "max_body_bytes",
    "insecure_skip_verify",
    "compressed",
];

const MAX_BODY_LIMIT: u64 = 1 << 30;

/// The methods of RFC 9110 and PATCH (RFC 5789); others need `extension_method: true`.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(super) fn http_step(
    c: &mut Checker,
    n: &Node,
    defined: &BTreeSet<String>,
    step: &Option<String>,
) -> Option<HttpStep> {
    let f = c.fields(n, "`http`", HTTP_KEYS)?;
    let what = |field: &str| {
        format!(
            "`http.{field}` of step `{}`",
            step.as_deref().unwrap_or("?")
        )
    };
    let extension = match f.get("extension_method") {
        Some(v) => c.bool(v, &what("extension_method")),
        None => Some(false),
    };
    let method = match f.get("method") {
        Some(m) => method(c, m, extension.unwrap_or(true)),
        None => Some(http::Method::GET),
    };
    let url = match f.get("url") {
        Some(u) => c
            .template(u, &what("url"), defined)
            .and_then(|t| check_url(c, u, t, "http", &["http", "https"])),
        None => {
            c.err(n.pos, "`http` needs a `url`");
            None
        }
    };
    let headers = f
        .get("headers")
        .map(|h| pairs(c, h, &what("headers"), defined));
    if let Some(Some(headers)) = &headers {
        for (name, _) in headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.err(
                    f.get("headers")?.pos,
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
    }
    let query = f.get("query").map(|q| pairs(c, q, &what("query"), defined));
    let bodies: Vec<&str> = ["body", "json", "form"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if bodies.len() > 1 {
        c.err(
            f.key_pos(bodies[1])?,
            format!(
                "use only one of `body`, `json` and `form` (found {})",
                bodies.join(", ")
            ),
        );
    }
    let body = match bodies.first() {
        Some(&"body") => c
            .template(f.get("body")?, &what("body"), defined)
            .map(|t| Some(HttpBody::Raw(t))),
        Some(&"json") => json(c, f.get("json")?, defined).map(|j| Some(HttpBody::Json(j))),
        Some(_) => {
            pairs(c, f.get("form")?, &what("form"), defined).map(|p| Some(HttpBody::Form(p)))
        }
        None => Some(None),
    };
    let flag = |c: &mut Checker, key: &str, default: bool| match f.get(key) {
        Some(v) => c.bool(v, &what(key)),
        None => Some(default),
    };
    let follow_redirects = flag(c, "follow_redirects", true);
    let insecure_skip_verify = flag(c, "insecure_skip_verify", false);
    let compressed = flag(c, "compressed", true);
    let max_redirects = match f.get("max_redirects") {
        Some(v) => c.uint(v, &what("max_redirects"), 50).map(|v| v as u32),
        None => Some(10),
    };
    let max_body_bytes = match f.get("max_body_bytes") {
        Some(v) => byte_size(c, v, &what("max_body_bytes")),
        None => Some(DEFAULT_MAX_BODY_BYTES),
    };
    Some(HttpStep {
        method: method?,
        url: url?,
        headers: headers.unwrap_or(Some(Vec::new()))?,
        query: query.unwrap_or(Some(Vec::new()))?,
        body: body?,
        follow_redirects: follow_redirects?,
        max_redirects: max_redirects?,
        max_body_bytes: max_body_bytes?,
        insecure_skip_verify: insecure_skip_verify?,
        compressed: compressed?,
    })
}

/// A standard method (any case), or with `extension`, any method token (`PURGE`, `PROPFIND`).
fn method(c: &mut Checker, n: &Node, extension: bool) -> Option<http::Method> {
    let text = c.text(n, "`http.method`")?;
    let upper = text.trim().to_ascii_uppercase();
    let method = match http::Method::from_bytes(upper.as_bytes()) {
        Ok(m) if !upper.is_empty() => m,
        _ => {
            c.err(n.pos, format!("`{text}` is not an HTTP method"));
            return None;
        }
    };
    if extension || STANDARD_METHODS.contains(&upper.as_str()) {
        return Some(method);
    }
    let hint = match did_you_mean(&upper, STANDARD_METHODS) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected one of {}", STANDARD_METHODS.join(", ")),
    };
    c.err(
        n.pos,
        format!(
            "unknown HTTP method `{text}`; {hint} (for an extension method such as PURGE, set `extension_method: true`)"
        ),
    );
    None
}

/// Checks what can be known of a URL before run time: a literal URL must parse with one of
/// `schemes` and a host, and a URL that starts with literal text must start with one of them.
pub(super) fn check_url(
    c: &mut Checker,
    n: &Node,
    t: Template,
    kind: &str,
    schemes: &[&str],
) -> Option<Template> {
    let text = t.to_string();
    let allowed = schemes.join(" or ");
    if t.is_literal() {
        return match url::Url::parse(&text) {
            Ok(u) if !schemes.contains(&u.scheme()) => {
                let scheme = u.scheme();
                c.err(
                    n.pos,
                    format!(
                        "URL scheme `{scheme}` is not supported by {kind} steps (use {allowed})"
                    ),
                );
                None
            }
            Ok(u) if u.host().is_none() => {
                c.err(n.pos, format!("URL `{text}` has no host"));
                None
            }
            Ok(_) => Some(t),
            Err(e) => {
                c.err(n.pos, format!("invalid URL `{text}`: {e}"));
                None
            }
        };
    }
    let starts_with_ref = matches!(
        t.refs().next(),
        Some(Ref::Var(_) | Ref::Env(_) | Ref::Secret(_))
    ) && text.starts_with("{{");
    let starts_with_scheme = schemes.iter().any(|s| text.starts_with(&format!("{s}://")));
    if !(starts_with_ref || starts_with_scheme) {
        let prefixes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        c.err(
            n.pos,
            format!(
                "URL `{text}` must start with {} (or a variable holding the base URL)",
                prefixes.join(" or ")
            ),
        );
        return None;
    }
    Some(t)
}

pub(super) fn pairs(
    c: &mut Checker,
    n: &Node,
    what: &str,
    defined: &BTreeSet<String>,
) -> Option<Vec<(String, Template)>> {
    let entries = c.string_map(n, what);
    every(entries, |(k, v, kpos)| {
        if !c.literal_only(kpos, &k, &format!("a name in {what}")) {
            return None;
        }
        let t = c.template(v, &format!("{what} `{k}`"), defined)?;
        Some((k, t))
    })
}

pub(super) fn json(c: &mut Checker, n: &Node, defined: &BTreeSet<String>) -> Option<JsonTemplate> {
    Some(match &n.value {
        Value::Null => JsonTemplate::Null,
        Value::Bool(b) => JsonTemplate::Bool(*b),
        Value::Int(i) => JsonTemplate::Number((*i).into()),
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(num) => JsonTemplate::Number(num),
            None => {
                c.err(n.pos, "JSON numbers must be finite");
                return None;
            }
        },
        Value::Str(s) => JsonTemplate::String(c.template_text(n, s, 0, "`http.json`", defined)?),
        Value::Seq(items) => JsonTemplate::Array(every(items, |i| json(c, i, defined))?),
        Value::Map(entries) => JsonTemplate::Object(every(entries, |(k, v)| {
            let key = c
                .text(k, "a JSON key")
                .filter(|key| c.literal_only(k.pos, key, "a JSON key"));
            // The value is checked even when the key is bad.
            let value = json(c, v, defined);
            Some((key?, value?))
        })?),
    })
}

/// `1048576`, `512KiB`, `10MiB`, `1MB`.
pub(super) fn byte_size(c: &mut Checker, n: &Node, what: &str) -> Option<u64> {
    let parsed = match &n.value {
        Value::Int(i) if *i > 0 => Some(*i as u64),
        Value::Str(s) => {
            let s = s.trim();
            let split = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let mult = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => Some(1u64),
                "kb" => Some(1000),
                "kib" => Some(1024),
                "mb" => Some(1000 * 1000),
                "mib" => Some(1024 * 1024),
                "gb" => Some(1000 * 1000 * 1000),
                "gib" => Some(1024 * 1024 * 1024),
                _ => None,
            };
            num.parse::<u64>()
                .ok()
                .zip(mult)
                .and_then(|(n, m)| n.checked_mul(m))
        }
        _ => None,
    };
    match parsed {
        Some(v) if v > 0 && v <= MAX_BODY_LIMIT => Some(v),
        Some(_) => {
            c.err(n.pos, format!("{what} must be between 1 byte and 1GiB"));
            None
        }
        None => {
            c.err(
                n.pos,
                format!("{what} must be a size such as `10MiB`, `512KiB` or a number of bytes"),
            );
            None
        }
    }
}
