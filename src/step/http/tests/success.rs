//! Success paths: bodies (JSON, form, raw), query, headers and propagation, timings.

use super::*;

#[tokio::test]
async fn get_fills_status_headers_body_and_timings() {
    let addr = serve_app().await;
    let a = passed(&step(Method::GET, &format!("http://{addr}/hello"))).await;
    assert_eq!(a.facts.status, Some(200));
    assert_eq!(a.facts.body.as_deref(), Some(&b"hello world"[..]));
    assert_eq!(a.facts.header("X-Test"), Some("yes"));
    assert!(a.facts.headers.iter().all(|(k, _)| *k == k.to_lowercase()));
    assert_eq!(a.facts.ip, Some(addr.ip()));
    assert_eq!(a.facts.connected, Some(true));
    assert_eq!(a.facts.certificate_expiration_ms, None);

    let tm = a.timings;
    assert_eq!(tm.dns, None, "no DNS phase for an IP literal");
    assert_eq!(tm.tls, None, "no TLS phase for plain HTTP");
    let (connect, ttfb, download, total) = (
        tm.connect.unwrap(),
        tm.ttfb.unwrap(),
        tm.download.unwrap(),
        tm.total.unwrap(),
    );
    assert!(connect + ttfb + download <= total, "{tm:?}");
    assert!(total < Duration::from_secs(2), "{tm:?}");
    assert_eq!(a.facts.response_time, Some(total));

    let req = a.request.as_ref().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.url, format!("http://{addr}/hello"));
    assert!(
        req.headers.contains(&("host".into(), addr.to_string())),
        "{:?}",
        req.headers
    );
    let resp = a.response.as_ref().unwrap();
    assert_eq!(
        (
            resp.status,
            resp.protocol.as_str(),
            resp.body_bytes,
            resp.redirects
        ),
        (200, "HTTP/1.1", 11, 0)
    );
}

#[tokio::test]
async fn localhost_goes_through_a_dns_phase() {
    let addr = serve_app().await;
    let a = passed(&step(
        Method::GET,
        &format!("http://localhost:{}/hello", addr.port()),
    ))
    .await;
    assert!(a.timings.dns.is_some(), "{:?}", a.timings);
    assert!(a.facts.ip.unwrap().is_loopback());
}

#[tokio::test]
async fn json_body_is_rendered_and_typed() {
    let mut s = app_step(Method::POST, "/echo").await;
    s.body = Some(HttpBody::Json(JsonTemplate::Object(vec![
        ("name".into(), JsonTemplate::String(t("{{ name }}"))),
        ("n".into(), JsonTemplate::Number(42.into())),
        (
            "tags".into(),
            JsonTemplate::Array(vec![JsonTemplate::Bool(true), JsonTemplate::Null]),
        ),
    ])));
    let a = passed(&s).await;
    let echo = body_json(&a);
    assert_eq!(echo["method"], "POST");
    let sent: Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"name": "waymark", "n": 42, "tags": [true, null]})
    );
    assert_eq!(echo["headers"]["content-type"], "application/json");
    let len = echo["body"].as_str().unwrap().len();
    assert_eq!(echo["headers"]["content-length"], len.to_string());
    assert_eq!(a.request.as_ref().unwrap().body_bytes, len as u64);
}

#[tokio::test]
async fn json_leaf_that_is_one_variable_keeps_its_json_type() {
    let addr = serve_app().await;
    let vars = [
        ("id", json!(42)),
        ("flag", json!(true)),
        ("list", json!([1, 2])),
        ("zip", json!("01234")),
        ("text", json!("hello")),
        ("looks_numeric", json!("12345")),
    ];
    let mut s = step(Method::POST, &format!("http://{addr}/echo"));
    let mut fields: Vec<(String, JsonTemplate)> = vars
        .iter()
        .map(|(k, _)| {
            (
                k.to_string(),
                JsonTemplate::String(t(&format!("{{{{ {k} }}}}"))),
            )
        })
        .collect();
    fields.push(("mixed".into(), JsonTemplate::String(t("{{ id }} "))));
    fields.push(("secret".into(), JsonTemplate::String(t("{{ secret.PIN }}"))));
    s.body = Some(HttpBody::Json(JsonTemplate::Object(fields)));
    let a = attempt(&s, Duration::from_secs(5), &[], &vars).await;
    assert_ok(&a);
    let sent: Value = serde_json::from_str(body_json(&a)["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"id": 42, "flag": true, "list": [1, 2], "zip": "01234", "text": "hello",
               "looks_numeric": "12345", "mixed": "42 ", "secret": "1234"})
    );
}

#[tokio::test]
async fn form_body_is_urlencoded() {
    let mut s = app_step(Method::POST, "/echo").await;
    s.body = Some(HttpBody::Form(vec![
        ("a".into(), t("x y {{ name }}")),
        ("b".into(), t("&=é")),
    ]));
    let echo = echoed(&s).await;
    assert_eq!(echo["body"], "a=x+y+waymark&b=%26%3D%C3%A9");
    assert_eq!(
        echo["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn raw_body_is_sent_as_is_without_implicit_content_type() {
    let mut s = app_step(Method::PUT, "/echo").await;
    s.body = Some(HttpBody::Raw(t("plain {{ name }}\n")));
    let echo = echoed(&s).await;
    assert_eq!(
        method_and_body(&echo),
        (Some("PUT"), Some("plain waymark\n"))
    );
    assert!(echo["headers"].get("content-type").is_none(), "{echo}");
    assert_eq!(echo["headers"]["content-length"], "14");

    s.headers = vec![("Content-Type".into(), t("text/csv"))];
    let echo = body_json(&run(&s).await);
    assert_eq!(echo["headers"]["content-type"], "text/csv");
}

#[tokio::test]
async fn query_pairs_are_appended_and_encoded() {
    let mut s = app_step(Method::GET, "/echo?x=1#fragment").await;
    s.query = vec![
        ("q".into(), t("a b&c=d/é")),
        ("who".into(), t("{{ name }}")),
        ("empty".into(), t("")),
    ];
    let a = passed(&s).await;
    assert_eq!(
        body_json(&a)["uri"],
        "/echo?x=1&q=a+b%26c%3Dd%2F%C3%A9&who=waymark&empty="
    );
    assert!(!a.request.unwrap().url.contains('#'));
}

#[tokio::test]
async fn step_and_propagation_headers_arrive_and_credentials_are_masked() {
    let addr = serve_app().await;
    let mut s = step(Method::GET, &format!("http://{addr}/echo"));
    s.headers = vec![
        ("X-Custom".into(), t("{{ name }}")),
        ("Authorization".into(), t("Bearer {{ secret.TOKEN }}")),
        ("baggage".into(), t("from-step")),
    ];
    let propagation = [TRACEPARENT, ("baggage", "from-runner")];
    let a = run_with(&s, Duration::from_secs(5), &propagation).await;
    assert_ok(&a);
    let headers = &body_json(&a)["headers"];
    assert_eq!(headers["x-custom"], "waymark");
    assert_eq!(headers["authorization"], "Bearer s3cret-token");
    assert_eq!(headers["traceparent"], propagation[0].1);
    assert_eq!(
        headers["baggage"], "from-step",
        "the step's own header wins"
    );
    assert_eq!(
        headers["user-agent"],
        concat!("waymark/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(headers["host"], addr.to_string());

    let summary = &a.request.unwrap().headers;
    assert!(
        summary.contains(&("authorization".into(), "***".into())),
        "{summary:?}"
    );
    assert!(!format!("{summary:?}").contains("s3cret"));

    s.headers = vec![("User-Agent".into(), t("custom-agent/1"))];
    let headers = &body_json(&run(&s).await)["headers"];
    assert_eq!(headers["user-agent"], "custom-agent/1");
}
