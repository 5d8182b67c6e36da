//! Any bytes given to the condition language parse or are rejected with a position inside the
//! condition, never a panic; a condition that parses evaluates against any response body and
//! WebSocket message (also arbitrary bytes, deep JSON included) without panicking.
//!
//! Input: the first line is the condition, the rest is the body and the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark::journey::condition::{Condition, Placeholder};
use waymark::journey::facts::Facts;
use waymark::journey::template::{EnvSecrets, Redactor, Scope, Vars};

fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let _ = Placeholder::parse(text);
    let condition = match Condition::parse(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(e.offset <= text.len(), "error offset past the end: {e:?}");
            return;
        }
    };
    let mut facts = Facts::default();
    facts.status = Some(200);
    facts.body = Some(rest.to_vec());
    facts.message = Some(String::from_utf8_lossy(rest).into_owned());
    let vars: Vars = [("v".to_string(), serde_json::Value::from("x"))].into();
    let secrets = EnvSecrets::default();
    let redactor = Redactor::default();
    let scope = Scope {
        vars: &vars,
        secrets: &secrets,
        redactor: &redactor,
        now: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    let outcome = condition.evaluate(&facts, &scope);
    assert_eq!(outcome.expression, text);
});
