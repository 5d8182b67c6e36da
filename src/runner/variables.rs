//! A run's starting variables: the overrides, then the journey's `variables:` in file order,
//! each template rendered from the ones above it (validation guarantees there are no forward
//! references, so there can be no cycle). A secret a variable uses is registered with the
//! run's redactor as it is rendered, so the variable's value is redacted wherever it goes.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::journey::template::{Redactor, Scope, SecretSource, Vars};
use crate::journey::{Journey, Variable};

/// The variables a run starts with, or the first one that cannot be rendered (a missing
/// secret or environment variable) with the reason.
pub(super) fn initial_vars(
    journey: &Journey,
    overrides: &BTreeMap<String, String>,
    secrets: &dyn SecretSource,
    redactor: &Redactor,
) -> (Vars, Option<String>) {
    let mut vars: Vars = overrides
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    for (name, variable) in &journey.variables {
        if vars.contains_key(name) {
            continue; // an override wins, and is never rendered over
        }
        let value = match variable {
            Variable::Value(v) => v.clone(),
            Variable::Template(t) => {
                let scope = Scope {
                    vars: &vars,
                    secrets,
                    redactor,
                    now: Utc::now(),
                };
                match scope.render_json_leaf(t) {
                    Ok(v) => v,
                    Err(e) => return (vars, Some(format!("variable `{name}`: {e}"))),
                }
            }
        };
        vars.insert(name.clone(), value);
    }
    (vars, None)
}
