//! Waymark: synthetic journey monitoring. See ARCHITECTURE.md for the code map.

pub mod journey;
pub mod step;
pub mod runner;
pub mod report;
pub mod demo;
