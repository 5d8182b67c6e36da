//! What a run keeps from the `Redactor`'s sight and what it hides: the journey's secrets are
//! registered before anything runs, what a sensitive step (or a credential header) yields
//! before its conditions are judged, and the finished result passes through it whole.

use crate::journey::condition::Placeholder;
use crate::journey::redact::is_credential_header;
use crate::journey::template::{Redactor, Ref, SecretSource, value_text};
use crate::journey::{Journey, Step};
use crate::step::Attempt;

use super::RunResult;

/// Registers every secret the journey refers to before anything runs, so that text seen
/// before a secret is rendered (a target that knows it, a condition cut short) is redacted
/// too. A secret that is not set is left for the step that needs it to report.
pub(super) fn register_secrets(journey: &Journey, secrets: &dyn SecretSource, redactor: &Redactor) {
    let templates = journey.steps.iter().flat_map(|s| {
        s.templates()
            .into_iter()
            .chain(s.degraded_when.iter().flat_map(|c| c.templates()))
    });
    for t in templates {
        for r in t.refs() {
            if let Ref::Secret(name) = r
                && let Some(value) = secrets.secret(name)
            {
                redactor.register(&value);
            }
        }
    }
}

/// Registers, before conditions are judged (their actual values are cut, and a cut secret
/// could no longer be found), what this attempt will extract that must never be shown: every
/// value of a `sensitive` step, and any value taken from a credential header.
pub(super) fn register_extracted(step: &Step, attempt: &Attempt, redactor: &Redactor) {
    if step.sensitive {
        for (_, value) in &attempt.extracted {
            redactor.register(&value_text(value));
        }
    }
    for (_, placeholder) in &step.extract {
        let credential = matches!(placeholder, Placeholder::Header(h) if is_credential_header(h));
        if (step.sensitive || credential)
            && let Some(value) = placeholder.resolve(&attempt.facts)
        {
            redactor.register(&value_text(&value));
        }
    }
}

/// Passes every string of the result through the redactor.
pub(super) fn redact(result: RunResult, redactor: &Redactor) -> RunResult {
    if redactor.is_empty() {
        return result;
    }
    fn walk(v: &mut serde_json::Value, r: &Redactor) {
        match v {
            serde_json::Value::String(s) => *s = r.redact(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, r)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|i| walk(i, r)),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&result).expect("RunResult serialises");
    walk(&mut value, redactor);
    serde_json::from_value(value).expect("redaction keeps the shape of RunResult")
}
