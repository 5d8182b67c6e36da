//! Placeholders: the names conditions and `extract:` use to read a step's [`Facts`].

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::value::Val;
use super::{ConditionError, closest, snippet};
use crate::journey::facts::Facts;

/// One step of a JSON path: `.key` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// `[STATUS]`, `[BODY].a.b[0]`, `[HEADERS].name`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Status,
    /// Milliseconds, as an integer.
    ResponseTime,
    /// With an empty path: the whole body as (trimmed) text, as in Gatus. With a path: the
    /// JSON value there.
    Body(Vec<PathSegment>),
    Ip,
    Connected,
    /// Milliseconds until the leaf certificate expires.
    CertificateExpiration,
    /// The leaf certificate's subject, issuer (distinguished names) and subject alternative
    /// names (comma-separated), from TLS and HTTPS steps.
    CertificateSubject,
    CertificateIssuer,
    CertificateSans,
    DnsRcode,
    /// The name as written (for display); looked up case-insensitively.
    Header(String),
    /// The WebSocket message; like [`Placeholder::Body`], text when the path is empty.
    Message(Vec<PathSegment>),
    MessagesReceived,
}

/// Every placeholder name, for did-you-mean suggestions.
const NAMES: &[&str] = &[
    "STATUS",
    "RESPONSE_TIME",
    "BODY",
    "IP",
    "CONNECTED",
    "CERTIFICATE_EXPIRATION",
    "CERTIFICATE_SUBJECT",
    "CERTIFICATE_ISSUER",
    "CERTIFICATE_SANS",
    "DNS_RCODE",
    "HEADERS",
    "MESSAGE",
    "MESSAGES_RECEIVED",
];

/// An error at a byte offset relative to the string being parsed.
type Located<T> = Result<T, (usize, String)>;

impl Placeholder {
    pub fn parse(src: &str) -> Result<Placeholder, ConditionError> {
        Placeholder::parse_at(src, 0)
    }

    /// Parses `src`, reporting errors at `base` + the offset inside `src`.
    pub(super) fn parse_at(src: &str, base: usize) -> Result<Placeholder, ConditionError> {
        parse(src).map_err(|(at, message)| ConditionError {
            offset: base + at,
            message,
        })
    }

    /// The value the placeholder points at, `None` when missing. JSON values keep their type
    /// (`[BODY].id` of `{"id":7}` is the number 7); `[STATUS]` and other counters are numbers;
    /// `[BODY]`, headers, `[IP]` and `[DNS_RCODE]` are strings.
    pub fn resolve(&self, facts: &Facts) -> Option<Value> {
        self.value(facts).into_json()
    }

    pub(super) fn value<'f>(&self, facts: &'f Facts) -> Val<'f> {
        let saturate = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        let v = match self {
            Placeholder::Status => facts.status.map(|s| Val::Int(s.into())),
            Placeholder::ResponseTime => facts
                .response_time
                .map(|d| Val::Int(saturate(d.as_millis()))),
            Placeholder::Body(path) if path.is_empty() => {
                facts.body_text().map(|t| Val::Text(trim(t)))
            }
            Placeholder::Body(path) => facts.body_json().and_then(|j| walk(j, path)).map(Val::Json),
            Placeholder::Ip => facts.ip.map(|ip| Val::Text(ip.to_string().into())),
            Placeholder::Connected => facts.connected.map(Val::Bool),
            Placeholder::CertificateExpiration => facts.certificate_expiration_ms.map(Val::Int),
            Placeholder::CertificateSubject => text(&facts.certificate_subject),
            Placeholder::CertificateIssuer => text(&facts.certificate_issuer),
            Placeholder::CertificateSans => text(&facts.certificate_sans),
            Placeholder::DnsRcode => text(&facts.dns_rcode),
            Placeholder::Header(name) => facts.header(name).map(|h| Val::Text(h.into())),
            Placeholder::Message(path) if path.is_empty() => {
                facts.message.as_deref().map(|m| Val::Text(m.trim().into()))
            }
            Placeholder::Message(path) => facts
                .message_json()
                .and_then(|j| walk(j, path))
                .map(Val::Json),
            Placeholder::MessagesReceived => facts
                .messages_received
                .map(|n| Val::Int(saturate(n.into()))),
        };
        v.unwrap_or(Val::Missing)
    }

    /// Why the value is missing, when there is more to say than `(missing)`: a path into a
    /// body or message that is not JSON says so (`the body is not JSON (line 1, column 7:
    /// expected value)`). `None` when the value is there or simply absent.
    pub fn missing_reason(&self, facts: &Facts) -> Option<String> {
        let (what, error) = match self {
            Placeholder::Body(path) if !path.is_empty() => ("body", facts.body_json_error()?),
            Placeholder::Message(path) if !path.is_empty() => {
                ("message", facts.message_json_error()?)
            }
            _ => return None,
        };
        Some(match error {
            crate::journey::facts::NotJson::Empty => format!("the {what} is empty, not JSON"),
            error => format!("the {what} is not JSON ({error})"),
        })
    }

    /// `len()`. A whole body (or message) that is a JSON array counts its elements, as in
    /// Gatus; any other whole body counts characters.
    pub(super) fn length(&self, facts: &Facts) -> Option<usize> {
        let whole_json = match self {
            Placeholder::Body(p) if p.is_empty() => facts.body_json(),
            Placeholder::Message(p) if p.is_empty() => facts.message_json(),
            _ => None,
        };
        match whole_json {
            Some(Value::Array(a)) => Some(a.len()),
            _ => self.value(facts).len(),
        }
    }

    /// `has()`: the value is there (a JSON `null` is not); a whole body or message must also be
    /// non-empty.
    pub(super) fn present(&self, facts: &Facts) -> bool {
        match self.value(facts) {
            Val::Missing => false,
            Val::Text(t) if matches!(self, Placeholder::Body(_) | Placeholder::Message(_)) => {
                !t.is_empty()
            }
            _ => true,
        }
    }
}

impl fmt::Display for Placeholder {
    /// The canonical source form, which [`Placeholder::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, path) = match self {
            Placeholder::Status => ("STATUS", None),
            Placeholder::ResponseTime => ("RESPONSE_TIME", None),
            Placeholder::Body(p) => ("BODY", Some(p)),
            Placeholder::Ip => ("IP", None),
            Placeholder::Connected => ("CONNECTED", None),
            Placeholder::CertificateExpiration => ("CERTIFICATE_EXPIRATION", None),
            Placeholder::CertificateSubject => ("CERTIFICATE_SUBJECT", None),
            Placeholder::CertificateIssuer => ("CERTIFICATE_ISSUER", None),
            Placeholder::CertificateSans => ("CERTIFICATE_SANS", None),
            Placeholder::DnsRcode => ("DNS_RCODE", None),
            Placeholder::Header(h) => return write!(f, "[HEADERS].{h}"),
            Placeholder::Message(p) => ("MESSAGE", Some(p)),
            Placeholder::MessagesReceived => ("MESSAGES_RECEIVED", None),
        };
        write!(f, "[{name}]")?;
        for seg in path.into_iter().flatten() {
            match seg {
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn text(fact: &Option<String>) -> Option<Val<'_>> {
    fact.as_deref().map(|t| Val::Text(t.into()))
}

fn trim(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(t.trim()),
        Cow::Owned(t) if t.trim().len() == t.len() => Cow::Owned(t),
        Cow::Owned(t) => Cow::Owned(t.trim().to_string()),
    }
}

/// Follows a path; wrong types, absent keys, indexes out of range and `null` are all missing.
fn walk<'v>(mut v: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    for seg in path {
        v = match (seg, v) {
            (PathSegment::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSegment::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    (!v.is_null()).then_some(v)
}

fn parse(src: &str) -> Located<Placeholder> {
    let Some(inner) = src.strip_prefix('[') else {
        return Err((
            0,
            format!(
                "expected a placeholder such as `[BODY].id`, found `{}`",
                snippet(src)
            ),
        ));
    };
    let Some(close) = inner.find(']') else {
        return Err((0, format!("unclosed `[` in `{}`", snippet(src))));
    };
    let name = &inner[..close];
    let rest_at = close + 2;
    let rest = &src[rest_at..];
    let at_rest = |(at, m): (usize, String)| (rest_at + at, m);
    let simple = match name {
        "STATUS" => Placeholder::Status,
        "RESPONSE_TIME" => Placeholder::ResponseTime,
        "IP" => Placeholder::Ip,
        "CONNECTED" => Placeholder::Connected,
        "CERTIFICATE_EXPIRATION" => Placeholder::CertificateExpiration,
        "CERTIFICATE_SUBJECT" => Placeholder::CertificateSubject,
        "CERTIFICATE_ISSUER" => Placeholder::CertificateIssuer,
        "CERTIFICATE_SANS" => Placeholder::CertificateSans,
        "DNS_RCODE" => Placeholder::DnsRcode,
        "MESSAGES_RECEIVED" => Placeholder::MessagesReceived,
        "BODY" => {
            return parse_path(rest, "[BODY]")
                .map(Placeholder::Body)
                .map_err(at_rest);
        }
        "MESSAGE" => {
            return parse_path(rest, "[MESSAGE]")
                .map(Placeholder::Message)
                .map_err(at_rest);
        }
        // `[HEADER]` is what newer Gatus versions call it.
        "HEADERS" | "HEADER" => {
            return parse_header(rest).map(Placeholder::Header).map_err(at_rest);
        }
        _ => return Err((0, unknown_placeholder(name))),
    };
    match rest.is_empty() {
        true => Ok(simple),
        false => Err((
            rest_at,
            format!("`[{name}]` has no fields; unexpected `{}`", snippet(rest)),
        )),
    }
}

fn unknown_placeholder(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    match upper.as_str() {
        "DOMAIN_EXPIRATION" => {
            return "`[DOMAIN_EXPIRATION]` (a Gatus whois check) is not supported".into();
        }
        "CONTEXT" => {
            return "`[CONTEXT]` is not supported; use a `{{ variable }}` template instead".into();
        }
        _ => {}
    }
    let shown = snippet(name);
    if NAMES.contains(&upper.as_str()) {
        return format!(
            "unknown placeholder `[{shown}]`, did you mean `[{upper}]`? (names are upper-case)"
        );
    }
    match closest(&upper, NAMES, strsim::damerau_levenshtein, 3) {
        Some(n) => format!("unknown placeholder `[{shown}]`, did you mean `[{n}]`?"),
        None => format!(
            "unknown placeholder `[{shown}]`; expected one of {}",
            NAMES
                .iter()
                .map(|n| format!("[{n}]"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `.key`, `[0]`, chained. Keys are anything but `.`, brackets, parentheses and whitespace, so
/// `[BODY].headers.x-request-id` works.
fn parse_path(src: &str, what: &str) -> Located<Vec<PathSegment>> {
    let mut path = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        match c {
            '.' => {
                let start = i + 1;
                let len = src[start..]
                    .find(|c: char| matches!(c, '.' | '[' | ']' | '(' | ')') || c.is_whitespace())
                    .unwrap_or(src.len() - start);
                if len == 0 {
                    return Err((i, format!("expected a key after `.` in the `{what}` path")));
                }
                path.push(PathSegment::Key(src[start..start + len].to_string()));
                i = start + len;
            }
            '[' => {
                let Some(close) = src[i + 1..].find(']') else {
                    return Err((i, format!("unclosed `[` in the `{what}` path")));
                };
                let index = &src[i + 1..i + 1 + close];
                if index == "*" {
                    return Err((i, "`[*]` (every element) is not supported; use an index such as `[0]` or `len()`".into()));
                }
                let n = index
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| index.parse::<usize>().ok())
                    .flatten();
                let Some(n) = n else {
                    return Err((
                        i,
                        format!(
                            "array index must be a non-negative integer, found `[{}]`",
                            snippet(index)
                        ),
                    ));
                };
                path.push(PathSegment::Index(n));
                i += close + 2;
            }
            c if c.is_whitespace() => {
                return Err((i, format!("unexpected space in the `{what}` path")));
            }
            c => {
                return Err((
                    i,
                    format!("unexpected `{c}` in the `{what}` path; use `.key` or `[index]`"),
                ));
            }
        }
    }
    Ok(path)
}

/// `.Name`: an HTTP header name (RFC 9110 token characters).
fn parse_header(src: &str) -> Located<String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    match src.strip_prefix('.') {
        Some(name) if !name.is_empty() => match name.find(|c| !token(c)) {
            None => Ok(name.to_string()),
            Some(bad) => Err((
                1 + bad,
                format!("unexpected character in header name `{}`", snippet(name)),
            )),
        },
        _ => Err((
            0,
            "`[HEADERS]` needs a header name, e.g. `[HEADERS].content-type`".into(),
        )),
    }
}
