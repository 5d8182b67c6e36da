//! The notification retry policy (`[alerting.retry]`): how long to wait between attempts.

use std::time::Duration;

use serde::Deserialize;

const MINUTE: Duration = Duration::from_secs(60);

/// Backoff between delivery attempts: `initial`, doubling up to `max`, with jitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_secs(1),
            max: 5 * MINUTE,
        }
    }
}
