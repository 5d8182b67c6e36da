//! What is wrong with a configuration: every problem found, each with the setting's dotted
//! path (`alerting.channels.p.routing_key`) and where its value came from: the file's line and
//! column (`waymark.toml:12:5`), or the `WAYMARK_*` environment variable that set it.

use std::fmt;
use std::path::PathBuf;

/// A setting's place in the document: `alerting.routes[0].channels[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(Vec<Key>);

/// One step of a [`KeyPath`]: a table's key or an array's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Name(String),
    Index(usize),
}

impl KeyPath {
    /// The document itself.
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    /// `self.name`.
    pub fn key(mut self, name: impl Into<String>) -> KeyPath {
        self.0.push(Key::Name(name.into()));
        self
    }

    /// `self[index]`.
    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(Key::Index(index));
        self
    }

    pub fn keys(&self) -> &[Key] {
        &self.0
    }

    /// The top-level key, if the path has one.
    pub fn first(&self) -> Option<&str> {
        match self.0.first() {
            Some(Key::Name(name)) => Some(name),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

/// `"retention.rollup"`: a path of names only, as written in code.
impl From<&str> for KeyPath {
    fn from(dotted: &str) -> KeyPath {
        dotted.split('.').fold(KeyPath::root(), KeyPath::key)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            match key {
                Key::Name(name) if i == 0 => f.write_str(name)?,
                Key::Name(name) => write!(f, ".{name}")?,
                Key::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a problem's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not placed yet, or a default (no file was given).
    Unplaced,
    /// The configuration file; `at` is the line and column (from 1) of the offending key or
    /// value, when the document holds it.
    File {
        file: PathBuf,
        at: Option<(usize, usize)>,
    },
    /// A `WAYMARK_*` environment override.
    Env(&'static str),
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub source: Source,
    /// The setting at fault (the root for a document-wide syntax error).
    pub path: KeyPath,
    /// What is wrong. It usually begins with the path; when it does not, the path is shown
    /// before it.
    pub message: String,
}

impl ConfigProblem {
    /// A problem of the setting at `path`, placed later by the loader.
    pub fn new(path: impl Into<KeyPath>, message: impl fmt::Display) -> ConfigProblem {
        ConfigProblem {
            source: Source::Unplaced,
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The line and column in the file, when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self.source {
            Source::File { at, .. } => at,
            _ => None,
        }
    }
}

/// `waymark.toml:12:5: alerting.channels.p.routing_key: environment variable PD is not set`.
impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Unplaced => {}
            Source::File {
                file,
                at: Some((line, col)),
            } => write!(f, "{}:{line}:{col}: ", file.display())?,
            Source::File { file, at: None } => write!(f, "{}: ", file.display())?,
            // The variable names the setting.
            Source::Env(name) => return write!(f, "environment variable {name}: {}", self.message),
        }
        let path = self.path.to_string();
        if !names(&self.message, &path) {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Whether `message` begins by naming `path` or one of its ancestors
/// (`alerting.routes[0] names…` for `alerting.routes[0].channels[1]`).
fn names(message: &str, path: &str) -> bool {
    let first = message
        .split([' ', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches(',');
    path.is_empty()
        || (!first.is_empty()
            && path.strip_prefix(first).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            }))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem of the file and the environment, one per line.
    #[error("{}", lines(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn lines(problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_shown_unless_the_message_names_it() {
        let at = |line, col| Source::File {
            file: "waymark.toml".into(),
            at: Some((line, col)),
        };
        let p = ConfigProblem {
            source: at(12, 5),
            ..ConfigProblem::new(
                KeyPath::from("alerting.channels.p.routing_key"),
                "alerting.channels.p.routing_key: environment variable PD is not set",
            )
        };
        assert_eq!(
            p.to_string(),
            "waymark.toml:12:5: alerting.channels.p.routing_key: environment variable PD is not set"
        );
        let p = ConfigProblem {
            source: at(3, 1),
            ..ConfigProblem::new(
                KeyPath::from("alerting.maintenance").index(0).key("end"),
                "maintenance window `m`: end is before start",
            )
        };
        assert_eq!(
            p.to_string(),
            "waymark.toml:3:1: alerting.maintenance[0].end: maintenance window `m`: end is before start"
        );
        let p = ConfigProblem {
            source: Source::Env("WAYMARK_CONCURRENCY"),
            ..ConfigProblem::new("concurrency", "`x` is not a positive integer")
        };
        assert_eq!(
            p.to_string(),
            "environment variable WAYMARK_CONCURRENCY: `x` is not a positive integer"
        );
    }
}
