//! Against httpbin (a third-party HTTP server, started by scripts/test.sh): behaviour we did
//! not write ourselves, so our client is checked against someone else's server.

use waymark::run::{Outcome, StepStatus};
use waymark::step::FailureClass;

use crate::support::{httpbin, run_yaml};

#[tokio::test]
async fn httpbin_chain_with_query_headers_auth_and_redirects() {
    let yaml = r#"
name: httpbin
variables: { user: ada }
steps:
  - name: query echo
    http:
      url: "{{ base }}/get"
      query: { user: "{{ user }}", n: "42" }
      headers: { X-Request-Tag: first }
    conditions:
      - "[STATUS] == 200"
      - "[BODY].args.user == ada"
      - "[BODY].headers.X-Request-Tag == first"
      - "[BODY].headers.User-Agent == pat(waymark/*)"
    extract: { origin: "[BODY].origin", tag: "[BODY].headers.X-Request-Tag" }
  - name: post json
    http:
      method: POST
      url: "{{ base }}/post"
      json: { from: "{{ origin }}", tag: "{{ tag }}" }
    conditions: ["[BODY].json.from == 127.0.0.1", "[BODY].json.tag == first"]
    extract: { posted_tag: "[BODY].json.tag" }
  - name: basic auth
    http:
      url: "{{ base }}/basic-auth/{{ user }}/{{ secret.PW }}"
      headers: { Authorization: "Basic {{ secret.BASIC }}" }
    conditions: ["[STATUS] == 200", "[BODY].authenticated == true"]
  - name: redirects
    http: { url: "{{ base }}/redirect/3" }
    conditions: ["[STATUS] == 200", "[BODY].url == pat(*/get)"]
  - name: teapot
    http: { url: "{{ base }}/status/418" }
    conditions: ["[STATUS] == 418"]
  - name: uses third value
    http: { url: "{{ base }}/anything/{{ posted_tag }}" }
    conditions: ["[BODY].url == pat(*/anything/first)"]
"#;
    // base64("ada:pw-1234") = YWRhOnB3LTEyMzQ=
    let r = run_yaml(
        yaml,
        &httpbin(),
        &[("PW", "pw-1234"), ("BASIC", "YWRhOnB3LTEyMzQ=")],
    )
    .await;
    for s in &r.steps {
        assert_eq!(s.status, StepStatus::Passed, "{s:#?}");
    }
    assert_eq!(r.outcome, Outcome::Passed);
    // The secret in the URL path is redacted in the recorded request.
    let url = &r.steps[2].request.as_ref().unwrap().url;
    assert!(url.contains("***") && !url.contains("pw-1234"), "{url}");
}

#[tokio::test]
async fn httpbin_delay_beyond_the_step_timeout() {
    let yaml = "name: slow\nsteps:\n  - name: delay\n    timeout: 300ms\n    http: { url: \"{{ base }}/delay/2\" }\n";
    let r = run_yaml(yaml, &httpbin(), &[]).await;
    assert_eq!(
        r.steps[0].failure.as_ref().unwrap().class,
        FailureClass::Timeout
    );
}

/// Issue #19: httpbin compresses these whatever the client asks; `[BODY]` is the decoded JSON.
#[tokio::test]
async fn httpbin_gzip_deflate_and_brotli_bodies_are_decoded() {
    let yaml = r#"
name: httpbin compression
steps:
  - name: gzip
    http: { url: "{{ base }}/gzip" }
    conditions: ["[BODY].gzipped == true", "[BODY].headers.Accept-Encoding == gzip, deflate, br"]
  - name: deflate
    http: { url: "{{ base }}/deflate" }
    conditions: ["[BODY].deflated == true"]
  - name: brotli
    http: { url: "{{ base }}/brotli" }
    conditions: ["[BODY].brotli == true"]
  - name: raw when asked
    http: { url: "{{ base }}/gzip", compressed: false }
    conditions: ["[HEADERS].content-encoding == gzip", "has([BODY].gzipped) == false"]
"#;
    let r = run_yaml(yaml, &httpbin(), &[]).await;
    for s in &r.steps {
        assert_eq!(s.status, StepStatus::Passed, "{s:#?}");
        let response = s.response.as_ref().unwrap();
        if s.name == "raw when asked" {
            assert_eq!(response.wire_bytes, None);
        } else {
            assert!(response.wire_bytes.unwrap() > 0, "{response:?}");
        }
    }
    assert_eq!(r.outcome, Outcome::Passed);
}
