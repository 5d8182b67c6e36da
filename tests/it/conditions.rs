//! Every placeholder and condition function, evaluated on real responses.

use waymark::run::{Outcome, StepStatus};

use crate::support::{TestServer, run_yaml};

/// Each line is a condition that must pass on `/json` of the test server; the twin list must
/// fail, so a condition that always passes cannot hide here.
const PASSING: &[&str] = &[
    "[STATUS] == 200",
    "[STATUS] < 300",
    "[STATUS] == any(200, 201)",
    "[RESPONSE_TIME] < 5000",
    "[CONNECTED] == true",
    "[IP] == 127.0.0.1",
    "[IP] == pat(127.0.*)",
    "[BODY].user.id == 7",
    "[BODY].user.name == Ada Lovelace",
    "[BODY].user.name == pat(Ada*)",
    "[BODY].user.name == matches(^Ada [A-Z][a-z]+$)",
    "[BODY].user.roles[1] == dev",
    "[BODY].items[0].sku == A-1",
    "[BODY].user.active == true",
    "[BODY].count > 1",
    "[BODY].price >= 12.5",
    "len([BODY].items) == 2",
    "len([BODY].empty) == 0",
    "len([BODY].user.name) == 12",
    "has([BODY].user.roles) == true",
    "has([BODY].missing) == false",
    "[BODY] == pat(*Lovelace*)",
    "[HEADERS].content-type == application/json",
    "[HEADERS].Content-Type == pat(*json*)",
    "[BODY].user.id != 8",
];

const FAILING: &[&str] = &[
    "[STATUS] == 201",
    "[STATUS] == any(201, 204)",
    "[RESPONSE_TIME] < 0",
    "[IP] == 10.0.0.1",
    "[BODY].user.id == 8",
    "[BODY].user.name == pat(Bob*)",
    "[BODY].user.name == matches(^Bob)",
    "len([BODY].items) == 3",
    "has([BODY].user.roles) == false",
    "[BODY].missing == x",
    "[HEADERS].content-type == text/html",
    "[BODY].count > 2",
];

fn journey(conditions: &[&str]) -> String {
    let mut yaml = String::from("name: conditions\nsteps:\n");
    for (i, c) in conditions.iter().enumerate() {
        yaml += &format!(
            "  - name: c{i}\n    always_run: true\n    http: {{ url: \"{{{{ base }}}}/json\" }}\n    conditions: [{}]\n",
            serde_json::to_string(c).unwrap()
        );
    }
    yaml
}

#[tokio::test]
async fn documented_conditions_pass_on_matching_responses() {
    let srv = TestServer::start().await;
    let r = run_yaml(&journey(PASSING), &srv.base, &[]).await;
    for (s, c) in r.steps.iter().zip(PASSING) {
        assert_eq!(
            s.status,
            StepStatus::Passed,
            "`{c}` should pass: {:#?}",
            s.conditions
        );
    }
    assert_eq!(r.outcome, Outcome::Passed);
}

#[tokio::test]
async fn their_negations_fail_with_the_actual_value() {
    let srv = TestServer::start().await;
    let r = run_yaml(&journey(FAILING), &srv.base, &[]).await;
    for (s, c) in r.steps.iter().zip(FAILING) {
        assert_eq!(
            s.status,
            StepStatus::Failed,
            "`{c}` should fail: {:#?}",
            s.conditions
        );
        let outcome = &s.conditions[0];
        assert_eq!(outcome.expression, *c);
        assert!(!outcome.actual.is_empty(), "`{c}` reports no actual value");
    }
    assert_eq!(r.steps[0].conditions[0].actual, "200");
}
