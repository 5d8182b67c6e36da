//! The condition language: parsing a condition once at load, evaluating it per attempt.
//!
//! It is Gatus's language, so an endpoint's `conditions:` list works unchanged, plus a few
//! Waymark extensions. A condition is `LEFT OP RIGHT`:
//!
//! - `OP` is one of `==`, `!=`, `<`, `<=`, `>`, `>=`, with whitespace on each side (as Gatus
//!   requires), exactly once outside function parentheses and `{{ }}`.
//! - An operand is a placeholder ([`Placeholder`]: `[STATUS]`, `[RESPONSE_TIME]`, `[BODY]`,
//!   `[BODY].a.b[0]`, `[IP]`, `[CONNECTED]`, `[CERTIFICATE_EXPIRATION]`, `[DNS_RCODE]`, and
//!   Waymark's `[HEADERS].name`, `[MESSAGE]`, `[MESSAGE].path`, `[MESSAGES_RECEIVED]`),
//!   `len(placeholder)`, `has(placeholder)`, or literal text, which may contain `{{ }}`
//!   templates rendered against the run's [`Scope`].
//! - With `==`/`!=` one side may instead be a matcher: `pat(glob)` (`*`, `?`), `any(a, b, c)`,
//!   or Waymark's `matches(regex)` (unanchored, compiled at load). Gatus also accepts the
//!   matcher on the left, so we do.
//!
//! Comparison rules (see `value.rs`): `==` is numeric when both sides are numbers (`7`,
//! `7.0`, `"7"`, `0x7` are equal), else textual; ordering needs numbers or Go durations (`48h`)
//! on both sides and fails otherwise. A missing value (absent path, JSON `null`, unrecorded
//! fact) equals nothing and has no order, so only `!=` passes on it — as in Gatus, except that
//! Gatus orders it as `0`, which would let `[BODY].missing < 5` pass.

mod placeholder;
mod value;

use regex::Regex;

use super::facts::Facts;
use super::redact::{REDACTED, Redactor, is_credential_header};
use super::template::{RenderError, Scope, Template};
pub use placeholder::{PathSegment, Placeholder};
use value::{Val, equal, glob, human_duration};

/// A condition parse error, with the byte offset inside the condition string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

/// One parsed condition. Immutable after [`Condition::parse`]; evaluation only renders
/// templates and reads facts.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    left: Operand,
    op: Op,
    right: Side,
}

/// The outcome of evaluating one condition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ConditionOutcome {
    pub expression: String,
    pub passed: bool,
    pub actual: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Two-character operators first, so `<=` is never read as `<`.
const OPS: [(&str, Op); 6] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];
const EXPECTED_OP: &str = "expected one of ==, !=, <, <=, >, >=";

#[derive(Debug, Clone)]
enum Operand {
    Value(Placeholder),
    Len(Placeholder),
    Has(Placeholder),
    Literal(Template),
}

#[derive(Debug, Clone)]
enum Matcher {
    Pat(Template),
    Any(Vec<Template>),
    Matches(Regex),
}

#[derive(Debug, Clone)]
enum Side {
    Operand(Operand),
    Matcher(Matcher),
}

impl Condition {
    pub fn parse(src: &str) -> Result<Condition, ConditionError> {
        let (at, op_text, op) = find_operator(src)?;
        let end = at + op_text.len();
        let (lhs, lhs_at) = trimmed(&src[..at], 0);
        let (rhs, rhs_at) = trimmed(&src[end..], end);
        if lhs.is_empty() {
            return Err(error(
                at,
                format!("missing left-hand side before `{op_text}`"),
            ));
        }
        if rhs.is_empty() {
            return Err(error(
                src.len(),
                format!("missing right-hand side after `{op_text}`"),
            ));
        }
        let (left, right) = (parse_side(lhs, lhs_at)?, parse_side(rhs, rhs_at)?);
        check_sides(op, (&left, lhs_at), (&right, rhs_at))?;
        let (left, right) = match (left, right) {
            (Side::Matcher(_), Side::Matcher(_)) => {
                let msg = "both sides are `pat()`/`any()`/`matches()`; one side must be a value such as `[BODY].name`";
                return Err(error(rhs_at, msg));
            }
            (Side::Matcher(m), Side::Operand(o)) => (o, Side::Matcher(m)),
            (Side::Operand(o), right) => (o, right),
        };
        Ok(Condition {
            source: src.to_string(),
            left,
            op,
            right,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every template in the condition's literals and matchers, for the validator.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let left = match &self.left {
            Operand::Literal(t) => Some(t),
            _ => None,
        };
        let right: Vec<&Template> = match &self.right {
            Side::Operand(Operand::Literal(t)) | Side::Matcher(Matcher::Pat(t)) => vec![t],
            Side::Matcher(Matcher::Any(options)) => options.iter().collect(),
            _ => Vec::new(),
        };
        left.into_iter().chain(right)
    }

    /// Every placeholder the condition reads, including inside `len()` and `has()`.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        let right = match &self.right {
            Side::Operand(o) => o.placeholder(),
            Side::Matcher(_) => None,
        };
        self.left.placeholder().into_iter().chain(right)
    }

    pub fn evaluate(&self, facts: &Facts, scope: &Scope<'_>) -> ConditionOutcome {
        let (passed, actual) = self
            .judge(facts, scope)
            .unwrap_or_else(|e| (false, format!("cannot render: {e}")));
        ConditionOutcome {
            expression: self.source.clone(),
            passed,
            actual,
        }
    }

    fn judge(&self, facts: &Facts, scope: &Scope<'_>) -> Result<(bool, String), RenderError> {
        let left = self.left.eval(facts, scope)?;
        let mut actual = self.left.describe(&left, facts, scope.redactor);
        // For `==` and `!=`: whether the sides are equal; for the others, whether the order holds.
        let holds = match &self.right {
            Side::Matcher(m) => m.matches(&left, scope)?,
            Side::Operand(o) => {
                let right = o.eval(facts, scope)?;
                if !matches!(o, Operand::Literal(_)) {
                    actual = format!("{actual} vs {}", o.describe(&right, facts, scope.redactor));
                }
                match self.op {
                    Op::Eq | Op::Ne => equal(&left, &right),
                    op => {
                        let order = left
                            .magnitude()
                            .zip(right.magnitude())
                            .and_then(|(l, r)| l.compare(r));
                        order.is_some_and(|o| match op {
                            Op::Lt => o.is_lt(),
                            Op::Le => o.is_le(),
                            Op::Gt => o.is_gt(),
                            _ => o.is_ge(),
                        })
                    }
                }
            }
        };
        let passed = if self.op == Op::Ne { !holds } else { holds };
        Ok((passed, actual))
    }
}

impl Operand {
    fn placeholder(&self) -> Option<&Placeholder> {
        match self {
            Operand::Value(p) | Operand::Len(p) | Operand::Has(p) => Some(p),
            Operand::Literal(_) => None,
        }
    }

    fn eval<'f>(&self, facts: &'f Facts, scope: &Scope<'_>) -> Result<Val<'f>, RenderError> {
        Ok(match self {
            Operand::Value(p) => p.value(facts),
            Operand::Len(p) => p.length(facts).map_or(Val::Missing, |n| {
                Val::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }),
            Operand::Has(p) => Val::Bool(p.present(facts)),
            Operand::Literal(t) => Val::Text(t.render(scope)?.into()),
        })
    }

    /// What the report shows of a value: a credential header's value never, whatever it is.
    fn describe(&self, v: &Val, facts: &Facts, redactor: &Redactor) -> String {
        match (self, v) {
            (_, Val::Missing) => self
                .placeholder()
                .and_then(|p| p.missing_reason(facts))
                .unwrap_or_else(|| v.describe(redactor)),
            (Operand::Len(_), _) => format!("len={}", v.describe(redactor)),
            (Operand::Has(_), _) => format!("has={}", v.describe(redactor)),
            (Operand::Value(Placeholder::Header(name)), _) if is_credential_header(name) => {
                REDACTED.to_string()
            }
            (Operand::Value(Placeholder::CertificateExpiration), Val::Int(ms)) => {
                format!("{ms} ({})", human_duration(*ms))
            }
            _ => v.describe(redactor),
        }
    }
}

impl Matcher {
    fn name(&self) -> &'static str {
        match self {
            Matcher::Pat(_) => "pat",
            Matcher::Any(_) => "any",
            Matcher::Matches(_) => "matches",
        }
    }

    fn matches(&self, v: &Val, scope: &Scope<'_>) -> Result<bool, RenderError> {
        Ok(match self {
            Matcher::Pat(t) => {
                let pattern = t.render(scope)?;
                v.text().is_some_and(|text| glob(&pattern, &text))
            }
            Matcher::Any(options) => {
                let options = options
                    .iter()
                    .map(|t| t.render(scope))
                    .collect::<Result<Vec<_>, _>>()?;
                options.into_iter().any(|o| equal(v, &Val::Text(o.into())))
            }
            Matcher::Matches(re) => v.text().is_some_and(|text| re.is_match(&text)),
        })
    }
}

/// Combinations that parse but could never be meaningful are errors at load time.
fn check_sides(op: Op, left: (&Side, usize), right: (&Side, usize)) -> Result<(), ConditionError> {
    let equality = matches!(op, Op::Eq | Op::Ne);
    for ((side, side_at), (other, other_at)) in [(left, right), (right, left)] {
        match side {
            Side::Matcher(m) if !equality => {
                return Err(error(
                    side_at,
                    format!("`{}()` works only with == and !=", m.name()),
                ));
            }
            Side::Operand(Operand::Has(_)) if !equality => {
                return Err(error(
                    side_at,
                    "`has()` is true or false: compare it with == or !=",
                ));
            }
            // `has([BODY].x) == yes` could never pass.
            Side::Operand(Operand::Has(_)) => {
                if let Side::Operand(Operand::Literal(t)) = other
                    && t.is_literal()
                    && !matches!(t.to_string().as_str(), "true" | "false")
                {
                    let msg = format!(
                        "`has()` is true or false; compare it with `true` or `false`, not `{}`",
                        snippet(&t.to_string())
                    );
                    return Err(error(other_at, msg));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn error(offset: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        offset,
        message: message.into(),
    }
}

/// User text quoted in an error message, cut so a huge input cannot make a huge message.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// `s` without surrounding whitespace, and the offset where what is left starts.
fn trimmed(s: &str, at: usize) -> (&str, usize) {
    let start = s.trim_start();
    (start.trim_end(), at + s.len() - start.len())
}

fn op_at(bytes: &[u8]) -> Option<(&'static str, Op)> {
    OPS.into_iter()
        .find(|(text, _)| bytes.starts_with(text.as_bytes()))
}

/// Finds the one operator with whitespace on both sides, outside parentheses and `{{ }}`.
fn find_operator(src: &str) -> Result<(usize, &'static str, Op), ConditionError> {
    if src.trim().is_empty() {
        return Err(error(
            0,
            "empty condition; expected something like `[STATUS] == 200`",
        ));
    }
    let b = src.as_bytes();
    let is_op_char = |c: Option<&u8>| matches!(c, Some(b'=' | b'!' | b'<' | b'>'));
    let mut found: Option<(usize, &'static str, Op)> = None;
    let mut unspaced: Option<(usize, &'static str)> = None;
    let mut open = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"{{") {
            match src[i + 2..].find("}}") {
                Some(n) => i += n + 4,
                None => break,
            }
            continue;
        }
        match b[i] {
            b'(' => open.push(i),
            b')' => drop(open.pop()),
            _ if open.is_empty() => {
                if let Some((text, op)) = op_at(&b[i..]) {
                    let after = b.get(i + text.len());
                    let before = i.checked_sub(1).map(|p| &b[p]);
                    if before.is_none_or(u8::is_ascii_whitespace)
                        && after.is_none_or(u8::is_ascii_whitespace)
                    {
                        if let Some((_, first, _)) = found {
                            let msg = format!(
                                "only one comparison is allowed per condition; found `{first}` and then `{text}`"
                            );
                            return Err(error(i, msg));
                        }
                        found = Some((i, text, op));
                    } else if unspaced.is_none() && !is_op_char(before) && !is_op_char(after) {
                        unspaced = Some((i, text));
                    }
                    i += text.len();
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(f) = found {
        return Ok(f);
    }
    if let Some(&p) = open.first() {
        let name_start = src[..p]
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
            .len();
        return Err(match &src[name_start..p] {
            "" => error(p, "unclosed `(`"),
            name => error(name_start, format!("unclosed `(` in `{}(`", snippet(name))),
        });
    }
    if let Some((at, text)) = unspaced {
        return Err(error(
            at,
            format!("`{text}` needs a space on each side, as in `[STATUS] {text} 200`"),
        ));
    }
    let (rest, at) = trimmed(src, 0);
    let first_len = rest
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let first = snippet(&rest[..first_len]);
    let (next, next_at) = trimmed(&rest[first_len..], at + first_len);
    Err(match next.split_ascii_whitespace().next() {
        None => error(at + first_len, format!("{EXPECTED_OP} after `{first}`")),
        Some(found) => error(
            next_at,
            format!("{EXPECTED_OP} after `{first}`, found `{}`", snippet(found)),
        ),
    })
}

fn template(text: &str, at: usize) -> Result<Template, ConditionError> {
    Template::parse(text).map_err(|e| error(at + e.offset, e.message))
}

/// One operand, already trimmed, starting at byte `at` of the condition.
fn parse_side(text: &str, at: usize) -> Result<Side, ConditionError> {
    let ident = text.len()
        - text
            .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
            .len();
    let starts_alpha = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if starts_alpha && text[ident..].starts_with('(') {
        return parse_function(&text[..ident], text, at);
    }
    let bracketed = text
        .strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .map(|(name, _)| name);
    if bracketed
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
    {
        return Ok(Side::Operand(Operand::Value(Placeholder::parse_at(
            text, at,
        )?)));
    }
    Ok(Side::Operand(Operand::Literal(template(text, at)?)))
}

const FUNCTIONS: [&str; 5] = ["len", "has", "pat", "any", "matches"];

fn parse_function(name: &str, text: &str, at: usize) -> Result<Side, ConditionError> {
    let open = name.len();
    let Some(arg) = text.strip_suffix(')').map(|t| &t[open + 1..]) else {
        return Err(match text.rfind(')') {
            Some(c) => error(
                at + c + 1,
                format!("unexpected `{}` after `{name}(…)`", snippet(&text[c + 1..])),
            ),
            None => error(at + open, format!("unclosed `(` in `{}(`", snippet(name))),
        });
    };
    let (arg, arg_at) = trimmed(arg, at + open + 1);
    let side = match name {
        "len" | "has" => {
            if !arg.starts_with('[') {
                let found = if arg.is_empty() {
                    String::new()
                } else {
                    format!(", found `{}`", snippet(arg))
                };
                return Err(error(
                    arg_at,
                    format!("`{name}()` takes a placeholder such as `[BODY].items`{found}"),
                ));
            }
            let p = Placeholder::parse_at(arg, arg_at)?;
            Side::Operand(if name == "len" {
                Operand::Len(p)
            } else {
                Operand::Has(p)
            })
        }
        _ if arg.is_empty() => {
            let example = match name {
                "pat" => "pat(2*)",
                "any" => "any(200, 201)",
                _ => "matches(^ok$)",
            };
            let known = FUNCTIONS.contains(&name).then_some(example);
            return Err(match known {
                Some(example) => error(
                    arg_at,
                    format!("`{name}()` needs an argument, e.g. `{example}`"),
                ),
                None => unknown_function(name, at),
            });
        }
        "pat" => Side::Matcher(Matcher::Pat(template(arg, arg_at)?)),
        "any" => {
            let mut options = Vec::new();
            let mut start = arg_at;
            for part in arg.split(',') {
                let (option, option_at) = trimmed(part, start);
                if option.is_empty() {
                    return Err(error(start, "empty value in `any()`"));
                }
                options.push(template(option, option_at)?);
                start += part.len() + 1;
            }
            Side::Matcher(Matcher::Any(options))
        }
        "matches" => match Regex::new(arg) {
            Ok(re) => Side::Matcher(Matcher::Matches(re)),
            Err(e) => {
                return Err(error(
                    arg_at,
                    format!(
                        "invalid regular expression in `matches()`: {}",
                        regex_reason(&e)
                    ),
                ));
            }
        },
        _ => return Err(unknown_function(name, at)),
    };
    Ok(side)
}

fn unknown_function(name: &str, at: usize) -> ConditionError {
    let lower = name.to_ascii_lowercase();
    match closest(&lower, &FUNCTIONS, strsim::levenshtein, 2) {
        Some(f) => error(
            at,
            format!(
                "unknown function `{}()`, did you mean `{f}()`?",
                snippet(name)
            ),
        ),
        None => error(
            at,
            format!(
                "unknown function `{}()`; expected len(), has(), pat(), any() or matches()",
                snippet(name)
            ),
        ),
    }
}

/// The candidate nearest to `name` by `distance` (the first of equals), if at most `max`
/// away: the "did you mean" of unknown functions and placeholders. Names longer than 64 bytes
/// get none: strsim allocates len × len, and `name` comes straight from the user.
fn closest<'a>(
    name: &str,
    candidates: &[&'a str],
    distance: fn(&str, &str) -> usize,
    max: usize,
) -> Option<&'a str> {
    if name.len() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= max)
        .map(|(_, c)| c)
}

/// The regex crate's message is a multi-line diagram; keep its `error:` line.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .or_else(|| text.lines().last());
    line.unwrap_or("invalid").to_string()
}

#[cfg(test)]
mod tests;
