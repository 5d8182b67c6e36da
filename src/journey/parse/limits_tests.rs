//! Regression tests for issue #19: bad input gets a positioned error, never a crash or a
//! stall (file size, step count, nesting depth, invalid UTF-8, duplicate names at scale).

use super::*;
use crate::journey::Variable;

fn parse_with(src: &str, opts: &ParseOptions) -> Result<Journey, Vec<Diagnostic>> {
    parse_journey(src, Path::new("j.yaml"), opts)
}

fn only_error(result: Result<Journey, Vec<Diagnostic>>) -> Diagnostic {
    let d = result.expect_err("the journey must be rejected");
    assert_eq!(d.len(), 1, "{d:#?}");
    d.into_iter().next().unwrap()
}

/// A journey whose one step sends `json:` nested `depth` lists deep, in block style.
fn block_nested_body(depth: usize) -> String {
    let mut src = String::from(
        "name: deep\nsteps:\n  - name: a\n    http:\n      method: POST\n      url: http://127.0.0.1:9/\n      json:\n",
    );
    src.push_str("        ");
    src.push_str(&"- ".repeat(depth));
    src.push_str("1\n");
    src
}

fn steps_file(n: usize) -> String {
    let mut src = String::from("name: big\nsteps:\n");
    for i in 0..n {
        src.push_str(&format!(
            "  - name: s{i}\n    http:\n      url: http://127.0.0.1:9/\n"
        ));
    }
    src
}

#[test]
fn nested_body_at_the_depth_limit_parses() {
    // The journey, `steps`, the step and `http` are 4 levels; the body may use the rest.
    let src = block_nested_body(yaml::MAX_DEPTH - 4);
    parse_with(&src, &ParseOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
}

#[test]
fn nested_body_one_level_over_the_limit_is_a_positioned_error() {
    let src = block_nested_body(yaml::MAX_DEPTH - 3);
    let d = only_error(parse_with(&src, &ParseOptions::default()));
    assert!(d.message.contains("nest deeper than 64"), "{d}");
    // The 65th list opens at the 61st `- ` of line 8 (8 spaces of indent first).
    assert_eq!((d.line, d.col), (8, 9 + 2 * 60), "{d}");
}

#[test]
fn a_3000_deep_body_is_rejected_instead_of_crashing_a_service_later() {
    let d = only_error(parse_with(
        &block_nested_body(3000),
        &ParseOptions::default(),
    ));
    assert!(d.message.contains("nest deeper"), "{d}");
}

#[test]
fn yaml_nested_100000_deep_is_an_error_not_a_stack_overflow() {
    for src in [
        format!("{}1\n", "- ".repeat(100_000)),
        format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{}1{}\n", "{a: ".repeat(100_000), "}".repeat(100_000)),
        block_nested_body(100_000),
    ] {
        let d = only_error(parse_with(&src, &ParseOptions::default()));
        assert!(d.message.contains("YAML syntax error"), "{d}");
    }
}

#[test]
fn file_over_the_size_cap_is_rejected_where_it_goes_over() {
    let src = steps_file(3);
    let opts = ParseOptions {
        max_file_bytes: 40,
        ..ParseOptions::default()
    };
    let d = only_error(parse_with(&src, &opts));
    // Bytes 0..40 are "name: big\n" (10), "steps:\n" (7), "  - name: s0\n" (13) and
    // "    http:\n" (10): byte 40 starts line 5.
    assert_eq!((d.line, d.col), (5, 1), "{d}");
    assert!(d.message.contains("larger than 40 bytes"), "{d}");
    assert!(parse_with(&src, &ParseOptions::default()).is_ok());
    assert!(
        ParseOptions::default()
            .max_file_bytes
            .eq(&(4 * 1024 * 1024))
    );
}

#[test]
fn load_file_reads_no_more_than_the_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, "name: x\n".repeat(1000)).unwrap();
    let opts = ParseOptions {
        max_file_bytes: 1024,
        ..ParseOptions::default()
    };
    let d = load_file(&path, &opts).unwrap_err();
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("larger than 1 KiB"), "{}", d[0]);
    assert_eq!((d[0].line, d[0].col), (129, 1), "{}", d[0]);
}

#[test]
fn steps_over_the_cap_are_rejected_at_the_first_extra_step() {
    let opts = ParseOptions {
        max_steps: 3,
        ..ParseOptions::default()
    };
    assert!(parse_with(&steps_file(3), &opts).is_ok());
    let d = only_error(parse_with(&steps_file(5), &opts));
    assert_eq!((d.line, d.col), (12, 5), "{d}");
    assert!(d.message.contains("at most 3, this one has 5"), "{d}");
    assert_eq!(ParseOptions::default().max_steps, 1000);
    let d = only_error(parse_with(&steps_file(1001), &ParseOptions::default()));
    assert!(d.message.contains("at most 1000"), "{d}");
}

#[test]
fn duplicate_step_names_are_found_among_many_steps() {
    let mut src = steps_file(5000);
    src.push_str("  - name: s17\n    wait: 1s\n");
    let opts = ParseOptions {
        max_steps: 10_000,
        ..ParseOptions::default()
    };
    let d = only_error(parse_with(&src, &opts));
    assert_eq!(d.message, "duplicate step name `s17`");
    assert_eq!(d.line, 3 + 5000 * 3);
}

#[test]
fn non_utf8_file_reports_the_first_invalid_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    let mut bytes = b"name: caf\xc3\xa9\nsteps:\n  - name: \xe9t\xe9\n".to_vec();
    bytes.extend_from_slice(b"    wait: 1s\n");
    std::fs::write(&path, &bytes).unwrap();
    let d = load_file(&path, &ParseOptions::default()).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].col), (3, 11), "{}", d[0]);
    assert!(d[0].message.contains("not valid UTF-8"), "{}", d[0]);
    assert!(d[0].message.contains("0xe9"), "{}", d[0]);
}

/// Issue #19: `{{ }}` inside `variables:` was sent literally without a word.
#[test]
fn variables_may_use_the_variables_above_them_only() {
    let src = "name: j\nvariables:\n  host: 127.0.0.1\n  base: \"http://{{ host }}:9\"\n  n: 3\n  same: \"{{ n }}\"\nsteps:\n  - name: s\n    http: { url: \"{{ base }}/x\" }\n";
    let j = parse_with(src, &ParseOptions::default()).unwrap_or_else(|d| panic!("{d:#?}"));
    let names: Vec<&str> = j.variables.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["host", "base", "n", "same"], "file order is kept");
    assert!(
        matches!(&j.variables[1].1, Variable::Template(t) if t.to_string() == "http://{{ host }}:9")
    );
    assert_eq!(j.variables[2].1, Variable::Value(serde_json::json!(3)));

    let later = "name: j\nvariables:\n  base: \"http://{{ host }}:9\"\n  host: 127.0.0.1\nsteps:\n  - name: s\n    wait: 1s\n";
    let d = only_error(parse_with(later, &ParseOptions::default()));
    assert_eq!((d.line, d.col), (3, 20), "{d}");
    assert!(d.message.contains("`host` is defined below it"), "{d}");

    let itself = "name: j\nvariables:\n  a: \"x{{ a }}\"\nsteps:\n  - name: s\n    wait: 1s\n";
    let d = only_error(parse_with(itself, &ParseOptions::default()));
    assert!(
        d.message
            .contains("`a` is defined below it (or is `a` itself)"),
        "{d}"
    );

    let undefined = "name: j\nvariables:\n  a: \"{{ nope }}\"\nsteps:\n  - name: s\n    wait: 1s\n";
    let d = only_error(parse_with(undefined, &ParseOptions::default()));
    assert!(d.message.contains("variable `nope` is not defined"), "{d}");

    let bad = "name: j\nvariables:\n  a: \"{{ x\"\nsteps:\n  - name: s\n    wait: 1s\n";
    let d = only_error(parse_with(bad, &ParseOptions::default()));
    assert!(d.message.contains("unclosed"), "{d}");

    // An override may be used above the variables, like any `--var`.
    let opts = ParseOptions {
        extra_vars: ["env_host".to_string()].into(),
        ..ParseOptions::default()
    };
    let src = "name: j\nvariables:\n  base: \"http://{{ env_host }}\"\nsteps:\n  - name: s\n    wait: 1s\n";
    assert!(parse_with(src, &opts).is_ok());
}
