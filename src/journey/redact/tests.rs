//! The redactor against the forms a secret takes on the way out: encoders of the `url` crate,
//! serde_json and a Python-style ASCII-only JSON escaper, HTML escaping, case changes, IDNA and
//! base64 inside a `Basic` credential, plus the rules for short values and cutting.

use proptest::prelude::*;

use super::*;

fn redactor(values: &[&str]) -> Redactor {
    let r = Redactor::default();
    for v in values {
        r.register(v);
    }
    r
}

#[test]
fn prefers_the_longest_value() {
    let r = redactor(&["abcd", "abcdefgh"]);
    assert_eq!(r.redact("xabcdefghx abcd"), "x***x ***");
}

#[test]
fn reviewer_examples_are_masked() {
    let r = redactor(&["hunter2 hunter2", "wmk/odd+&\"sec ret"]);
    assert_eq!(r.redact("?x=hunter2+hunter2"), "?x=***");
    assert_eq!(r.redact("q=wmk%2Fodd%2B%26%22sec+ret"), "q=***");
    assert_eq!(r.redact(r#"{"q":"wmk/odd+&\"sec ret"}"#), r#"{"q":"***"}"#);
    assert_eq!(r.redact("HUNTER2 HUNTER2"), "***");
}

#[test]
fn short_values_are_matched_verbatim_only() {
    let r = redactor(&["a b"]);
    assert_eq!(r.redact("a b A B a+b a%20b"), "*** A B a+b a%20b");
}

#[test]
fn basic_credentials_are_masked_encoded_and_decoded() {
    let r = Redactor::default();
    // "ada:s3cr3t pw" in base64.
    let token = base64::engine::general_purpose::STANDARD.encode("ada:s3cr3t pw");
    r.register_credential(&format!("Basic {token}"));
    assert_eq!(r.redact(&format!("auth={token}")), "auth=***");
    assert_eq!(r.redact("echo ada:s3cr3t pw"), "echo ***");
    assert_eq!(r.redact("pw is s3cr3t pw"), "pw is ***");
}

#[test]
fn redact_cut_redacts_before_cutting() {
    let secret = "0123456789abcdef";
    let r = redactor(&[secret]);
    let text = format!("{}{secret}tail", "x".repeat(190));
    let cut = r.redact_cut(&text, 200);
    assert!(!cut.contains("0123456789abcde"), "{cut}");
    assert!(cut.contains("***"), "{cut}");
    assert_eq!(r.redact_cut("short", 200), "short");
    assert_eq!(r.redact_cut("abcdef", 3), "abc…");
}

#[test]
fn a_redactor_without_values_changes_nothing() {
    let r = Redactor::default();
    assert!(r.is_empty());
    assert_eq!(r.redact("a%20b \\\"x"), "a%20b \\\"x");
}

/// ASCII printable characters (punctuation, spaces, letters, digits) and a few non-ASCII ones,
/// including a character beyond the BMP.
pub(crate) fn secret_strategy() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        8 => proptest::char::range(' ', '~'),
        1 => proptest::sample::select(vec!['é', 'ü', 'ß', 'Ω', 'ж', '日', '€', '😀']),
    ];
    proptest::collection::vec(chars, 4..=64).prop_map(|cs| cs.into_iter().collect())
}

/// JSON string escaping as Python's `json.dumps` does by default: ASCII only, `\uXXXX` with
/// lower-case hex (surrogate pairs beyond the BMP); `slash` also escapes `/` as `\/`.
fn json_ascii(s: &str, slash: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// Every form of `s` the redactor must mask on its own (the whole text becomes `***`).
fn encodings(s: &str) -> Vec<(&'static str, String)> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let mut out = vec![("raw", s.to_string())];
    let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    out.push(("form", form.clone()));
    out.push(("form, lower-case hex", lower_hex(&form)));
    let all = utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    out.push(("percent", all.clone()));
    out.push(("percent, lower-case hex", lower_hex(&all)));
    let mut u = url::Url::parse("http://h/").unwrap();
    u.path_segments_mut().unwrap().clear().push(s);
    out.push(("url path segment", u.path()[1..].to_string()));
    let mut u = url::Url::parse("http://h/").unwrap();
    u.query_pairs_mut().append_pair("q", s);
    out.push(("url query pair", u.query().unwrap()[2..].to_string()));
    let mut u = url::Url::parse("http://h/").unwrap();
    u.set_query(Some(s));
    out.push(("url query", u.query().unwrap().to_string()));
    let mut u = url::Url::parse("http://h/").unwrap();
    u.set_fragment(Some(s));
    out.push(("url fragment", u.fragment().unwrap().to_string()));
    let json = serde_json::to_string(s).unwrap();
    out.push(("serde_json", json[1..json.len() - 1].to_string()));
    out.push(("json ascii", json_ascii(s, false)));
    out.push(("json ascii, \\/", json_ascii(s, true)));
    out.push((
        "json ascii, upper-case hex",
        json_ascii(s, false).to_uppercase(),
    ));
    out.push(("html", html(s)));
    out.push(("html of json", html(&json[1..json.len() - 1])));
    out.push(("lower-case", s.to_ascii_lowercase()));
    out.push(("upper-case", s.to_ascii_uppercase()));
    out.push(("unicode lower-case", s.to_lowercase()));
    out.push(("unicode upper-case", s.to_uppercase()));
    out
}

fn lower_hex(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push('%');
        out.push_str(&rest[i + 1..i + 3].to_ascii_lowercase());
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn secret_never_leaks_in_any_encoding(secret in secret_strategy()) {
        let r = redactor(&[&secret]);
        for (name, form) in encodings(&secret) {
            let out = r.redact(&format!("<{form}>"));
            prop_assert_eq!(&out, "<***>", "{} form `{}` of `{}`", name, form, secret);
        }
        if let Ok(ascii) = idna::domain_to_ascii(&secret)
            && ascii != secret
            && ascii.chars().count() >= MIN_VARIANT_CHARS
        {
            let out = r.redact(&format!("name {ascii} timed out"));
            prop_assert!(!out.contains(&ascii), "idna `{}` of `{}`: {}", ascii, secret, out);
        }
    }

    #[test]
    fn secret_in_a_basic_credential_never_leaks_in_base64(
        secret in secret_strategy(),
        user in "[a-z]{1,12}",
    ) {
        let r = redactor(&[&secret]);
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        let out = r.redact(&token);
        // What may remain: the characters that also encode the user name and the last group.
        let keep = (user.len() + 1).div_ceil(3) * 4 + 4;
        prop_assert!(out.contains(REDACTED), "`{}` of `{}`: {}", token, secret, out);
        let left = out.replace(REDACTED, "");
        prop_assert!(left.len() <= keep, "`{}` of `{}`: {}", token, secret, out);
    }

    #[test]
    fn cutting_never_leaves_part_of_a_secret(
        secret in secret_strategy(),
        before in 150usize..220,
    ) {
        let r = redactor(&[&secret]);
        let text = format!("{}{secret}{}", "x".repeat(before), "y".repeat(50));
        // The marker itself (`***`) must not count as part of a secret made of `*`.
        let cut = r.redact_cut(&text, 200).replace(REDACTED, "\u{1}");
        let head: String = secret.chars().take(secret.chars().count().div_ceil(2)).collect();
        prop_assert!(!cut.contains(&head)
            || "x".repeat(before).contains(&head)
            || "y".repeat(50).contains(&head),
            "{}", cut);
    }
}
