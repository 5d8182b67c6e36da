use super::*;

fn parse(src: &str) -> Result<Journey, Vec<Diagnostic>> {
    parse_journey(src, Path::new("j.yaml"), &ParseOptions::default())
}

fn errors(src: &str) -> Vec<String> {
    parse(src)
        .unwrap_err()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// Asserts that each of `needles` is part of one of `errs` (or of the lines they make).
fn assert_errors_include(errs: &[String], needles: &[&str]) {
    let joined = errs.join("\n");
    for needle in needles {
        assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
    }
}

const ISSUE_EXAMPLE: &str = r#"name: checkout
description: A shopper logs in and lists items
schedule: { every: 1m }
owner: shop-team
runbook: https://wiki.example.com/runbooks/checkout
variables: { base: "http://127.0.0.1:8081" }
steps:
  - name: login
    http:
      method: POST
      url: "{{ base }}/login"
      json: { user: ada, password: "{{ secret.SHOP_PASSWORD }}" }
    conditions: ["[STATUS] == 200", "[BODY].auth.user.id == 7"]
    extract: { token: "[BODY].auth.token" }
  - name: list items
    http:
      url: "{{ base }}/items"
      headers: { Authorization: "Bearer {{ token }}" }
    conditions: ["[STATUS] == 200", "len([BODY].items) == 2", "[RESPONSE_TIME] < 500"]
"#;

#[test]
fn the_issue_example_parses() {
    let j = parse(ISSUE_EXAMPLE).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(j.name, "checkout");
    assert_eq!(j.schedule, Schedule::Every(Duration::from_secs(60)));
    assert_eq!(j.steps.len(), 2);
    assert_eq!(j.steps[0].extract[0].0, "token");
    assert_eq!(j.steps[1].conditions.len(), 3);
    let StepKind::Http(h) = &j.steps[0].kind else {
        panic!("not http")
    };
    assert_eq!(h.method, ::http::Method::POST);
    assert_eq!(h.url.to_string(), "{{ base }}/login");
    assert!(h.follow_redirects);
    assert_eq!(j.source.content_sha256.len(), 64);
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let src = r#"name: x
schedul: { every: 1m }
steps:
  - name: a
    http:
      url: "{{ base }}/x"
      methd: GET
    conditions: ["[STATUS] =! 200"]
  - name: a
    http: { url: "http://h/{{ token }}" }
"#;
    let errs = errors(src);
    let joined = errs.join("\n");
    assert!(
        joined
            .contains("j.yaml:2:1: unknown key `schedul` in the journey; did you mean `schedule`?"),
        "{joined}"
    );
    assert!(joined.contains("j.yaml:6:"), "{joined}");
    assert!(
        joined.contains("variable `base` is not defined"),
        "{joined}"
    );
    assert!(
        joined.contains("j.yaml:7:7: unknown key `methd`"),
        "{joined}"
    );
    assert!(joined.contains("did you mean `method`?"), "{joined}");
    assert!(joined.contains("j.yaml:8:"), "{joined}");
    assert!(joined.contains("invalid condition"), "{joined}");
    assert!(joined.contains("duplicate step name `a`"), "{joined}");
    assert!(
        joined.contains("variable `token` is not defined"),
        "{joined}"
    );
    assert!(errs.len() >= 5, "{joined}");
}

#[test]
fn variables_are_defined_by_earlier_steps_only() {
    let src = r#"name: x
steps:
  - name: a
    http: { url: "http://h/{{ later }}" }
  - name: b
    http: { url: "http://h/" }
    extract: { later: "[BODY].x" }
  - name: c
    http: { url: "http://h/{{ later }}" }
    conditions: ["[BODY].id == {{ later }}"]
"#;
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("j.yaml:4:"), "{errs:#?}");
}

#[test]
fn extra_vars_count_as_defined() {
    let src = "name: x\nsteps:\n  - name: a\n    http: { url: \"{{ base }}/\" }\n";
    assert!(parse(src).is_err());
    let opts = ParseOptions {
        extra_vars: ["base".to_string()].into(),
        ..ParseOptions::default()
    };
    assert!(parse_journey(src, Path::new("j.yaml"), &opts).is_ok());
}

#[test]
fn wrong_types_and_values_are_reported() {
    let src = r#"name: x
timeout: 30
slo: 101%
tags: fast
schedule: { cron: "61 * * * *" }
steps:
  - name: a
    always_run: yes please
    retries: { count: 2, delay: soon }
    http:
      url: ftp://h/
      max_body_bytes: 10 parsecs
"#;
    assert_errors_include(
        &errors(src),
        &[
            "j.yaml:2:10: `timeout` needs a unit",
            "j.yaml:3:6: `slo` must be a percentage",
            "j.yaml:4:7: `tags` must be a list",
            "j.yaml:5:19: invalid cron expression `61 * * * *`: minute `61` is out of range (valid: 0-59)",
            "j.yaml:8:17: `always_run` of step `a` must be true or false",
            "j.yaml:9:33: `retries` of step `a` delay `soon` is not a duration",
            "j.yaml:11:12: URL scheme `ftp`",
            "j.yaml:12:23: `http.max_body_bytes` of step `a` must be a size",
        ],
    );
}

#[test]
fn syntax_errors_and_unknown_kinds() {
    let e = errors("name: x\nsteps: [\n");
    assert!(
        e[0].starts_with("j.yaml:") && e[0].contains("YAML syntax error"),
        "{e:?}"
    );
    let e = errors("name: x\nsteps:\n  - name: a\n    websocket: {}\n");
    assert!(
        e[0].contains("j.yaml:4:16: `websocket` needs a `url`"),
        "{e:?}"
    );
    let e = errors("name: x\nsteps:\n  - name: a\n");
    assert!(e[0].contains("step needs exactly one kind"), "{e:?}");
    let e = errors("name: x\nsteps:\n  - name: a\n    http: { url: \"http://h\" }\n    tcp: {}\n");
    assert!(e[0].contains("exactly one kind"), "{e:?}");
}

#[test]
fn cron_schedules_with_five_and_six_fields() {
    for expr in ["*/5 * * * *", "*/30 * * * * *"] {
        let src = format!(
            "name: x\nschedule: {{ cron: \"{expr}\", timezone: Europe/Paris }}\nsteps:\n  - name: a\n    http: {{ url: \"http://h/\" }}\n"
        );
        let j = parse(&src).unwrap_or_else(|d| panic!("{d:#?}"));
        let Schedule::Cron(c) = j.schedule else {
            panic!()
        };
        assert_eq!(c.timezone, chrono_tz::Europe::Paris);
    }
}

#[test]
fn retries_short_and_long_forms() {
    let src = "name: x\nsteps:\n  - name: a\n    retries: 2\n    http: { url: \"http://h/\" }\n  - name: b\n    retries: { count: 1, delay: 2s }\n    http: { url: \"http://h/\" }\n";
    let j = parse(src).unwrap();
    assert_eq!(
        j.steps[0].retries,
        Retries {
            count: 2,
            delay: DEFAULT_RETRY_DELAY
        }
    );
    assert_eq!(
        j.steps[1].retries,
        Retries {
            count: 1,
            delay: Duration::from_secs(2)
        }
    );
}

#[test]
fn duplicate_journey_names_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name: same\nsteps:\n  - name: a\n    http: { url: \"http://h/\" }\n";
    std::fs::write(dir.path().join("a.yaml"), body).unwrap();
    std::fs::write(dir.path().join("b.yml"), body).unwrap();
    std::fs::write(dir.path().join("c.yaml"), "name: [").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let loaded = load_paths(&[dir.path().to_path_buf()], &ParseOptions::default());
    assert_eq!(loaded.journeys.len(), 1);
    let msgs: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(
        msgs[0].contains("b.yml:1:7: duplicate journey name `same`"),
        "{msgs:#?}"
    );
    assert!(msgs[1].contains("c.yaml:"), "{msgs:#?}");
}

#[test]
fn every_step_kind_parses() {
    let src = r#"name: kinds
variables: { host: "127.0.0.1:9" }
steps:
  - name: feed
    websocket:
      url: "ws://{{ host }}/feed"
      headers: { Authorization: "Bearer x" }
      subprotocols: [v1.orders]
      max_message_bytes: 64KiB
      actions:
        - expect: { conditions: ["[MESSAGE].type == hello"], timeout: 2s, extract: { session: "[MESSAGE].id" } }
        - send: { json: { type: ping, session: "{{ session }}" } }
        - send: { text: "raw {{ session }}" }
        - expect_none: { for: 500ms, conditions: ["[MESSAGE].type == error"] }
        - ping: {}
        - close: { code: 1000 }
  - name: port
    tcp: { host: "127.0.0.1", port: 6379, send: "PING\r\n", expect: { hex: "2b 50 4f 4e 47" } }
  - name: lookup
    dns: { name: "shop.test", type: aaaa, server: "127.0.0.1:5353", tcp: true }
  - name: cert
    tls: { host: "{{ session }}", port: 8443, insecure_skip_verify: true }
    conditions: ["[CERTIFICATE_EXPIRATION] > 336h"]
  - name: pause
    wait: 250ms
  - name: pause again
    wait: { for: 1s }
"#;
    let j = parse(src).unwrap_or_else(|d| panic!("{d:#?}"));
    let kinds: Vec<_> = j.steps.iter().map(|s| s.kind.name()).collect();
    assert_eq!(kinds, ["websocket", "tcp", "dns", "tls", "wait", "wait"]);
    let StepKind::Websocket(ws) = &j.steps[0].kind else {
        panic!()
    };
    assert_eq!(ws.actions.len(), 6);
    assert_eq!(ws.max_message_bytes, 64 * 1024);
    let StepKind::Dns(d) = &j.steps[2].kind else {
        panic!()
    };
    assert_eq!(d.record_type, crate::journey::DnsRecordType::Aaaa);
    assert_eq!(d.server.unwrap().port(), 5353);
    let StepKind::Wait(w) = &j.steps[4].kind else {
        panic!()
    };
    assert_eq!(w.duration, Duration::from_millis(250));
}

#[test]
fn step_kind_problems_are_reported() {
    let src = r#"name: kinds
steps:
  - name: feed
    websocket:
      url: "http://x/feed"
      actions:
        - expect: { timeout: 2s }
        - send: { text: a, json: {} }
        - shout: {}
        - send: { text: "{{ nope }}" }
  - name: port
    tcp: { host: h, port: 70000, send: { hex: "4x" } }
  - name: lookup
    dns: { name: x, type: AAA, server: "not-an-ip" }
  - name: pause
    wait: 10m
"#;
    assert_errors_include(
        &errors(src),
        &[
            "j.yaml:5:12: URL scheme `http` is not supported by websocket steps (use ws or wss)",
            "j.yaml:7:19: `expect` needs `conditions`",
            "j.yaml:8:17: `send` takes exactly one of `text` or `json`",
            "j.yaml:9:11: unknown key `shout` in an action",
            "variable `nope` is not defined",
            "j.yaml:12:27: `tcp.port` must be between 0 and 65535",
            "`tcp.send`: `4x` is not hex bytes",
            "unsupported DNS record type `AAA`; did you mean `AAAA`?",
            "`dns.server` must be an IP address",
            "j.yaml:16:11: `wait` `10m` is out of range",
        ],
    );
}

#[test]
fn anomaly_settings_of_journeys_and_steps() {
    use crate::journey::{AnomalySettings, Seasonality, Sensitivity};
    let src = r#"name: x
anomaly: high
steps:
  - name: a
    http: { url: "http://h/" }
  - name: b
    http: { url: "http://h/" }
    anomaly: { sensitivity: low, seasonality: daily, direction: both, min_change: 30%, min_delta: 20ms }
  - name: c
    http: { url: "http://h/" }
    anomaly: { min_change: 0.5 }
"#;
    let j = parse(src).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(
        j.anomaly,
        AnomalySettings {
            sensitivity: Some(Sensitivity::High),
            ..AnomalySettings::default()
        }
    );
    assert_eq!(j.steps[0].anomaly, AnomalySettings::default());
    let b = j.steps[1].anomaly;
    assert_eq!(b.sensitivity, Some(Sensitivity::Low));
    assert_eq!(b.seasonality, Some(Seasonality::Daily));
    assert_eq!(b.direction, Some(crate::journey::Direction::Both));
    assert!((b.min_change.unwrap() - 0.3).abs() < 1e-12, "{b:?}");
    assert_eq!(b.min_delta, Some(Duration::from_millis(20)));
    // Resolution: the step's fields win, unset ones come from the journey.
    assert_eq!(j.steps[0].anomaly.or(j.anomaly), j.anomaly);
    assert_eq!(j.steps[1].anomaly.or(j.anomaly), b);
    let c = j.steps[2].anomaly.or(j.anomaly);
    assert_eq!(c.sensitivity, Some(Sensitivity::High));
    assert_eq!(c.min_change, Some(0.5));
    assert_eq!(c.seasonality, None);
    assert_eq!(c.min_delta, None);
}

#[test]
fn anomaly_off() {
    use crate::journey::{AnomalySettings, Sensitivity};
    let off = AnomalySettings {
        sensitivity: Some(Sensitivity::Off),
        ..AnomalySettings::default()
    };
    // `off` as a word, as a (YAML 1.1 style) boolean false, and inside the mapping.
    for value in [
        "off",
        "\"off\"",
        "false",
        "{ sensitivity: off }",
        "{ sensitivity: false }",
    ] {
        let src = format!(
            "name: x\nanomaly: medium\nsteps:\n  - name: a\n    http: {{ url: \"http://h/\" }}\n    anomaly: {value}\n"
        );
        let j = parse(&src).unwrap_or_else(|d| panic!("{value}: {d:#?}"));
        assert_eq!(j.steps[0].anomaly, off, "{value}");
        assert_eq!(j.steps[0].anomaly.or(j.anomaly), off, "{value}");
    }
}

#[test]
fn anomaly_problems_are_reported_with_their_position() {
    let src = r#"name: x
anomaly: extreme
steps:
  - name: a
    http: { url: "http://h/" }
    anomaly: { sensitivty: low }
  - name: b
    http: { url: "http://h/" }
    anomaly:
      min_change: 2000%
      seasonality: hourly
      min_delta: 20
      direction: sideways
"#;
    let errs = errors(src);
    assert_errors_include(
        &errs,
        &[
            "j.yaml:2:10: `anomaly` must be one of off, low, medium, high",
            "j.yaml:6:16: unknown key `sensitivty` in `anomaly` of step `a`; did you mean `sensitivity`?",
            "j.yaml:10:19: `min_change` of `anomaly` of step `b` must be a fraction such as `0.2` or `20%`",
            "j.yaml:11:20: `seasonality` of `anomaly` of step `b` must be one of off, daily, weekly",
            "j.yaml:12:18: `min_delta` of `anomaly` of step `b` needs a unit",
            "j.yaml:13:18: `direction` of `anomaly` of step `b` must be one of up, down, both",
        ],
    );
    let joined = errs.join("\n");
    assert_eq!(errs.len(), 6, "{joined}");
}

#[test]
fn public_journeys_and_their_group() {
    let j = parse(ISSUE_EXAMPLE).unwrap();
    assert!(!j.public, "private unless said");
    assert_eq!(j.group, None);
    let src = ISSUE_EXAMPLE.replace(
        "owner: shop-team\n",
        "owner: shop-team\npublic: true\ngroup: Shop\n",
    );
    let j = parse(&src).unwrap();
    assert!(j.public);
    assert_eq!(j.group.as_deref(), Some("Shop"));
    let bad = ISSUE_EXAMPLE.replace(
        "owner: shop-team\n",
        "owner: shop-team\npublic: yes please\ngroup: \"\"\n",
    );
    let errs = errors(&bad).join("\n");
    assert!(
        errs.contains("j.yaml:5:9:") && errs.contains("`public`"),
        "{errs}"
    );
    assert!(
        errs.contains("j.yaml:6:8:") && errs.contains("`group`"),
        "{errs}"
    );
}

#[test]
fn locations_list_where_a_journey_runs_from() {
    let src = |locations: &str| {
        format!("name: x\nlocations: {locations}\nsteps:\n  - name: a\n    wait: 1ms\n")
    };
    assert_eq!(
        parse(&src("[eu-west, us-east]")).unwrap().locations,
        ["eu-west", "us-east"]
    );
    assert!(
        parse("name: x\nsteps:\n  - name: a\n    wait: 1ms\n")
            .unwrap()
            .locations
            .is_empty()
    );
    let e = errors(&src("eu-west"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("j.yaml:2:12:") && e[0].contains("`locations`"),
        "{e:?}"
    );
    let e = errors(&src("[eu-west, \"\"]"));
    assert!(e[0].contains("a location"), "{e:?}");
}

#[test]
fn http_compressed_defaults_to_true_and_can_be_turned_off() {
    let http = |extra: &str| {
        let src = format!(
            "name: z\nsteps:\n  - name: a\n    http: {{ url: \"http://127.0.0.1/\"{extra} }}\n"
        );
        let j = parse(&src).unwrap_or_else(|d| panic!("{d:#?}"));
        let StepKind::Http(h) = &j.steps[0].kind else {
            panic!("not http")
        };
        h.compressed
    };
    assert!(http(""));
    assert!(!http(", compressed: false"));
    let errs = errors(
        "name: z\nsteps:\n  - name: a\n    http: { url: \"http://127.0.0.1/\", compressed: maybe }\n",
    );
    assert!(
        errs[0].contains("`http.compressed` of step `a`"),
        "{errs:?}"
    );
}

/// Issue #19: `method: FETCH` passed validation and failed only at run time.
#[test]
fn unknown_http_methods_are_rejected_unless_declared_extension_methods() {
    let with = |method: &str, extra: &str| {
        format!(
            "name: j\nsteps:\n  - name: s\n    http:\n      method: {method}\n{extra}      url: http://127.0.0.1:9/\n"
        )
    };
    for ok in ["get", "POST", "PATCH", "OPTIONS"] {
        parse(&with(ok, "")).unwrap_or_else(|d| panic!("{ok}: {d:#?}"));
    }
    let e = errors(&with("FETCH", ""));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with("j.yaml:5:15: unknown HTTP method `FETCH`; expected one of GET"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("set `extension_method: true`"), "{}", e[0]);
    let e = errors(&with("PSOT", ""));
    assert!(e[0].contains("did you mean `POST`?"), "{}", e[0]);
    let j = parse(&with("PURGE", "      extension_method: true\n")).unwrap();
    let StepKind::Http(h) = &j.steps[0].kind else {
        panic!("not http")
    };
    assert_eq!(h.method.as_str(), "PURGE");
    assert!(
        errors(&with("PURGE", "      extension_method: false\n"))[0]
            .contains("unknown HTTP method")
    );
    assert!(
        errors(&with("\"BAD METHOD\"", "      extension_method: true\n"))[0]
            .contains("is not an HTTP method")
    );
}
