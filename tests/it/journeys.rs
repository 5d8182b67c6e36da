//! Journeys run end to end against real loopback servers: chains, retries, cleanup,
//! redirects, timeouts, size caps, refused connections.

use std::time::{Duration, Instant};

use waymark::run::{Outcome, StepStatus};
use waymark::step::FailureClass;

use crate::support::{TestServer, run_yaml};

/// The shipped example journey, unchanged, against the demo shop: six steps, five of which
/// use values extracted by earlier ones.
#[tokio::test]
async fn shop_checkout_example_chains_extracted_values() {
    let shop = waymark::demo::DemoTarget::start(0, &Default::default())
        .await
        .unwrap();
    let yaml = std::fs::read_to_string("journeys/shop-checkout.yaml").unwrap();
    let r = run_yaml(
        &yaml,
        &shop.base_url(),
        &[("SHOP_PASSWORD", waymark::demo::DEMO_PASSWORD)],
    )
    .await;
    let summary: Vec<_> = r
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.failure.clone()))
        .collect();
    assert_eq!(r.outcome, Outcome::Passed, "{summary:#?}");
    assert_eq!(r.steps.len(), 6);
    assert_eq!(r.steps[0].extracted, vec!["token"]);
    assert_eq!(r.steps[3].extracted, vec!["order_path"]);
    let read_back = &r.steps[4];
    let url = &read_back.request.as_ref().unwrap().url;
    assert!(url.contains("/api/orders/"), "{url}");
    // Cleanup ran and the shop really deleted the order.
    assert_eq!(r.steps[5].status, StepStatus::Passed);
    assert_eq!(r.steps[5].response.as_ref().unwrap().status, 204);
}

#[tokio::test]
async fn wrong_secret_fails_at_login_and_skips_the_rest() {
    let shop = waymark::demo::DemoTarget::start(0, &Default::default())
        .await
        .unwrap();
    let yaml = std::fs::read_to_string("journeys/shop-checkout.yaml").unwrap();
    let r = run_yaml(
        &yaml,
        &shop.base_url(),
        &[("SHOP_PASSWORD", "wrong-password-123")],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed);
    let login = &r.steps[0];
    assert_eq!(login.status, StepStatus::Failed);
    assert_eq!(
        login.failure.as_ref().unwrap().class,
        FailureClass::HttpStatus
    );
    let statuses: Vec<_> = r.steps.iter().map(|s| s.status).collect();
    assert_eq!(&statuses[1..5], &[StepStatus::Skipped; 4]);
    // The cleanup step needs `order_path`, which was never extracted: skipped, with a reason.
    assert_eq!(statuses[5], StepStatus::Skipped);
    assert!(
        r.steps[5]
            .skip_reason
            .as_ref()
            .unwrap()
            .contains("order_path")
    );
}

#[tokio::test]
async fn always_run_cleanup_runs_after_a_failure() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: cleanup
steps:
  - name: create
    http: { method: POST, url: "{{ base }}/resources" }
    conditions: ["[STATUS] == 201"]
    extract: { id: "[BODY].id" }
  - name: broken
    http: { url: "{{ base }}/status/500" }
  - name: never reached
    http: { url: "{{ base }}/json" }
  - name: delete
    always_run: true
    http: { method: DELETE, url: "{{ base }}/resources/{{ id }}" }
    conditions: ["[STATUS] == 204"]
"#;
    let r = run_yaml(yaml, &srv.base, &[]).await;
    let statuses: Vec<_> = r.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Passed,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Passed
        ]
    );
    assert_eq!(r.outcome, Outcome::Failed);
    // The implicit `[STATUS] < 400` check caught the 500.
    assert_eq!(
        r.steps[1].failure.as_ref().unwrap().class,
        FailureClass::HttpStatus
    );
    assert_eq!(srv.deleted(), vec![100]);
}

#[tokio::test]
async fn fast_retries_count_attempts_and_only_the_last_counts() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: retries
steps:
  - name: recovers
    retries: { count: 2, delay: 10ms }
    http: { url: "{{ base }}/flaky/a?fail=2" }
    conditions: ["[STATUS] == 200", "[BODY].attempt == 3"]
  - name: gives up
    retries: { count: 1, delay: 10ms }
    http: { url: "{{ base }}/flaky/b?fail=5" }
    conditions: ["[STATUS] == 200"]
"#;
    let r = run_yaml(yaml, &srv.base, &[]).await;
    assert_eq!(
        (r.steps[0].status, r.steps[0].attempts),
        (StepStatus::Passed, 3)
    );
    assert_eq!(
        (r.steps[1].status, r.steps[1].attempts),
        (StepStatus::Failed, 2)
    );
    assert_eq!(r.steps[1].conditions[0].actual, "503");
}

#[tokio::test]
async fn redirects_are_followed_limited_or_not_followed() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: redirects
steps:
  - name: follows
    http: { url: "{{ base }}/redirect/3" }
    conditions: ["[STATUS] == 200", "[BODY].redirected == true"]
  - name: does not follow
    http: { url: "{{ base }}/redirect/3", follow_redirects: false }
    conditions: ["[STATUS] == 302", "[HEADERS].Location == /redirect/2"]
  - name: loop
    http: { url: "{{ base }}/loop", max_redirects: 5 }
"#;
    let r = run_yaml(yaml, &srv.base, &[]).await;
    assert_eq!(r.steps[0].status, StepStatus::Passed, "{:#?}", r.steps[0]);
    assert_eq!(r.steps[0].response.as_ref().unwrap().redirects, 3);
    assert_eq!(r.steps[1].status, StepStatus::Passed, "{:#?}", r.steps[1]);
    assert_eq!(
        r.steps[2].failure.as_ref().unwrap().class,
        FailureClass::TooManyRedirects
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_limit() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: timeout
steps:
  - name: hangs
    timeout: 500ms
    http: { url: "{{ base }}/never" }
"#;
    let started = Instant::now();
    let r = run_yaml(yaml, &srv.base, &[]).await;
    let elapsed = started.elapsed();
    let step = &r.steps[0];
    assert_eq!(
        step.failure.as_ref().unwrap().class,
        FailureClass::Timeout,
        "{step:#?}"
    );
    assert!(elapsed < Duration::from_millis(600), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(500), "took {elapsed:?}");
}

#[tokio::test]
async fn the_journey_deadline_bounds_the_whole_run() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: deadline
timeout: 300ms
steps:
  - name: slow
    timeout: 10s
    http: { url: "{{ base }}/never" }
  - name: cleanup
    always_run: true
    http: { url: "{{ base }}/json" }
"#;
    let started = Instant::now();
    let r = run_yaml(yaml, &srv.base, &[]).await;
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        r.steps[0].failure.as_ref().unwrap().class,
        FailureClass::Timeout
    );
    assert_eq!(
        r.steps[1].failure.as_ref().unwrap().class,
        FailureClass::Timeout
    );
}

#[tokio::test]
async fn a_body_over_the_cap_fails_without_buffering_it() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: cap
steps:
  - name: huge
    http: { url: "{{ base }}/big?bytes=50000000", max_body_bytes: 64KiB }
  - name: fits
    always_run: true
    http: { url: "{{ base }}/big?bytes=1000", max_body_bytes: 64KiB }
    conditions: ["len([BODY]) == 1000"]
"#;
    let r = run_yaml(yaml, &srv.base, &[]).await;
    assert_eq!(
        r.steps[0].failure.as_ref().unwrap().class,
        FailureClass::BodyTooLarge,
        "{:#?}",
        r.steps[0]
    );
    assert_eq!(r.steps[1].status, StepStatus::Passed, "{:#?}", r.steps[1]);
}

#[tokio::test]
async fn connection_refused_is_classified() {
    let port = crate::support::serve::closed_port();
    let yaml = "name: refused\nsteps:\n  - name: closed port\n    http: { url: \"{{ base }}/\" }\n";
    let r = run_yaml(yaml, &format!("http://127.0.0.1:{port}"), &[]).await;
    let f = r.steps[0].failure.as_ref().unwrap();
    assert_eq!(f.class, FailureClass::Connect, "{f:?}");
    assert!(r.steps[0].timings.total.unwrap_or_default() < Duration::from_secs(1));
}

#[tokio::test]
async fn bodies_queries_and_headers_arrive_as_written() {
    let srv = TestServer::start().await;
    let yaml = r#"
name: shapes
variables: { who: ada, n: 3 }
steps:
  - name: json
    http:
      method: POST
      url: "{{ base }}/echo"
      query: { q: "a b&c", who: "{{ who }}" }
      headers: { X-Team: shop }
      json: { user: "{{ who }}", n: "{{ n }}", tags: [x, "{{ who }}"], ok: true }
    conditions:
      - "[BODY].method == POST"
      - "[BODY].uri == /echo?q=a+b%26c&who=ada"
      - "[BODY].headers.x-team == shop"
      - "[BODY].headers.content-type == application/json"
      - "[BODY].body == pat(*\"user\":\"ada\"*)"
  - name: form
    http:
      method: PUT
      url: "{{ base }}/echo"
      form: { a: "1 2", b: "{{ who }}" }
    conditions:
      - "[BODY].headers.content-type == application/x-www-form-urlencoded"
      - "[BODY].body == a=1+2&b=ada"
  - name: raw
    http:
      method: POST
      url: "{{ base }}/echo"
      headers: { Content-Type: text/plain }
      body: "hello {{ who }}"
    conditions: ["[BODY].body == hello ada"]
"#;
    let r = run_yaml(yaml, &srv.base, &[]).await;
    for s in &r.steps {
        assert_eq!(s.status, StepStatus::Passed, "{s:#?}");
    }
}
