//! Waymark: synthetic journey monitoring. See ARCHITECTURE.md for the code map.

// Clock reads are refused only in the pure modules (clippy.toml).
#![allow(clippy::disallowed_methods)]

pub mod alert;
pub mod api;
pub mod app;
pub mod auth;
pub mod baseline;
pub mod channels;
pub mod config;
pub mod demo;
pub mod digest;
pub mod format;
pub mod journey;
pub mod links;
pub mod report;
pub mod run;
pub mod runner;
pub mod scheduler;
pub mod service;
pub mod step;
pub mod store;
pub mod svg;
pub mod telemetry;
pub mod templates;
pub mod words;
