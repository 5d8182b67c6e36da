//! The biweekly feedback digest: per owner, how their journeys behaved over a period and what
//! changed since the previous one — the agenda of a team's feedback ritual.
//!
//! - [`model`]: the figures (plain data; the API's JSON, stored with each digest).
//! - [`compute`](mod@compute): the figures from the store (rollups, per-step aggregates, failure groups,
//!   incidents); time comes in as arguments.
//! - [`render`]: the email: subject, plain text, HTML with inline CSS and `cid:` charts.
//! - [`chart`]: a journey's latency over the period as SVG, and as PNG for email (resvg).
//! - [`config`]: the `[digest]` section and the period arithmetic.
//! - [`deliver`]: one digest to one channel (email, Slack summary, log).
//! - [`cycle`]: the service's duty: make each period's digests once, deliver, resume.

#![deny(clippy::disallowed_methods)]

pub mod chart;
pub mod compute;
pub mod config;
pub mod cycle;
pub mod deliver;
pub mod model;
pub mod render;

pub use compute::compute;
pub use config::DigestConfig;
pub use cycle::DigestCycle;
pub use model::Digest;
