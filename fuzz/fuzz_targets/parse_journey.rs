//! Any bytes given to the journey parser yield a journey or diagnostics, never a panic.
//! The condition and template parsers are fed the same input, since journey files embed them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use waymark::journey::condition::Condition;
use waymark::journey::parse::{ParseOptions, parse_journey};
use waymark::journey::template::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostics) = parse_journey(text, Path::new("fuzz.yaml"), &ParseOptions::default()) {
        assert!(!diagnostics.is_empty(), "a rejected journey must say why");
    }
    let _ = Condition::parse(text);
    let _ = Template::parse(text);
});
