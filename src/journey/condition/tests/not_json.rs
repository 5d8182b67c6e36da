//! What a condition says about a path into a body or message that is not JSON.

use super::{body, eval, status};
/// Issue #19: `[BODY].x` on a body that is not JSON said `(missing)`, hiding why.
#[test]
fn body_path_on_a_body_that_is_not_json_says_why() {
    let o = eval("[BODY].status == ok", &body("status: ok"), &[]);
    assert!(!o.passed);
    assert_eq!(
        o.actual,
        "the body is not JSON (line 1, column 1: expected value)"
    );
    let o = eval("[BODY].a == 1", &body("{\"a\": 1,"), &[]);
    assert!(
        o.actual
            .starts_with("the body is not JSON (line 1, column 8: "),
        "{}",
        o.actual
    );
    assert_eq!(
        eval("len([BODY].items) == 1", &body("  "), &[]).actual,
        "the body is empty, not JSON"
    );
    // JSON without the key, and no body at all, stay `(missing)`.
    assert_eq!(eval("[BODY].x == 1", &body("{}"), &[]).actual, "(missing)");
    assert_eq!(eval("[BODY].x == 1", &status(200), &[]).actual, "(missing)");
    // The whole body is text, never a JSON problem.
    assert_eq!(eval("[BODY] == x", &body("nope"), &[]).actual, "nope");
}
