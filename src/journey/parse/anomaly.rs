//! The `anomaly:` block of a journey or a step: a sensitivity word, or a mapping of settings.

use std::time::Duration;

use super::checker::{Checker, Fields};
use crate::journey::model::{AnomalySettings, Direction, Seasonality, Sensitivity};
use crate::journey::yaml::{Node, Value};

const KEYS: &[&str] = &[
    "sensitivity",
    "seasonality",
    "direction",
    "min_change",
    "min_delta",
];

/// `anomaly: high` or `anomaly: { sensitivity: low, seasonality: daily, direction: both,
/// min_change: 30%, min_delta: 20ms }`.
pub(super) fn anomaly(c: &mut Checker, n: &Node, what: &str) -> Option<AnomalySettings> {
    // A word, or `false`: what a YAML 1.1 reader makes of a bare `off`.
    if let Value::Str(_) | Value::Bool(false) = n.value {
        return Some(AnomalySettings {
            sensitivity: Some(sensitivity(c, n, what)?),
            ..AnomalySettings::default()
        });
    }
    let f = c.fields(n, what, KEYS)?;
    // A bad value is reported by the checker, which fails the journey; its field stays unset.
    Some(AnomalySettings {
        sensitivity: field(c, &f, what, "sensitivity", sensitivity),
        seasonality: field(c, &f, what, "seasonality", seasonality),
        direction: field(c, &f, what, "direction", direction),
        min_change: field(c, &f, what, "min_change", fraction),
        min_delta: field(c, &f, what, "min_delta", |c, v, what| {
            c.duration(v, what, Duration::ZERO, Duration::from_secs(3600))
        }),
    })
}

/// The `key` setting read by `parse`, named `` `key` of {what} `` in its problems: each key
/// is spelled once, so the one looked up and the one reported cannot drift apart.
fn field<T>(
    c: &mut Checker,
    f: &Fields<'_>,
    what: &str,
    key: &str,
    parse: impl FnOnce(&mut Checker, &Node, &str) -> Option<T>,
) -> Option<T> {
    f.get(key)
        .and_then(|v| parse(c, v, &format!("`{key}` of {what}")))
}

fn word<T: Copy>(c: &mut Checker, n: &Node, what: &str, words: &[(&str, T)]) -> Option<T> {
    let found = match &n.value {
        Value::Str(s) => words.iter().find(|(w, _)| *w == s.trim()).map(|(_, t)| *t),
        // YAML 1.1 readers turn a bare `off` into false; accept it as the word.
        Value::Bool(false) => words.iter().find(|(w, _)| *w == "off").map(|(_, t)| *t),
        _ => None,
    };
    if found.is_none() {
        let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
        c.err(n.pos, format!("{what} must be one of {}", names.join(", ")));
    }
    found
}

fn sensitivity(c: &mut Checker, n: &Node, what: &str) -> Option<Sensitivity> {
    use Sensitivity::*;
    word(
        c,
        n,
        what,
        &[
            ("off", Off),
            ("low", Low),
            ("medium", Medium),
            ("high", High),
        ],
    )
}

fn seasonality(c: &mut Checker, n: &Node, what: &str) -> Option<Seasonality> {
    use Seasonality::*;
    word(
        c,
        n,
        what,
        &[("off", Off), ("daily", Daily), ("weekly", Weekly)],
    )
}

fn direction(c: &mut Checker, n: &Node, what: &str) -> Option<Direction> {
    use Direction::*;
    word(c, n, what, &[("up", Up), ("down", Down), ("both", Both)])
}

/// `30%`, `0.3` or `30 %`: a non-negative fraction up to 10 (1,000 %).
fn fraction(c: &mut Checker, n: &Node, what: &str) -> Option<f64> {
    let value = match &n.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => {
            let s = s.trim();
            match s.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
                None => s.parse::<f64>().ok(),
            }
        }
        _ => None,
    };
    match value {
        Some(v) if (0.0..=10.0).contains(&v) => Some(v),
        _ => {
            c.err(
                n.pos,
                format!("{what} must be a fraction such as `0.2` or `20%`"),
            );
            None
        }
    }
}
