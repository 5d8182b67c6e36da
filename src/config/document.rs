//! The configuration file as a span-preserving TOML document (`toml::de::DeTable`): where its
//! keys and values are, so that every problem can be shown at its line and column.
//!
//! serde stops at the first error, so a document that does not deserialize is tried again one
//! section at a time ([`SPLIT`]), each part alone over the defaults: every failing part is
//! reported, and the rest still deserializes and goes on to the semantic checks.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, Deserializer};

use super::Config;
use super::problem::{ConfigProblem, Key, KeyPath, Source};

/// The tables whose entries deserialize independently of each other (every field has a
/// default, or the table is a map): a failure inside them is looked for entry by entry.
const SPLIT: &[&[&str]] = &[
    &[],
    &["alerting"],
    &["alerting", "channels"],
    &["alerting", "flapping"],
    &["alerting", "retry"],
    &["digest"],
    &["digest", "owners"],
    &["dashboard"],
    &["retention"],
    &["status_page"],
];

/// A parsed `waymark.toml`.
pub(super) struct Document<'t> {
    file: PathBuf,
    text: &'t str,
    root: Spanned<DeTable<'t>>,
    /// Syntax errors; the document holds what could be recovered.
    syntax: Vec<toml::de::Error>,
}

/// An ancestor of an entry: its key and the span of its table.
type Ancestor<'t> = (Spanned<DeString<'t>>, Range<usize>);

impl<'t> Document<'t> {
    pub(super) fn parse(text: &'t str, file: &Path) -> Document<'t> {
        let (root, syntax) = DeTable::parse_recoverable(text);
        Document {
            file: file.to_path_buf(),
            text,
            root,
            syntax,
        }
    }

    /// The configuration the document holds, with every syntax and deserialization problem.
    /// The configuration is none when the syntax is broken; otherwise it is what deserializes,
    /// with the failing parts left at their defaults.
    pub(super) fn config(&self) -> (Option<Config>, Vec<ConfigProblem>) {
        if !self.syntax.is_empty() {
            // The recovered document is no guide to the path: show the position only.
            let mut problems: Vec<ConfigProblem> = Vec::new();
            for e in &self.syntax {
                let problem = ConfigProblem {
                    path: KeyPath::root(),
                    ..self.problem(e, None)
                };
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            problems.sort_by_key(ConfigProblem::position);
            return (None, problems);
        }
        let Err(whole) = deserialize(self.root.clone()) else {
            return (deserialize(self.root.clone()).ok(), Vec::new());
        };
        let mut failures = Vec::new();
        self.failures(&mut Vec::new(), self.root.get_ref(), &mut failures);
        if failures.is_empty() {
            return (None, vec![self.problem(&whole, None)]);
        }
        let problems = failures
            .iter()
            .map(|(path, e)| self.problem(e, Some(path)))
            .collect();
        let mut good = self.root.clone();
        for (path, _) in &failures {
            without(good.get_mut(), path);
        }
        (deserialize(good).ok(), problems)
    }

    /// The entries of `table` (at `ancestors`) that do not deserialize on their own, looked
    /// for deeper in the [`SPLIT`] tables.
    fn failures(
        &self,
        ancestors: &mut Vec<Ancestor<'t>>,
        table: &DeTable<'t>,
        out: &mut Vec<(Vec<String>, toml::de::Error)>,
    ) {
        for (key, value) in table.iter() {
            let Err(e) = deserialize(self.alone(ancestors, key, value)) else {
                continue;
            };
            let mut path: Vec<String> = ancestors
                .iter()
                .map(|(k, _)| k.get_ref().to_string())
                .collect();
            path.push(key.get_ref().to_string());
            let split = SPLIT.iter().any(|s| s.iter().eq(path.iter()));
            if let (true, DeValue::Table(inner)) = (split, value.get_ref()) {
                let before = out.len();
                ancestors.push((key.clone(), value.span()));
                self.failures(ancestors, inner, out);
                ancestors.pop();
                if out.len() > before {
                    continue;
                }
            }
            out.push((path, e));
        }
    }

    /// A document holding only `key = value` under its ancestors.
    fn alone(
        &self,
        ancestors: &[Ancestor<'t>],
        key: &Spanned<DeString<'t>>,
        value: &Spanned<DeValue<'t>>,
    ) -> Spanned<DeTable<'t>> {
        let mut table = DeTable::new();
        table.insert(key.clone(), value.clone());
        for (key, span) in ancestors.iter().rev() {
            let mut outer = DeTable::new();
            outer.insert(
                key.clone(),
                Spanned::new(span.clone(), DeValue::Table(table)),
            );
            table = outer;
        }
        Spanned::new(self.root.span(), table)
    }

    /// A toml error as a problem placed at its span (or, lacking one, at `path`).
    fn problem(&self, e: &toml::de::Error, path: Option<&[String]>) -> ConfigProblem {
        let fallback = path.map_or_else(KeyPath::root, |p| {
            p.iter().fold(KeyPath::root(), |k, name| k.key(name))
        });
        let (at, path) = match e.span() {
            Some(span) => (Some(span.start), self.path_at(span.start)),
            None => (self.span_of(&fallback).map(|s| s.start), fallback.clone()),
        };
        let path = if path.is_root() { fallback } else { path };
        ConfigProblem {
            source: Source::File {
                file: self.file.clone(),
                at: at.map(|offset| self.line_col(offset)),
            },
            path,
            message: e.message().trim_end().to_string(),
        }
    }

    /// Places a problem of the setting at its path: the line and column of its key (or of the
    /// nearest enclosing one the file holds).
    pub(super) fn place(&self, problem: &mut ConfigProblem) {
        problem.source = Source::File {
            file: self.file.clone(),
            at: self
                .span_of(&problem.path)
                .map(|span| self.line_col(span.start)),
        };
    }

    /// The span of the key at `path` (of an array's element, for an index), or of its nearest
    /// ancestor in the document; none when not even the first key is there.
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let root = self.root.get_ref();
        let mut here: Option<&DeValue<'t>> = None;
        let mut found = None;
        for key in path.keys() {
            let next = match (key, here) {
                (Key::Name(name), None) => root.get_key_value(name.as_str()),
                (Key::Name(name), Some(DeValue::Table(t))) => t.get_key_value(name.as_str()),
                (Key::Index(i), Some(DeValue::Array(a))) => match a.get(*i) {
                    Some(element) => {
                        found = Some(element.span());
                        here = Some(element.get_ref());
                        continue;
                    }
                    None => None,
                },
                _ => None,
            };
            let Some((k, v)) = next else { break };
            found = Some(k.span());
            here = Some(v.get_ref());
        }
        found
    }

    /// The path of the deepest key or element whose span holds `offset`.
    fn path_at(&self, offset: usize) -> KeyPath {
        let mut path = KeyPath::root();
        let mut table = Some(self.root.get_ref());
        let mut array = None;
        loop {
            let holds = |s: Range<usize>| s.start <= offset && offset <= s.end;
            let next = if let Some(t) = table.take() {
                t.iter()
                    .find(|(k, v)| holds(k.span()) || holds(v.span()))
                    .map(|(k, v)| (Key::Name(k.get_ref().to_string()), v))
            } else if let Some(a) = array.take() {
                let a: &[Spanned<DeValue<'t>>] = a;
                a.iter()
                    .enumerate()
                    .find(|(_, v)| holds(v.span()))
                    .map(|(i, v)| (Key::Index(i), v))
            } else {
                None
            };
            let Some((key, value)) = next else {
                return path;
            };
            path = match key {
                Key::Name(name) => path.key(name),
                Key::Index(i) => path.index(i),
            };
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => array = Some(&**a),
                _ => return path,
            }
        }
    }

    /// Line and column (from 1, in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
        )
    }
}

fn deserialize(root: Spanned<DeTable<'_>>) -> Result<Config, toml::de::Error> {
    Config::deserialize(Deserializer::from(root))
}

/// Removes the entry at `path`. A channel that does not deserialize stands in as a `log`
/// channel rather than vanishing, so that routes and digests naming it are not also reported
/// as naming an undefined channel.
fn without(root: &mut DeTable<'_>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = root;
    for name in parents {
        match table.get_mut(name.as_str()).map(Spanned::get_mut) {
            Some(DeValue::Table(t)) => table = t,
            _ => return,
        }
    }
    if parents
        .iter()
        .map(String::as_str)
        .eq(["alerting", "channels"])
    {
        if let Some(channel) = table.get_mut(last.as_str()) {
            let span = channel.span();
            let mut log = DeTable::new();
            log.insert(
                Spanned::new(span.clone(), "type".into()),
                Spanned::new(span.clone(), DeValue::String("log".into())),
            );
            *channel = Spanned::new(span, DeValue::Table(log));
        }
    } else {
        table.remove(last.as_str());
    }
}
