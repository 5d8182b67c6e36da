//! Typed accessors over the located YAML tree that record problems instead of stopping.
//!
//! Every accessor returns `Option`: `None` means "a problem was recorded here", so callers keep
//! going and one pass reports everything wrong with a file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::condition::ConditionError;
use super::super::template::{Ref, Template};
use super::super::yaml::{Node, Pos, Value};
use super::Diagnostic;

pub(super) struct Checker {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

/// `check` on every item, the ones after a bad one included (so one pass reports every
/// problem); the values if every item was good.
pub(super) fn every<I, T>(
    items: impl IntoIterator<Item = I>,
    check: impl FnMut(I) -> Option<T>,
) -> Option<Vec<T>> {
    let checked: Vec<Option<T>> = items.into_iter().map(check).collect();
    checked.into_iter().collect()
}

/// The entries of a mapping whose keys were all checked against the allowed set.
pub(super) struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| k.pos)
    }
}

/// The closest allowed word, if it is close enough to be a plausible typo.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub(super) fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Checker {
    pub fn new(path: &Path) -> Checker {
        Checker {
            path: path.to_path_buf(),
            diagnostics: Vec::new(),
        }
    }

    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.path.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    /// What the condition language made of `text` (a condition, an extraction's placeholder),
    /// or `None` with its error recorded at the offending character of `node`, as `invalid
    /// {what} `{text}`: ...`.
    pub fn parsed<T>(
        &mut self,
        node: &Node,
        what: &str,
        text: &str,
        parsed: Result<T, ConditionError>,
    ) -> Option<T> {
        parsed
            .map_err(|e| {
                let message = format!("invalid {what} `{text}`: {}", e.message);
                self.err(node.pos_at(e.offset), message);
            })
            .ok()
    }

    /// A mapping with only `allowed` keys; unknown keys are reported with a suggestion.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(map) = &node.value else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in map {
            let Value::Str(key) = &k.value else {
                self.err(
                    k.pos,
                    format!("keys of {what} must be strings, found {}", k.type_name()),
                );
                continue;
            };
            if allowed.contains(&key.as_str()) {
                entries.push((key.as_str(), k, v));
            } else {
                let hint = match did_you_mean(key, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of: {}", allowed.join(", ")),
                };
                self.err(k.pos, format!("unknown key `{key}` in {what}; {hint}"));
            }
        }
        Some(Fields { entries })
    }

    /// A mapping with free-form string keys (variables, headers, query, extract).
    pub fn string_map<'n>(&mut self, node: &'n Node, what: &str) -> Vec<(String, &'n Node, Pos)> {
        let Value::Map(map) = &node.value else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            match k.scalar_text() {
                Some(key) => out.push((key, v, k.pos)),
                None => self.err(
                    k.pos,
                    format!("keys of {what} must be strings, found {}", k.type_name()),
                ),
            }
        }
        out
    }

    pub fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a list, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// Any scalar read as text: `owner: 42` reads as "42", as a user would expect.
    pub fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = node.scalar_text();
        if text.is_none() {
            self.err(
                node.pos,
                format!("{what} must be a string, found {}", node.type_name()),
            );
        }
        text
    }

    pub fn non_empty_text(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.text(node, what)?;
        if text.trim().is_empty() {
            self.err(node.pos, format!("{what} must not be empty"));
            return None;
        }
        Some(text)
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be true or false, found {}", node.type_name()),
                );
                None
            }
        }
    }

    pub fn uint(&mut self, node: &Node, what: &str, max: u64) -> Option<u64> {
        match node.value {
            Value::Int(i) if (0..=max as i64).contains(&i) => Some(i as u64),
            Value::Int(_) => {
                self.err(node.pos, format!("{what} must be between 0 and {max}"));
                None
            }
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be an integer, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A humane duration (`500ms`, `30s`, `5m`, `1h 30m`) within `[min, max]`.
    pub fn duration(
        &mut self,
        node: &Node,
        what: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(_) | Value::Float(_) => {
                self.err(
                    node.pos,
                    format!(
                        "{what} needs a unit, e.g. `{}s` or `{}ms`",
                        node.scalar_text()?,
                        node.scalar_text()?
                    ),
                );
                return None;
            }
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must be a duration such as `30s`, found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d < min || d > max => {
                self.err(
                    node.pos,
                    format!(
                        "{what} `{text}` is out of range ({} to {})",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    node.pos,
                    format!(
                        "{what} `{text}` is not a duration ({e}); use e.g. `500ms`, `30s`, `5m`"
                    ),
                );
                None
            }
        }
    }

    /// Text that is used as written (a header or JSON key, a subprotocol): a `{{` there would
    /// be sent literally, so it is an error. `true` if the text is fine.
    pub fn literal_only(&mut self, pos: Pos, text: &str, what: &str) -> bool {
        if !text.contains("{{") {
            return true;
        }
        self.err(
            pos,
            format!("{what} `{text}` is used as written: `{{{{ }}}}` is not rendered there"),
        );
        false
    }

    /// A template whose variables must all be in `defined`.
    pub fn template(
        &mut self,
        node: &Node,
        what: &str,
        defined: &BTreeSet<String>,
    ) -> Option<Template> {
        let text = self.text(node, what)?;
        self.template_text(node, &text, 0, what, defined)
    }

    /// Parses `text` (found at byte `offset` of `node`'s string) as a template and checks its
    /// variables.
    pub fn template_text(
        &mut self,
        node: &Node,
        text: &str,
        offset: usize,
        what: &str,
        defined: &BTreeSet<String>,
    ) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                self.check_vars(node, &t, what, defined);
                Some(t)
            }
            Err(e) => {
                self.err(
                    node.pos_at(offset + e.offset),
                    format!("in {what}: {}", e.message),
                );
                None
            }
        }
    }

    /// Reports every `{{ var }}` of `t` that nothing defines before this point.
    pub fn check_vars(
        &mut self,
        node: &Node,
        t: &Template,
        what: &str,
        defined: &BTreeSet<String>,
    ) {
        for r in t.refs() {
            if let Ref::Var(name) = r
                && !defined.contains(name)
            {
                let at = match &node.value {
                    Value::Str(s) => s.find(name.as_str()).map_or(node.pos, |o| node.pos_at(o)),
                    _ => node.pos,
                };
                let hint = match did_you_mean(name, defined.iter().map(String::as_str)) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => String::new(),
                };
                self.err(
                    at,
                    format!(
                        "in {what}: variable `{name}` is not defined: `variables:` does not define it and no earlier step extracts it{hint}"
                    ),
                );
            }
        }
    }
}
