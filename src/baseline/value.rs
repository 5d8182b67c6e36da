//! What a series' values are, and the scale its detector models them on.
//!
//! Latencies and counts are modelled on a logarithmic scale, where a slowdown from 10 to 15 ms
//! weighs like one from 100 to 150 ms and noise is close to symmetric; `ln(1 + v)` keeps the
//! zeros of a mostly idle counter finite. Gauges (temperatures, deltas, anything that can go
//! below zero) have no natural zero and are modelled as they are.

use serde::{Deserialize, Serialize};

/// Latencies below this (ms) count as this on the log scale: a clock's resolution, not a speed.
const LATENCY_FLOOR_MS: f64 = 1e-3;

crate::words::words! {
    /// The kind of quantity a series measures.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ValueKind {
        /// A duration in milliseconds (never negative).
        #[default]
        Latency,
        /// Events per interval (never negative, often zero).
        Count,
        /// Any real number.
        Gauge,
    }
}

impl ValueKind {
    /// The value on the modelling scale; `None` for a value the kind cannot hold.
    pub fn transform(self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        match self {
            ValueKind::Latency if value >= 0.0 => Some(value.max(LATENCY_FLOOR_MS).ln()),
            ValueKind::Count if value >= 0.0 => Some(value.ln_1p()),
            ValueKind::Gauge => Some(value),
            ValueKind::Latency | ValueKind::Count => None,
        }
    }

    /// A modelled value back on the series' own scale.
    pub fn inverse(self, modelled: f64) -> f64 {
        match self {
            ValueKind::Latency => modelled.exp(),
            ValueKind::Count => modelled.exp_m1(),
            ValueKind::Gauge => modelled,
        }
    }

    /// Whether a change is measured relative to the level (latency, count) or only against
    /// the noise and an absolute minimum (gauge: 20 °C is not twice 10 °C).
    pub fn is_ratio_scale(self) -> bool {
        !matches!(self, ValueKind::Gauge)
    }

    /// The kind a file of values fits: a gauge when any value is negative, else a latency.
    pub fn guess(values: impl IntoIterator<Item = f64>) -> ValueKind {
        if values.into_iter().any(|v| v < 0.0) {
            ValueKind::Gauge
        } else {
            ValueKind::Latency
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_round_trip_and_refuse_what_a_kind_cannot_hold() {
        for kind in [ValueKind::Latency, ValueKind::Count, ValueKind::Gauge] {
            for v in [0.5, 3.0, 250.0, 1e5] {
                let back = kind.inverse(kind.transform(v).unwrap());
                assert!(
                    (back - v).abs() < 1e-9 * v.max(1.0),
                    "{kind:?} {v} -> {back}"
                );
            }
            assert_eq!(kind.transform(f64::NAN), None);
        }
        assert_eq!(ValueKind::Latency.transform(-1.0), None);
        assert_eq!(ValueKind::Count.transform(-1.0), None);
        assert_eq!(ValueKind::Gauge.transform(-1.5), Some(-1.5));
        assert_eq!(ValueKind::Count.transform(0.0), Some(0.0));
        // A zero latency is finite on the log scale.
        assert!(ValueKind::Latency.transform(0.0).unwrap().is_finite());
        assert_eq!(ValueKind::guess([1.0, -0.1]), ValueKind::Gauge);
        assert_eq!(ValueKind::guess([1.0, 0.0]), ValueKind::Latency);
    }
}
