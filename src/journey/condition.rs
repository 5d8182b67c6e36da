//! The condition language (Gatus-compatible, extended). STUB: interface only, being implemented.

use super::facts::Facts;
use super::template::{Scope, Template};

/// A condition parse error, with the byte offset inside the condition string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

/// `[STATUS]`, `[BODY].a.b[0]`, `[HEADERS].name`, ...
#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder {
    Status,
}

impl Placeholder {
    pub fn parse(_src: &str) -> Result<Placeholder, ConditionError> {
        todo!()
    }
    /// The value the placeholder points at, `None` when missing.
    pub fn resolve(&self, _facts: &Facts) -> Option<serde_json::Value> {
        todo!()
    }
}

#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
}

/// The outcome of evaluating one condition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConditionOutcome {
    pub expression: String,
    pub passed: bool,
    pub actual: String,
}

impl Condition {
    pub fn parse(src: &str) -> Result<Condition, ConditionError> {
        Ok(Condition { source: src.to_string() })
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::empty()
    }
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        std::iter::empty()
    }
    pub fn evaluate(&self, _facts: &Facts, _scope: &Scope<'_>) -> ConditionOutcome {
        todo!()
    }
}
