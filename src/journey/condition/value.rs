//! Resolved operands and how they compare.
//!
//! Gatus compares everything as strings and coerces to integers on demand; Waymark keeps JSON
//! values typed as long as it can, so `7`, `7.0` and `"7"` are the same number and a missing
//! value never turns into `0`.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::journey::redact::Redactor;

/// What one side of a condition resolved to, borrowing from the facts where it can so that a
/// large body is never copied just to be compared.
#[derive(Debug)]
pub(super) enum Val<'f> {
    /// A path that is not there, a JSON `null`, or a fact the step did not record. It is equal
    /// to nothing and has no order, so only `!=` passes on it (as in Gatus).
    Missing,
    Text(Cow<'f, str>),
    Int(i64),
    Bool(bool),
    Json(&'f Value),
}

/// A number from JSON or from text; integers stay exact.
#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(super) fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

impl Val<'_> {
    /// The text form used by `==` on non-numbers, `pat()` and `matches()`. Containers are
    /// minified JSON (Gatus prints arrays in Go syntax; JSON is what users can write back).
    pub(super) fn text(&self) -> Option<Cow<'_, str>> {
        Some(match self {
            Val::Missing => return None,
            Val::Text(t) => Cow::Borrowed(t.as_ref()),
            Val::Int(i) => Cow::Owned(i.to_string()),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Val::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Val::Json(Value::Number(n)) => Cow::Owned(match n.as_i64() {
                Some(i) => i.to_string(),
                // f64's Display prints 7.0 as `7`, like Gatus.
                None => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
            }),
            Val::Json(v) => Cow::Owned(v.to_string()),
        })
    }

    /// The value as a number: JSON numbers, and text that is a decimal, `0x`, `0o` or `0b`
    /// integer or a decimal float.
    pub(super) fn number(&self) -> Option<Num> {
        match self {
            Val::Int(i) => Some(Num::Int(*i)),
            Val::Json(Value::Number(n)) => n
                .as_i64()
                .map(Num::Int)
                .or_else(|| n.as_f64().map(Num::Float)),
            Val::Text(t) => parse_number(t),
            Val::Json(Value::String(s)) => parse_number(s),
            _ => None,
        }
    }

    /// The value for `<`, `<=`, `>`, `>=`: a number, or a Go-style duration (`48h`, `1m30s`) in
    /// milliseconds, which is the unit of `[RESPONSE_TIME]` and `[CERTIFICATE_EXPIRATION]`.
    pub(super) fn magnitude(&self) -> Option<Num> {
        self.number().or_else(|| match self {
            Val::Text(t) => duration_ms(t).map(Num::Float),
            Val::Json(Value::String(s)) => duration_ms(s).map(Num::Float),
            _ => None,
        })
    }

    /// `len()`: elements of an array; characters of anything else's text form (objects are
    /// minified first, as the Gatus README documents).
    pub(super) fn len(&self) -> Option<usize> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.len()),
            v => v.text().map(|t| t.chars().count()),
        }
    }

    pub(super) fn into_json(self) -> Option<Value> {
        match self {
            Val::Missing => None,
            Val::Text(t) => Some(Value::String(t.into_owned())),
            Val::Int(i) => Some(Value::from(i)),
            Val::Bool(b) => Some(Value::Bool(b)),
            Val::Json(v) => Some(v.clone()),
        }
    }

    /// A one-line rendering for reports: redacted, then control characters escaped and cut to
    /// at most ~200 characters (in that order: a cut must not leave part of a secret).
    pub(super) fn describe(&self, redactor: &Redactor) -> String {
        match self.text() {
            None => "(missing)".to_string(),
            Some(t) if t.is_empty() => "(empty)".to_string(),
            Some(t) => escape_controls(&redactor.redact_cut(&t, 200)),
        }
    }
}

/// `==`: numerically when both sides are numbers, else as text. Missing equals nothing.
///
/// Gatus resolves `{"id":7.0}` to the text `7` (Go prints the float that way), so
/// `[BODY].id == 7` passes there, but `[BODY].id == 7.0` on `{"id":7}` compares `7` with `7.0`
/// as text and fails. Comparing numbers as numbers makes both pass, and keeps Gatus's
/// `0x`/`0o`/`0b` strings (`"0x1" == 1`); integers compare exactly, beyond 2^53 too.
pub(super) fn equal(a: &Val, b: &Val) -> bool {
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return x.compare(y) == Some(Ordering::Equal);
    }
    match (a.text(), b.text()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Gatus's numbers: `strconv.ParseInt(s, 0, 64)` (prefixes `0x`, `0o`, `0b`), else a float.
/// Unlike Go, a leading `0` is decimal, and `inf`/`NaN` are not numbers.
fn parse_number(s: &str) -> Option<Num> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let radix = match digits.get(..2) {
        Some("0x" | "0X") => 16,
        Some("0o" | "0O") => 8,
        Some("0b" | "0B") => 2,
        _ => 10,
    };
    if radix != 10 {
        let body = &digits[2..];
        if body.is_empty() || !body.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let v = i64::from_str_radix(body, radix).ok()?;
        return Some(Num::Int(if negative { -v } else { v }));
    }
    let numeric = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-');
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') || !digits.bytes().all(numeric)
    {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

/// A Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`) in milliseconds.
fn duration_ms(s: &str) -> Option<f64> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-6,
            "us" | "µs" | "μs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 6e4,
            "h" => 3.6e6,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Some(if negative { -total } else { total }).filter(|t| t.is_finite())
}

/// Milliseconds as `336h`, `1h30m`, `-2h5s` (negative once a certificate has expired).
pub(super) fn human_duration(ms: i64) -> String {
    let mut out = if ms < 0 {
        "-".to_string()
    } else {
        String::new()
    };
    let secs = ms.unsigned_abs() / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || h + m == 0 {
        out += &format!("{s}s");
    }
    out
}

/// `pat()`: `*` is any run of characters (including `/`, unlike Go's `filepath.Match` that
/// Gatus works around), `?` is one character, everything else is literal; the whole text must
/// match. Greedy with single backtracking, so linear-ish even on large bodies.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let char_len = |i: usize| match t[i] {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(ti);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after_star, from)) => {
                    let next = (from + char_len(from)).min(t.len());
                    star = Some((after_star, next));
                    pi = after_star;
                    ti = next;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}
