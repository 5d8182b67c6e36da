//! Table-driven tests of the condition language: Gatus's documented and tested semantics,
//! Waymark's extensions, error offsets, and odd inputs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::journey::template::{MapSecrets, Redactor};

mod not_json;

fn eval(cond: &str, facts: &Facts, vars: &[(&str, &str)]) -> ConditionOutcome {
    let vars: BTreeMap<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let redactor = Redactor::default();
    let no_secrets = MapSecrets::new(&[]);
    let scope = Scope::at_fixed_time(&vars, &no_secrets, &redactor);
    let c = Condition::parse(cond).unwrap_or_else(|e| panic!("`{cond}` should parse: {e:?}"));
    c.evaluate(facts, &scope)
}

/// `Facts` has private caches, so tests fill a default one rather than use `..Default`.
fn with(edit: impl FnOnce(&mut Facts)) -> Facts {
    let mut f = Facts::default();
    edit(&mut f);
    f
}
fn body(b: &str) -> Facts {
    with(|f| {
        f.status = Some(200);
        f.body = Some(b.as_bytes().to_vec());
    })
}
fn status(s: u16) -> Facts {
    with(|f| f.status = Some(s))
}
fn ms(n: u64) -> Facts {
    with(|f| f.response_time = Some(Duration::from_millis(n)))
}
fn ip(a: &str) -> Facts {
    with(|f| f.ip = Some(a.parse().unwrap()))
}
fn cert_hours(h: i64) -> Facts {
    with(|f| f.certificate_expiration_ms = Some(h * 3_600_000))
}

/// Evaluates every row and reports all the wrong ones at once.
fn check(rows: Vec<(&str, Facts, bool)>) {
    let wrong: Vec<String> = rows
        .iter()
        .map(|(c, f, want)| (c, want, eval(c, f, &[])))
        .filter(|(_, want, o)| o.passed != **want)
        .map(|(c, want, o)| {
            format!(
                "`{c}` should {} (actual: {})",
                if *want { "pass" } else { "fail" },
                o.actual
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn gatus_readme_examples() {
    let connected = |c| with(|f| f.connected = Some(c));
    check(vec![
        ("[STATUS] == 200", status(200), true),
        ("[STATUS] == 200", status(201), false),
        ("[STATUS] < 300", status(299), true),
        ("[STATUS] < 300", status(301), false),
        ("[STATUS] <= 299", status(299), true),
        ("[STATUS] <= 299", status(301), false),
        ("[STATUS] > 400", status(401), true),
        ("[STATUS] > 400", status(400), false),
        ("[STATUS] == any(200, 429)", status(429), true),
        ("[STATUS] == any(200, 429)", status(201), false),
        ("[CONNECTED] == true", connected(true), true),
        ("[CONNECTED] == true", connected(false), false),
        ("[RESPONSE_TIME] < 500", ms(300), true),
        ("[RESPONSE_TIME] < 500", ms(500), false),
        ("[IP] == 127.0.0.1", ip("127.0.0.1"), true),
        ("[IP] == 127.0.0.1", ip("0.0.0.0"), false),
        ("[BODY] == 1", body("1"), true),
        ("[BODY] == 1", body("{}"), false),
        ("[BODY] == 1", body("2"), false),
        (
            "[BODY].user.name == john",
            body(r#"{"user":{"name":"john"}}"#),
            true,
        ),
        (
            "[BODY].user.name == john",
            body(r#"{"user":{"name":"jane"}}"#),
            false,
        ),
        (
            "[BODY].data[0].id == 1",
            body(r#"{"data":[{"id":1}]}"#),
            true,
        ),
        (
            "[BODY].data[0].id == 1",
            body(r#"{"data":[{"id":2}]}"#),
            false,
        ),
        ("[BODY].age == [BODY].id", body(r#"{"age":1,"id":1}"#), true),
        (
            "[BODY].age == [BODY].id",
            body(r#"{"age":1,"id":2}"#),
            false,
        ),
        ("len([BODY].data) < 5", body(r#"{"data":[{"id":1}]}"#), true),
        (
            "len([BODY].data) < 5",
            body(r#"{"data":[1,2,3,4,5]}"#),
            false,
        ),
        (
            "len([BODY].name) == 8",
            body(r#"{"name":"john.doe"}"#),
            true,
        ),
        ("len([BODY].name) == 8", body(r#"{"name":"bob"}"#), false),
        (
            "has([BODY].errors) == false",
            body(r#"{"name":"john.doe"}"#),
            true,
        ),
        (
            "has([BODY].errors) == false",
            body(r#"{"errors":[]}"#),
            false,
        ),
        ("has([BODY].users) == true", body(r#"{"users":[]}"#), true),
        ("has([BODY].users) == true", body("{}"), false),
        (
            "[BODY].name == pat(john*)",
            body(r#"{"name":"john.doe"}"#),
            true,
        ),
        (
            "[BODY].name == pat(john*)",
            body(r#"{"name":"bob"}"#),
            false,
        ),
        ("[BODY].id == any(1, 2)", body(r#"{"id":2}"#), true),
        ("[BODY].id == any(1, 2)", body(r#"{"id":3}"#), false),
        ("[CERTIFICATE_EXPIRATION] > 48h", cert_hours(49), true),
        ("[CERTIFICATE_EXPIRATION] > 48h", cert_hours(24), false),
    ]);
}

#[test]
fn gatus_condition_test_cases() {
    let html = |who: &str| {
        body(&format!(
            r#"<!DOCTYPE html><html><head></head><body><div id="user">{who}</div></body></html>"#
        ))
    };
    let div = r#"pat(*<div id="user">john.doe</div>*)"#;
    check(vec![
        ("[BODY] == test", body("test"), true),
        ("[BODY] < 124", body("123"), true),
        ("[BODY] > 123", body("100"), false),
        (
            "[BODY].data.name == john",
            body(r#"{"data": {"id": 1}}"#),
            false,
        ),
        (
            "len([BODY].data.name) == john",
            body(r#"{"data": {"id": 1}}"#),
            false,
        ),
        (
            "[BODY].user.firstName != [BODY].user.lastName",
            body(r#"{"user":{"firstName":"john","lastName":"doe"}}"#),
            true,
        ),
        (
            "[BODY].user.firstName == [BODY].user.lastName",
            body(r#"{"user":{"firstName":"john","lastName":"doe"}}"#),
            false,
        ),
        ("[BODY][0].id == 1", body(r#"[{"id": 1}, {"id": 2}]"#), true),
        ("[BODY].data == OK", body(r#"{"data": null}"#), false),
        (
            "[BODY].items[0] == OK",
            body(r#"{"items": [null, null]}"#),
            false,
        ),
        ("[BODY].data == OK", body("null"), false),
        (
            "[BODY][0].name == test",
            body(r#"{"statusCode": 500}"#),
            false,
        ),
        (
            "[BODY].data[1].id == 2",
            body(r#"{"data": [{"id": 1}, {"id": 2}, {"id": 3}]}"#),
            true,
        ),
        ("[BODY].data.id < 5", body(r#"{"data": {"id": 10}}"#), false),
        ("[BODY].data > 0", body(r#"{"data": "0x1"}"#), true),
        ("[BODY].data == 0x1", body(r#"{"data": "0x1"}"#), true),
        ("[BODY].data == 15", body(r#"{"data": "0xF"}"#), true),
        (
            "[BODY].data == 12648243",
            body(r#"{"data": "0xC0ff33"}"#),
            true,
        ),
        ("len([BODY].data) == 3", body(r#"{"data": "0x1"}"#), true),
        ("[BODY].data >= 1", body(r#"{"data": "0x01"}"#), true),
        ("[BODY].data == 2", body(r#"{"data": "0o2"}"#), true),
        ("[BODY].data == 2", body(r#"{"data": "0b0010"}"#), true),
        ("[BODY].data == 0b10", body(r#"{"data": "0b0010"}"#), true),
        (
            "[BODY].balance > 100",
            body(r#"{"balance": "123.40000000000005"}"#),
            true,
        ),
        ("[CERTIFICATE_EXPIRATION] > 12h", cert_hours(24), true),
        (
            "[CERTIFICATE_EXPIRATION] > 2419200000",
            cert_hours(24 * 60),
            true,
        ),
        (
            "[CERTIFICATE_EXPIRATION] > 2419200000",
            cert_hours(24 * 14),
            false,
        ),
        ("1 == 2", Facts::default(), false),
        ("raw == raw", Facts::default(), true),
        ("[RESPONSE_TIME] < 1s", ms(50), true),
        ("[RESPONSE_TIME] > 1s", ms(2000), true),
        ("[RESPONSE_TIME] >= 500", ms(500), true),
        ("[RESPONSE_TIME] >= 500", ms(499), false),
        ("[RESPONSE_TIME] <= 500", ms(750), false),
        ("[RESPONSE_TIME] < potato", ms(50), false),
        (
            "len([BODY]) == 3",
            body(r#"[{"id": 1}, {"id": 2}, {"id": 3}]"#),
            true,
        ),
        (
            "len([BODY].data) == 8",
            body(r#"{"name": "john.doe"}"#),
            false,
        ),
        ("len([BODY]) == 8", body("john.doe"), true),
        ("len([BODY].age) == 2", body(r#"{"age":18}"#), true),
        ("len([BODY].adult) == 4", body(r#"{"adult":true}"#), true),
        (
            "len([BODY][0]) == 23",
            body(r#"[{"age":18,"adult":true}]"#),
            true,
        ),
        ("len([BODY]) == 20", body(r#"{"name": "john.doe"}"#), true),
        (
            "[BODY] == pat(*john*)",
            body(r#"{"name": "john.doe"}"#),
            true,
        ),
        (&format!("[BODY] == {div}"), html("john.doe"), true),
        (&format!("[BODY] == {div}"), html("jane.doe"), false),
        (&format!("{div} == [BODY]"), html("jane.doe"), false),
        (
            "[BODY].data == pat(*Whatever*)",
            body(r#"{"data": ["hello", "world", "Whatever"]}"#),
            true,
        ),
        ("[IP] == pat(10.*)", ip("10.0.0.0"), true),
        ("[IP] == pat(10.*)", ip("255.255.255.255"), false),
        ("[STATUS] == pat(4*)", status(404), true),
        ("[STATUS] == pat(4*)", status(200), false),
        (
            "[BODY].name == any(john.doe, jane.doe)",
            body(r#"{"name": "jane.doe"}"#),
            true,
        ),
        (
            "[BODY].name == any(john.doe, jane.doe)",
            body(r#"{"name": "bob"}"#),
            false,
        ),
        ("any(200, 429) == [STATUS]", status(429), true),
        ("has([BODY].errors) == false", body("{}"), true),
        (
            "has([BODY].article) == true",
            body(r#"{"article": {"id": 123, "tags": ["a"]}}"#),
            true,
        ),
        (
            "has([BODY].errors) == false",
            body(r#"{"errors": ["1"]}"#),
            false,
        ),
    ]);
}

#[test]
fn numbers_strings_booleans_and_missing_values() {
    check(vec![
        ("[BODY].id == 7", body(r#"{"id":7.0}"#), true),
        ("[BODY].id == 7.0", body(r#"{"id":7}"#), true),
        ("[BODY].id == 7", body(r#"{"id":"7"}"#), true),
        ("[BODY].id != 7", body(r#"{"id":8}"#), true),
        (
            "[BODY].n == 9007199254740993",
            body(r#"{"n":9007199254740993}"#),
            true,
        ),
        (
            "[BODY].n == 9007199254740992",
            body(r#"{"n":9007199254740993}"#),
            false,
        ),
        ("[BODY].v > 9", body(r#"{"v":"10"}"#), true),
        ("[BODY].price >= 12.5", body(r#"{"price":12.5}"#), true),
        ("[BODY].price > 12.5", body(r#"{"price":12.5}"#), false),
        ("[BODY].big > 1e20", body(r#"{"big":1e21}"#), true),
        ("[BODY].s < b", body(r#"{"s":"a"}"#), false),
        ("[BODY].timeout < 5s", body(r#"{"timeout":"3s"}"#), true),
        ("[BODY].ok == true", body(r#"{"ok":true}"#), true),
        ("[BODY].ok == false", body(r#"{"ok":true}"#), false),
        ("[BODY].ok == True", body(r#"{"ok":true}"#), false),
        (
            "[BODY].name == Ada Lovelace",
            body(r#"{"name":"Ada Lovelace"}"#),
            true,
        ),
        ("[BODY].name == \"john\"", body(r#"{"name":"john"}"#), false),
        (
            "[BODY].x-request-id == abc",
            body(r#"{"x-request-id":"abc"}"#),
            true,
        ),
        ("[BODY].a[0][1] == 3", body(r#"{"a":[[1,3]]}"#), true),
        ("[BODY] == hello", body("  hello\n"), true),
        ("[BODY].missing == x", body("{}"), false),
        ("[BODY].missing != x", body("{}"), true),
        ("[BODY].missing < 5", body("{}"), false),
        ("[BODY].missing > 5", body("{}"), false),
        ("[BODY].missing == [BODY].other", body("{}"), false),
        ("len([BODY].missing) == 0", body("{}"), false),
        ("[BODY].missing == pat(*)", body("{}"), false),
        ("[BODY].missing != any(a, b)", body("{}"), true),
        ("[BODY].a.b == 1", body(r#"{"a":[1]}"#), false),
        ("[BODY].name == john", body("not json"), false),
        ("[BODY] == 1", Facts::default(), false),
        ("[STATUS] == 200", Facts::default(), false),
        ("[STATUS] != 200", status(500), true),
        (
            "[CERTIFICATE_EXPIRATION] > 30m",
            with(|f| f.certificate_expiration_ms = Some(-1000)),
            false,
        ),
        (
            "[DNS_RCODE] == NOERROR",
            with(|f| f.dns_rcode = Some("NOERROR".into())),
            true,
        ),
        (
            "[DNS_RCODE] == NOERROR",
            with(|f| f.dns_rcode = Some("NXDOMAIN".into())),
            false,
        ),
    ]);
}

#[test]
fn headers_and_websocket_messages() {
    let h = || with(|f| f.headers = vec![("content-type".into(), "application/json".into())]);
    let msg = |m: &str| {
        with(|f| {
            f.message = Some(m.into());
            f.messages_received = Some(3);
        })
    };
    check(vec![
        ("[HEADERS].Content-Type == application/json", h(), true),
        ("[HEADERS].CONTENT-TYPE == pat(*json)", h(), true),
        ("[HEADER].content-type == application/json", h(), true),
        ("[HEADERS].content-type == text/html", h(), false),
        ("[HEADERS].x-missing == x", h(), false),
        ("[HEADERS].x-missing != x", h(), true),
        ("has([HEADERS].content-type) == true", h(), true),
        ("has([HEADERS].etag) == false", h(), true),
        ("len([HEADERS].content-type) == 16", h(), true),
        ("[MESSAGE] == ping", msg("ping"), true),
        (
            "[MESSAGE].type == ack",
            msg(r#"{"type":"ack","items":[1,2]}"#),
            true,
        ),
        (
            "len([MESSAGE].items) == 2",
            msg(r#"{"type":"ack","items":[1,2]}"#),
            true,
        ),
        (
            "has([MESSAGE].error) == false",
            msg(r#"{"type":"ack"}"#),
            true,
        ),
        ("[MESSAGES_RECEIVED] >= 3", msg("x"), true),
        ("[MESSAGES_RECEIVED] > 3", msg("x"), false),
    ]);
}

#[test]
fn pat_and_matches() {
    check(vec![
        ("[BODY] == pat(a?c)", body("aäc"), true),
        ("[BODY] == pat(a?c)", body("ac"), false),
        ("[BODY] == pat(john)", body("john.doe"), false),
        ("[BODY] == pat(*/get)", body("http://h/get"), true),
        ("[BODY] == pat(*a*b)", body(&"a".repeat(100_000)), false),
        ("[BODY].id == pat(7)", body(r#"{"id":7.0}"#), true),
        ("[STATUS] == matches(^2..$)", status(204), true),
        ("[STATUS] == matches(^2..$)", status(404), false),
        (
            "[BODY].name == matches(ove)",
            body(r#"{"name":"Ada Lovelace"}"#),
            true,
        ),
        (
            "[BODY].name == matches(^Lovelace)",
            body(r#"{"name":"Ada Lovelace"}"#),
            false,
        ),
        (
            "[BODY].name != matches(^Bob)",
            body(r#"{"name":"Ada Lovelace"}"#),
            true,
        ),
        (
            "[BODY].name == matches(^Ada [A-Z][a-z]+$)",
            body(r#"{"name":"Ada Lovelace"}"#),
            true,
        ),
    ]);
}

#[test]
fn templates_in_operands() {
    let vars = [("order_id", "7"), ("prefix", "Ada"), ("alt", "429")];
    let pass = |c: &str, f: &Facts| eval(c, f, &vars).passed;
    let order = |id: &str| body(&format!(r#"{{"id":{id},"name":"Ada Lovelace"}}"#));
    assert!(pass("[BODY].id == {{ order_id }}", &order("7")));
    assert!(!pass("[BODY].id == {{ order_id }}", &order("8")));
    assert!(pass("{{order_id}} == [BODY].id", &order("7")));
    assert!(pass("[BODY].name == pat({{ prefix }}*)", &order("7")));
    assert!(pass("[STATUS] == any(200, {{ alt }})", &status(429)));
    let undefined = eval("[BODY].id == {{ nope }}", &order("7"), &[]);
    assert!(!undefined.passed);
    assert!(
        undefined.actual.contains("`nope` is not defined"),
        "{}",
        undefined.actual
    );

    let c = Condition::parse("{{ a }} == any({{ b }}, c)").unwrap();
    let names: Vec<String> = c
        .templates()
        .flat_map(|t| t.refs())
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(names, [r#"Var("a")"#, r#"Var("b")"#]);
    assert_eq!(c.templates().count(), 3);
    assert_eq!(
        Condition::parse("[STATUS] == 200")
            .unwrap()
            .templates()
            .count(),
        1
    );
}

#[test]
fn placeholders_are_listed() {
    let list = |c: &str| {
        Condition::parse(c)
            .unwrap()
            .placeholders()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list("len([BODY].items) == [STATUS]"),
        ["[BODY].items", "[STATUS]"]
    );
    assert_eq!(list("has([HEADERS].etag) == true"), ["[HEADERS].etag"]);
    assert_eq!(list("pat(4*) == [STATUS]"), ["[STATUS]"]);
    assert!(list("1 == 2").is_empty());
    let c = Condition::parse("[STATUS] == any(200, 201)").unwrap();
    assert!(c.placeholders().any(|p| *p == Placeholder::Status));
    assert_eq!(c.source(), "[STATUS] == any(200, 201)");
}

#[test]
fn actual_shows_what_was_compared() {
    let users =
        body(r#"{"user":{"firstName":"john","lastName":"doe"},"items":[1,2,3],"errors":[]}"#);
    let cases = [
        ("[STATUS] == 200", status(404), "404"),
        ("[BODY].missing == x", body("{}"), "(missing)"),
        ("len([BODY].items) == 2", users, "len=3"),
        (
            "has([BODY].errors) == false",
            body(r#"{"errors":[]}"#),
            "has=true",
        ),
        (
            "[BODY].a == [BODY].b",
            body(r#"{"a":"john","b":"doe"}"#),
            "john vs doe",
        ),
        (
            "[CERTIFICATE_EXPIRATION] > 48h",
            cert_hours(24),
            "86400000 (24h)",
        ),
        ("[BODY] == x", body(""), "(empty)"),
        ("[BODY] == x", body("a\nb"), "a\\nb"),
        ("[BODY].items == x", body(r#"{"items":[1, 2]}"#), "[1,2]"),
    ];
    for (c, f, want) in cases {
        let o = eval(c, &f, &[]);
        assert!(!o.passed, "{c}");
        assert_eq!(o.actual, want, "{c}");
        assert_eq!(o.expression, c);
    }
    let long = eval("[BODY] == x", &body(&"é".repeat(1000)), &[]).actual;
    assert_eq!(long.chars().count(), 201);
    assert!(long.ends_with('…'));
}

#[test]
fn parse_errors_point_at_the_problem() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty condition"),
        (
            "[STATUS]",
            8,
            "expected one of ==, !=, <, <=, >, >= after `[STATUS]`",
        ),
        ("[STATUS]==201", 8, "`==` needs a space on each side"),
        ("[STATUS] ? 201", 9, "after `[STATUS]`, found `?`"),
        ("[STATUS] = = 201", 9, "found `=`"),
        ("[STATUS] => 200", 9, "found `=>`"),
        ("[STATUS] ==", 11, "missing right-hand side after `==`"),
        ("== 200", 0, "missing left-hand side"),
        (
            "[STATSU] == 200",
            0,
            "unknown placeholder `[STATSU]`, did you mean `[STATUS]`?",
        ),
        (
            "[status] == 200",
            0,
            "did you mean `[STATUS]`? (names are upper-case)",
        ),
        ("[FOO_BAR_BAZ] == 1", 0, "expected one of [STATUS]"),
        ("[DOMAIN_EXPIRATION] > 720h", 0, "not supported"),
        ("[BODY].a == 1 == 2", 14, "only one comparison"),
        ("len([BODY].users == 100", 0, "unclosed `(` in `len(`"),
        ("[STATUS] == any(200, 201", 15, "unclosed `(` in `any(`"),
        ("[BODY] == pat(*)x", 16, "unexpected `x` after `pat(…)`"),
        ("lenn([BODY]) == 1", 0, "did you mean `len()`?"),
        ("[BODY].a == foo(x)", 12, "unknown function `foo()`"),
        (
            "[STATUS] < pat(2*)",
            11,
            "`pat()` works only with == and !=",
        ),
        ("pat(a*) == any(a)", 11, "both sides"),
        ("has([BODY].x) > 1", 0, "`has()` is true or false"),
        (
            "has([BODY].x) == yes",
            17,
            "compare it with `true` or `false`, not `yes`",
        ),
        (
            "len(200) == 3",
            4,
            "`len()` takes a placeholder such as `[BODY].items`, found `200`",
        ),
        ("[BODY] == pat()", 14, "`pat()` needs an argument"),
        ("[STATUS] == any(200,,201)", 20, "empty value in `any()`"),
        (
            "[BODY].x == matches(a(b)",
            20,
            "invalid regular expression in `matches()`: unclosed group",
        ),
        ("[BODY].x == {{ nope.x }}", 12, "unknown namespace"),
        ("[BODY].id == x{{ id", 14, "unclosed `{{`"),
        ("[BODY]..a == 1", 6, "expected a key after `.`"),
        ("[BODY].a[x] == 1", 8, "non-negative integer"),
        ("[BODY].a[*].id == 1", 8, "`[*]`"),
        ("[BODY].a b == c", 8, "unexpected space"),
        ("[HEADERS] == x", 9, "needs a header name"),
        ("[STATUS].x == 1", 8, "`[STATUS]` has no fields"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(src, offset, msg)| match Condition::parse(src) {
            Ok(_) => Some(format!("`{src}` parsed")),
            Err(e) if e.offset != *offset || !e.message.contains(msg) => Some(format!(
                "`{src}`: got {} at {}, want `{msg}` at {offset}",
                e.message, e.offset
            )),
            Err(_) => None,
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn placeholder_resolve_for_extraction_and_display() {
    let f = with(|f| {
        f.status = Some(201);
        f.response_time = Some(Duration::from_millis(250));
        f.connected = Some(true);
        f.body = Some(br#"{"auth":{"token":"abc","id":7},"price":12.5,"nul":null}"#.to_vec());
        f.headers = vec![("location".into(), "/orders/1".into())];
    });
    let cases = [
        ("[BODY].auth.token", Some(json!("abc"))),
        ("[BODY].auth.id", Some(json!(7))),
        ("[BODY].auth", Some(json!({"token": "abc", "id": 7}))),
        ("[BODY].price", Some(json!(12.5))),
        ("[STATUS]", Some(json!(201))),
        ("[RESPONSE_TIME]", Some(json!(250))),
        ("[CONNECTED]", Some(json!(true))),
        ("[HEADERS].Location", Some(json!("/orders/1"))),
        ("[BODY].missing", None),
        ("[BODY].nul", None),
        ("[IP]", None),
    ];
    for (src, want) in cases {
        assert_eq!(Placeholder::parse(src).unwrap().resolve(&f), want, "{src}");
    }
    let whole = Placeholder::parse("[BODY]").unwrap().resolve(&f).unwrap();
    assert!(whole.as_str().unwrap().starts_with(r#"{"auth""#));

    for src in [
        "[STATUS]",
        "[BODY]",
        "[BODY].a.b[0]",
        "[BODY][0].x",
        "[BODY].a[1][2]",
        "[HEADERS].Content-Type",
        "[MESSAGE].type",
        "[MESSAGES_RECEIVED]",
        "[DNS_RCODE]",
    ] {
        let p = Placeholder::parse(src).unwrap();
        assert_eq!(p.to_string(), src);
        assert_eq!(Placeholder::parse(&p.to_string()).unwrap(), p);
    }
    assert_eq!(
        Placeholder::parse("[HEADER].etag").unwrap().to_string(),
        "[HEADERS].etag"
    );
    for bad in ["", "[BODY] ", "BODY", "[BODY].", "[STATSU]"] {
        assert!(Placeholder::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn odd_inputs_never_panic() {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "==",
        "<",
        "< <",
        "[",
        "]",
        "[[[",
        "(((",
        ")))",
        "len(",
        "len()",
        "any()",
        "pat()",
        "matches()",
        "[BODY].",
        "[BODY][",
        "[BODY][99999999999999999999999] == 1",
        "{{",
        "}}",
        "{{ }} == {{ }}",
        "é == é",
        "[BÖDY] == 1",
        "😀 == [STATUS]",
        "[BODY].ключ == значение",
        "\0 == \0",
        "[STATUS] == \u{202e}",
        "[BODY] == matches(((((((((((",
        "len(len([BODY])) == 1",
        "[BODY] == pat(*(*)",
        ") == (",
        "[BODY] == any(,)",
        "[]  == []",
        "[1,2] == [BODY]",
        "[BODY] == -",
        "[BODY] > -",
        "[BODY] > 0x",
        "[BODY] > 1e999",
        "[BODY] < 1.5.5h",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    inputs.push("x".repeat(200_000));
    inputs.push(format!("[BODY].{}a == 1", "a.".repeat(20_000)));
    inputs.push(format!("[BODY] == pat({})", "*a".repeat(5_000)));
    inputs.push(format!("[BODY] == matches({})", "(".repeat(1_000)));
    inputs.push("len(".repeat(5_000));
    inputs.push(format!("[{}] == 1", "A".repeat(100_000)));
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff, 0xfe, b'{'],
        "[".repeat(100_000).into_bytes(),
        r#"{"a":[1,{"b":null}],"é":"ü"}"#.as_bytes().to_vec(),
        "a".repeat(1_000_000).into_bytes(),
    ];
    for src in &inputs {
        match Condition::parse(src) {
            Err(e) => {
                assert!(
                    e.offset <= src.len() && src.is_char_boundary(e.offset),
                    "{src:.40}: {e:?}"
                );
                assert!(e.message.len() < 400, "{src:.40}: message too long");
            }
            Ok(_) => {
                for b in &bodies {
                    let f = with(|f| {
                        f.body = Some(b.clone());
                        f.message = Some(String::from_utf8_lossy(b).into());
                    });
                    let o = eval(src, &f, &[]);
                    assert!(o.actual.chars().count() <= 220, "{src:.40}");
                }
            }
        }
    }
}

/// Issue #19: a credential header's value is never an actual, and a long value is redacted
/// before it is cut to 200 characters.
#[test]
fn actual_hides_credential_headers_and_redacts_before_cutting() {
    let facts = with(|f| {
        f.headers = vec![
            ("set-cookie".into(), "session=abc123def456".into()),
            ("x-plain".into(), "visible".into()),
        ];
    });
    let outcome = eval("[HEADERS].set-cookie == nope", &facts, &[]);
    assert_eq!(outcome.actual, "***");
    let outcome = eval("[HEADERS].x-plain == [HEADERS].set-cookie", &facts, &[]);
    assert_eq!(outcome.actual, "visible vs ***");

    let secret = "0123456789abcdef";
    let text = format!("{}{secret}{}", "x".repeat(190), "y".repeat(40));
    let redactor = Redactor::default();
    redactor.register(secret);
    let vars = BTreeMap::new();
    let no_secrets = MapSecrets::new(&[]);
    let scope = Scope::at_fixed_time(&vars, &no_secrets, &redactor);
    let outcome = Condition::parse("[BODY] == nope")
        .unwrap()
        .evaluate(&body(&text), &scope);
    assert!(
        outcome.actual.contains("x***y") && !outcome.actual.contains("0123"),
        "{}",
        outcome.actual
    );
}
