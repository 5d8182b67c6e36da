//! Journey errors: problems of the step itself, not of the target.

use super::*;

#[tokio::test]
async fn template_problems_fail_before_any_traffic() {
    let a = run(&step(Method::GET, "http://127.0.0.1:1/{{ undefined }}")).await;
    let msg = assert_failed(&a, FailureClass::Template);
    assert!(msg.contains("undefined"), "{msg}");
    assert_eq!(a.facts.connected, None);

    let msg = assert_failed(
        &run(&step(Method::GET, "{{ name }}/path")).await,
        FailureClass::Template,
    )
    .to_string();
    assert!(msg.contains("`waymark/path` is not a valid URL"), "{msg}");

    let msg = assert_failed(
        &run(&step(Method::GET, "ftp://127.0.0.1/")).await,
        FailureClass::Template,
    )
    .to_string();
    assert!(msg.contains("scheme `ftp`"), "{msg}");

    let mut s = step(Method::GET, "http://127.0.0.1:1/");
    s.headers = vec![("X-Bad".into(), t("line\nbreak"))];
    assert_failed(&run(&s).await, FailureClass::Template);
}
