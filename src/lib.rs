//! Waymark: synthetic journey monitoring. See ARCHITECTURE.md for the code map.

pub mod demo;
pub mod journey;
pub mod report;
pub mod runner;
pub mod step;
pub mod telemetry;
