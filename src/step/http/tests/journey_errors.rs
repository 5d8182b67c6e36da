//! Journey errors: problems of the step itself, not of the target.

use super::*;

#[tokio::test]
async fn template_problems_fail_before_any_traffic() {
    let a = run(&step(Method::GET, "http://127.0.0.1:1/{{ undefined }}")).await;
    assert_failed_with(&a, FailureClass::Template, "undefined");
    assert_eq!(a.facts.connected, None);

    assert_failed_with(
        &run(&step(Method::GET, "{{ name }}/path")).await,
        FailureClass::Template,
        "`waymark/path` is not a valid URL",
    );

    assert_failed_with(
        &run(&step(Method::GET, "ftp://127.0.0.1/")).await,
        FailureClass::Template,
        "scheme `ftp`",
    );

    let mut s = step(Method::GET, "http://127.0.0.1:1/");
    s.headers = vec![("X-Bad".into(), t("line\nbreak"))];
    assert_failed(&run(&s).await, FailureClass::Template);
}
