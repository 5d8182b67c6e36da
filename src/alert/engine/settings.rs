//! What the incident engine is configured with, gathered from `[alerting]` by the config:
//! reopening, flapping, routing, reminders and maintenance windows.

use std::time::Duration;

use serde::Deserialize;

use crate::alert::maintenance::MaintenanceWindow;
use crate::alert::route::Route;

const HOUR: Duration = Duration::from_secs(3600);

/// The engine's knobs. `maintenance` must have been validated (each window parses).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub reopen_within: Duration,
    pub flapping: Flapping,
    pub routes: Vec<Route>,
    /// Every configured channel's name with its reminder interval, if it reminds.
    pub channels: Vec<(String, Option<Duration>)>,
    pub maintenance: Vec<MaintenanceWindow>,
}

/// A journey whose incidents open or resolve more than `changes` times within `window` is
/// flapping: notified once, then quiet until it has settled for a whole `window`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flapping {
    pub changes: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            changes: 6,
            window: HOUR,
        }
    }
}
