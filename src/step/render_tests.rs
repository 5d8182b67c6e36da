//! Regression test for issue #19 (`tls.server_name: "{{ sni }}"` validated, then was sent
//! literally): every string field of every step kind that takes a template is rendered in
//! what its executor uses, and none of them keeps a `{{ }}`.
//!
//! Systematic by construction: the step kinds are matched exhaustively and every step struct
//! is destructured without `..`, so a new kind or field does not compile until this test says
//! whether it is rendered.

use std::path::Path;

use serde_json::Value;

use super::http::request::RequestSpec;
use super::test_support::Harness;
use super::websocket::Upgrade;
use super::websocket::script::render_payload;
use super::{StepContext, tcp::TcpTarget};
use crate::journey::facts::Facts;
use crate::journey::parse::{ParseOptions, parse_journey};
use crate::journey::{
    DnsStep, HttpBody, HttpStep, StepKind, TcpStep, TlsStep, WaitStep, WebsocketStep, WsAction,
    WsPayload,
};

const MARK: &str = "zq7";

const EVERY_FIELD: &str = r#"name: every-field
variables: { v: zq7, hex: "7a71" }
steps:
  - name: http
    http:
      method: POST
      url: "http://{{ v }}.test/{{ v }}"
      headers: { X-V: "{{ v }}" }
      query: { q: "{{ v }}" }
      body: "{{ v }}"
    conditions: ["[BODY] == {{ v }}", "[BODY] == pat({{ v }}*)", "[BODY] == any(a, {{ v }})"]
  - name: http json
    http:
      method: POST
      url: "http://{{ v }}.test/"
      json: { a: ["{{ v }}", { b: "x{{ v }}" }] }
  - name: http form
    http:
      method: POST
      url: "http://{{ v }}.test/"
      form: { f: "{{ v }}" }
  - name: websocket
    websocket:
      url: "ws://{{ v }}.test/"
      headers: { X-V: "{{ v }}" }
      actions:
        - send: { text: "{{ v }}" }
        - send: { json: { a: "{{ v }}" } }
        - expect: { conditions: ["[MESSAGE] == {{ v }}"] }
        - expect_none: { for: 1s, conditions: ["[MESSAGE] == pat({{ v }})"] }
  - name: tcp
    tcp: { host: "{{ v }}.test", port: 9, send: "{{ v }}", expect: "{{ v }}" }
  - name: tcp hex
    tcp: { host: "{{ v }}.test", port: 9, send: { hex: "{{ hex }}" }, expect: { hex: "{{ hex }}" } }
  - name: dns
    dns: { name: "{{ v }}.test" }
  - name: tls
    tls: { host: "{{ v }}.test", server_name: "sni-{{ v }}.test" }
  - name: wait
    wait: 1ms
"#;

/// `text` (a Debug rendering of what an executor uses) has `want` rendered values and no
/// template left, raw or percent-encoded.
fn assert_rendered(step: &str, text: &str, want: usize) {
    for leftover in ["{{", "}}", "%7B%7B", "%7b%7b"] {
        assert!(
            !text.contains(leftover),
            "{step}: `{leftover}` left in {text}"
        );
    }
    let found = text.matches(MARK).count();
    assert!(
        found >= want,
        "{step}: {found} of {want} fields rendered in {text}"
    );
}

#[test]
fn every_templated_string_field_of_every_step_kind_is_rendered() {
    let journey = crate::run::testkit::journey(EVERY_FIELD);
    let h = Harness::new(&[("v", Value::from(MARK)), ("hex", Value::from("7a71"))]);
    let ctx = StepContext {
        scope: h.scope(),
        deadline: tokio::time::Instant::now(),
        propagation_headers: Vec::new(),
        sensitive: false,
    };
    let scope = &ctx.scope;
    let mut body = Facts::default();
    body.body = Some(MARK.as_bytes().to_vec());
    body.message = Some(MARK.to_string());
    let mut kinds = Vec::new();
    for step in &journey.steps {
        for c in &step.conditions {
            assert!(c.evaluate(&body, scope).passed, "{}: {c:?}", step.name);
        }
        kinds.push(step.kind.name());
        match &step.kind {
            StepKind::Http(s) => {
                let HttpStep {
                    method: _,
                    url: _,
                    headers: _,
                    query: _,
                    body: request_body,
                    follow_redirects: _,
                    max_redirects: _,
                    max_body_bytes: _,
                    insecure_skip_verify: _,
                    compressed: _,
                } = s;
                // url (host and path), one header, one query value, then the body's fields.
                let body_fields = match request_body {
                    Some(HttpBody::Raw(_)) => 4,
                    Some(HttpBody::Json(_)) => 3,
                    Some(HttpBody::Form(_)) => 2,
                    None => 0,
                };
                let spec = RequestSpec::render(s, &ctx).unwrap();
                let text = format!(
                    "{spec:?} {}",
                    String::from_utf8_lossy(&spec.body).replace('"', "'")
                );
                assert_rendered(&step.name, &text, body_fields);
            }
            StepKind::Websocket(s) => {
                let WebsocketStep {
                    url: _,
                    headers: _,
                    subprotocols: _,
                    actions,
                    max_message_bytes: _,
                    max_skipped_messages: _,
                    insecure_skip_verify: _,
                } = s;
                let upgrade = Upgrade::render(s, &ctx).unwrap();
                assert_rendered(&step.name, &format!("{upgrade:?}"), 2);
                for action in actions {
                    match action {
                        WsAction::Send(payload @ (WsPayload::Text(_) | WsPayload::Json(_))) => {
                            let sent = render_payload(payload, scope).unwrap();
                            assert_rendered(&step.name, &sent, 1);
                        }
                        WsAction::Expect { conditions, .. }
                        | WsAction::ExpectNone { conditions, .. } => {
                            for c in conditions {
                                assert!(c.evaluate(&body, scope).passed, "{c:?}");
                            }
                        }
                        WsAction::Ping { .. } | WsAction::Close { .. } => {}
                    }
                }
            }
            StepKind::Tcp(s) => {
                let TcpStep {
                    host: _,
                    port: _,
                    send: _,
                    expect: _,
                    max_bytes: _,
                } = s;
                let TcpTarget { host, send, expect } = s.target(scope).unwrap();
                assert_eq!(host, format!("{MARK}.test"));
                for bytes in [send, expect] {
                    let bytes = bytes.expect("send and expect are set");
                    assert!(
                        bytes == MARK.as_bytes() || bytes == b"zq",
                        "{}: {bytes:?}",
                        step.name
                    );
                }
            }
            StepKind::Dns(s) => {
                let DnsStep {
                    name: _,
                    record_type: _,
                    server: _,
                    tcp: _,
                } = s;
                let name = s.rendered_name(scope).unwrap();
                assert_eq!(name.to_string(), format!("{MARK}.test."));
            }
            StepKind::Tls(s) => {
                let TlsStep {
                    host: _,
                    port: _,
                    server_name: _,
                    insecure_skip_verify: _,
                } = s;
                let (host, sni) = s.target(scope).unwrap();
                assert_eq!(host, format!("{MARK}.test"));
                assert_eq!(sni.to_str(), format!("sni-{MARK}.test"));
            }
            StepKind::Wait(s) => {
                // No string field.
                let WaitStep { duration: _ } = s;
            }
        }
    }
    kinds.dedup();
    assert_eq!(kinds, ["http", "websocket", "tcp", "dns", "tls", "wait"]);
}

#[test]
fn templates_in_names_that_are_sent_as_written_are_rejected_at_validate() {
    let cases = [
        ("query: { \"{{ v }}\": x }", "a name in `http.query`"),
        ("form: { \"{{ v }}\": x }", "a name in `http.form`"),
        ("json: { \"{{ v }}\": x }", "a JSON key"),
    ];
    for (field, what) in cases {
        let src = format!(
            "name: j\nvariables: {{ v: x }}\nsteps:\n  - name: s\n    http:\n      method: POST\n      url: http://127.0.0.1:9/\n      {field}\n"
        );
        let d = parse_journey(&src, Path::new("t.yaml"), &ParseOptions::default()).unwrap_err();
        assert!(
            d.iter()
                .any(|d| d.message.contains(what) && d.message.contains("not rendered")),
            "{field}: {d:#?}"
        );
    }
    let src = "name: j\nsteps:\n  - name: s\n    websocket:\n      url: ws://127.0.0.1:9/\n      subprotocols: [\"{{ v }}\"]\n";
    let d = parse_journey(src, Path::new("t.yaml"), &ParseOptions::default()).unwrap_err();
    assert!(d[0].message.contains("not rendered"), "{d:#?}");
}
