//! Redirects: following, method changes, loops, credentials.

use super::*;

#[tokio::test]
async fn follows_relative_and_absolute_redirects() {
    let addr = serve_app().await;
    let a = passed(&step(Method::GET, &format!("http://{addr}/r/rel"))).await;
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(body_json(&a)["uri"], "/echo");
    let resp = a.response.as_ref().unwrap();
    assert_eq!(resp.redirects, 2);
    assert_eq!(resp.url, format!("http://{addr}/echo"));
    assert_eq!(
        a.request.as_ref().unwrap().url,
        format!("http://{addr}/echo")
    );
    // Three hops, three connections: each phase adds up, and still fits in the total.
    let tm = a.timings;
    assert!(tm.connect.unwrap() + tm.ttfb.unwrap() + tm.download.unwrap() <= tm.total.unwrap());
}

#[tokio::test]
async fn see_other_and_found_turn_post_into_get_without_body() {
    let addr = serve_app().await;
    for path in ["see-other", "found"] {
        let mut s = step(Method::POST, &format!("http://{addr}/{path}"));
        s.body = Some(HttpBody::Json(JsonTemplate::Object(vec![(
            "a".into(),
            JsonTemplate::Bool(true),
        )])));
        let a = passed(&s).await;
        let echo = body_json(&a);
        assert_eq!(method_and_body(&echo), (Some("GET"), Some("")), "{path}");
        assert!(
            echo["headers"].get("content-type").is_none(),
            "{path}: {echo}"
        );
        assert_eq!(a.request.unwrap().method, "GET");
    }
}

#[tokio::test]
async fn temporary_redirect_keeps_method_and_body() {
    let mut s = app_step(Method::POST, "/temporary").await;
    s.body = Some(HttpBody::Raw(t("payload")));
    let echo = echoed(&s).await;
    assert_eq!(method_and_body(&echo), (Some("POST"), Some("payload")));
}

#[tokio::test]
async fn redirect_loop_fails_with_too_many_redirects() {
    let mut s = app_step(Method::GET, "/loop").await;
    s.max_redirects = 3;
    let a = run(&s).await;
    assert_failed_with(&a, FailureClass::TooManyRedirects, "more than 3 redirects");
    assert_eq!(a.response.unwrap().redirects, 3);
}

#[tokio::test]
async fn redirects_are_the_result_when_not_followed() {
    let mut s = app_step(Method::GET, "/r/rel").await;
    s.follow_redirects = false;
    let a = passed(&s).await;
    assert_eq!(a.facts.status, Some(302));
    assert_eq!(a.facts.header("location"), Some("/r/abs"));
    assert_eq!(a.response.unwrap().redirects, 0);
}

#[tokio::test]
async fn credentials_are_dropped_only_when_the_redirect_changes_host() {
    let addr = serve_app().await;
    let with_credentials = |path: &str| {
        let mut s = step(Method::GET, &format!("http://{addr}/{path}"));
        s.headers = vec![
            ("Authorization".into(), t("Bearer x")),
            ("Cookie".into(), t("sid=1")),
            ("X-Other".into(), t("kept")),
        ];
        s
    };
    // 127.0.0.1 → localhost: another host, same server.
    let a = passed(&with_credentials("to-localhost")).await;
    let headers = &body_json(&a)["headers"];
    assert!(
        headers.get("authorization").is_none() && headers.get("cookie").is_none(),
        "{headers}"
    );
    assert_eq!(headers["x-other"], "kept");
    assert_eq!(headers["host"], format!("localhost:{}", addr.port()));

    let a = run(&with_credentials("r/rel")).await;
    let headers = &body_json(&a)["headers"];
    assert_eq!(
        (
            headers["authorization"].as_str(),
            headers["cookie"].as_str()
        ),
        (Some("Bearer x"), Some("sid=1"))
    );
}
