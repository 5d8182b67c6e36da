//! The service's state and duties, each usable on its own: the catalog of journeys and its
//! reloader, the run sink, the metrics, the analysis task (baselines, then incidents), the
//! run feed, the outbox, the command relay, retention and the cluster (beats, the leader
//! lease, claims). `crate::app` puts them together as `waymark serve`.

pub mod analysis;
pub mod baselines;
pub mod catalog;
pub mod cluster;
pub mod commands;
pub mod feed;
pub mod metrics;
pub mod outbox;
pub mod reload;
pub mod retention;
mod sink;

pub use analysis::ShownChanged;
pub use reload::Reloader;
pub use sink::StoreSink;

#[cfg(test)]
mod tests;
