//! The journey's own keys, besides its steps: schedule, ownership and presentation, alert
//! rules, variables' defaults, and where it runs from.

use std::time::Duration;

use std::collections::BTreeSet;

use super::checker::{Checker, valid_var_name};
use crate::journey::model::{AlertRules, Schedule, Variable};
use crate::journey::schedule::parse_cron;
use crate::journey::template::{Ref, Template};
use crate::journey::yaml::{Node, Value};

/// `variables:` in file order. A default keeps its YAML type (`n: 3` is the number 3); a
/// string with `{{ }}` is a template over the variables above it and `defined` (overrides).
/// Every name is added to `defined`.
pub(super) fn variables(
    c: &mut Checker,
    n: &Node,
    defined: &mut BTreeSet<String>,
) -> Vec<(String, Variable)> {
    let entries = c.string_map(n, "`variables`");
    let all: BTreeSet<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut out = Vec::new();
    for (k, v, kpos) in &entries {
        if !valid_var_name(k) {
            c.err(*kpos, format!("`{k}` is not a valid variable name (letters, digits, `_`, `-`; not starting with a digit)"));
        }
        let what = format!("variable `{k}`");
        let value = match &v.value {
            Value::Str(s) if s.contains("{{") => {
                let Ok(t) = Template::parse(s) else {
                    // Reported with its position by the checker.
                    let _ = c.template(v, &what, defined);
                    continue;
                };
                for r in t.refs() {
                    if let Ref::Var(name) = r
                        && !defined.contains(name)
                        && all.contains(name.as_str())
                    {
                        let at = s.find(name.as_str()).map_or(v.pos, |o| v.pos_at(o));
                        c.err(at, format!("in {what}: `{name}` is defined below it (or is `{k}` itself); a variable can only use the variables above it"));
                    }
                }
                let unknown: BTreeSet<String> = defined
                    .iter()
                    .cloned()
                    .chain(all.iter().map(|s| s.to_string()))
                    .collect();
                c.check_vars(v, &t, &what, &unknown);
                Some(Variable::Template(t))
            }
            _ => variable_value(c, v, k).map(Variable::Value),
        };
        if let Some(value) = value {
            defined.insert(k.clone());
            out.push((k.clone(), value));
        }
    }
    out
}

/// A variable's default keeps its YAML type: `n: 3` is the number 3, `on: true` a boolean.
fn variable_value(c: &mut Checker, n: &Node, name: &str) -> Option<serde_json::Value> {
    Some(match &n.value {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        _ => serde_json::Value::String(c.text(n, &format!("variable `{name}`"))?),
    })
}

pub(super) fn runbook(c: &mut Checker, n: &Node) -> Option<String> {
    let text = c.text(n, "`runbook`")?;
    match url::Url::parse(&text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(text),
        _ => {
            c.err(
                n.pos,
                format!("`runbook` must be an http(s) URL, found `{text}`"),
            );
            None
        }
    }
}

/// `tags: [a, b]`, `locations: [eu-west, us-east]`: a list of non-empty texts (`one` names
/// an item in messages).
pub(super) fn texts(c: &mut Checker, n: &Node, key: &str, one: &str) -> Vec<String> {
    let Some(items) = c.list(n, &format!("`{key}`")) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|t| c.non_empty_text(t, one))
        .collect()
}

/// `slo: 99.5%` or `slo: 99.5`: a percentage in (0, 100].
pub(super) fn slo(c: &mut Checker, n: &Node) -> Option<f64> {
    let value = match &n.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v > 0.0 && v <= 100.0 => Some(v),
        _ => {
            c.err(
                n.pos,
                "`slo` must be a percentage between 0 and 100, e.g. `99.5%`",
            );
            None
        }
    }
}

pub(super) fn schedule(c: &mut Checker, n: &Node) -> Option<Schedule> {
    let f = c.fields(n, "`schedule`", &["every", "cron", "timezone"])?;
    match (f.get("every"), f.get("cron")) {
        (Some(every), None) => {
            if let Some(pos) = f.key_pos("timezone") {
                c.err(pos, "`timezone` only applies to `cron` schedules");
            }
            c.duration(
                every,
                "`every`",
                Duration::from_secs(1),
                Duration::from_secs(7 * 24 * 3600),
            )
            .map(Schedule::Every)
        }
        (None, Some(cron)) => {
            let expr = c.text(cron, "`cron`")?;
            let tz = f.get("timezone").and_then(|t| c.text(t, "`timezone`"));
            match parse_cron(&expr, tz.as_deref()) {
                Ok(s) => Some(Schedule::Cron(Box::new(s))),
                Err(e) => {
                    let pos = if e.is_timezone() {
                        f.get("timezone").unwrap_or(cron).pos
                    } else {
                        cron.pos
                    };
                    c.err(pos, e.to_string());
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            c.err(n.pos, "`schedule` takes either `every` or `cron`, not both");
            None
        }
        (None, None) => {
            c.err(
                n.pos,
                "`schedule` needs `every: <duration>` or `cron: \"<expression>\"`",
            );
            None
        }
    }
}

/// `alert: { failure_after: 3, resolve_after: 2, locations: 2 }`.
pub(super) fn alert_rules(c: &mut Checker, n: &Node) -> Option<AlertRules> {
    let f = c.fields(
        n,
        "`alert`",
        &["failure_after", "resolve_after", "locations"],
    )?;
    let mut rules = AlertRules::default();
    let mut ok = true;
    for (key, field) in [
        ("failure_after", &mut rules.failure_after),
        ("resolve_after", &mut rules.resolve_after),
        ("locations", &mut rules.locations),
    ] {
        if let Some(v) = f.get(key) {
            match c.uint(v, &format!("`{key}` of `alert`"), 100) {
                Some(0) => {
                    c.err(v.pos, format!("`{key}` of `alert` must be at least 1"));
                    ok = false;
                }
                Some(x) => *field = x as u32,
                None => ok = false,
            }
        }
    }
    ok.then_some(rules)
}
