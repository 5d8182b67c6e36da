//! The journey language: model, YAML parser and validator, templates, conditions.
//!
//! Invariant: this module does no network IO and never reads the clock; the parser reads files
//! only in `parse::load_dir` / [`parse::load_file`].

#![deny(clippy::disallowed_methods)]

pub mod condition;
pub mod facts;
pub mod model;
pub mod parse;
pub mod redact;
pub mod schedule;
pub mod template;
mod yaml;

pub use model::*;
