//! Loading reports every problem of a file at once, each at its line and column.

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> (PathBuf, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waymark.toml");
    std::fs::write(&path, text).unwrap();
    let env = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let loaded = Config::load(Some(&path), env);
    (path, loaded)
}

/// Each problem as `line:col: message`, in order.
fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    let (path, loaded) = load(text, env);
    let Err(e @ ConfigError::Invalid(_)) = loaded else {
        panic!("{loaded:?}")
    };
    let prefix = format!("{}:", path.display());
    e.to_string()
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect()
}

#[test]
fn three_independent_problems_are_reported_at_their_places() {
    let text = "\
listen = \"127.0.0.1:8080\"

[retention]
raw = \"30d\"
rollup = \"7d\"

[alerting.channels.p]
type = \"pagerduty\"
routing_key = \"${PD}\"

[[alerting.routes]]
channels = [\"p\", \"nope\"]
";
    assert_eq!(
        problems(text, &[]),
        [
            "5:1: retention.rollup must be at least retention.raw",
            "9:1: alerting.channels.p.routing_key: environment variable PD is not set",
            "12:18: alerting.routes[0] names channel `nope`, which is not defined",
        ]
    );
}

#[test]
fn type_errors_in_several_sections_and_semantic_problems_of_the_rest() {
    let text = "\
listen = 5
locatoin = \"x\"
[alerting]
dashboard_url = \"ftp://x\"
[alerting.channels.a]
type = \"slack\"
webhook = \"x\"
[alerting.channels.b]
type = \"slack\"
webhook_url = \"${NOPE}\"
[[alerting.routes]]
channels = [\"a\", \"zzz\"]
[[alerting.maintenance]]
name = \"m\"
start = \"2026-11-22T03:00:00Z\"
end = \"2026-11-22T02:00:00Z\"
[digest]
every = \"5m\"
channels = [\"a\"]
";
    let got = problems(text, &[("WAYMARK_CONCURRENCY", "x")]);
    let want = [
        "1:10: listen: invalid type: integer `5`, expected socket address",
        "2:1: locatoin: unknown field `locatoin`",
        "4:17: alerting.dashboard_url: not an http(s) URL",
        "5:1: alerting.channels.a: unknown field `webhook`, expected `webhook_url`",
        "10:1: alerting.channels.b.webhook_url: environment variable NOPE is not set",
        // `a` is broken, not undefined: only `zzz` is reported.
        "12:18: alerting.routes[0] names channel `zzz`, which is not defined",
        "16:1: alerting.maintenance[0].end: maintenance window `m`: end is before start",
        "18:1: digest.every must be a whole number of hours (`14d`, `7d`, `6h`)",
        "environment variable WAYMARK_CONCURRENCY: `x` is not a positive integer",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\nwanted {want}");
    }
}

#[test]
fn syntax_errors_are_all_reported_with_their_position() {
    let got = problems("a = \nb = 1\nc = [1\n", &[]);
    assert!(got.len() >= 2, "{got:#?}");
    assert!(got[0].starts_with("1:5: "), "{got:#?}");
    assert!(got.iter().any(|p| p.starts_with("3:")), "{got:#?}");
}

#[test]
fn values_from_the_environment_are_blamed_on_their_variable() {
    let (_, loaded) = load(
        "database_url = \"sqlite://x.db\"\n",
        &[
            ("WAYMARK_DATABASE_URL", "mysql://x"),
            ("WAYMARK_LISTEN", "nowhere"),
        ],
    );
    let e = loaded.unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(lines[0].starts_with("environment variable WAYMARK_LISTEN: `nowhere`"));
    assert_eq!(
        lines[1],
        "environment variable WAYMARK_DATABASE_URL: database_url must start with sqlite: or postgres://"
    );
}

#[test]
fn a_setting_the_file_does_not_hold_is_placed_at_its_section() {
    // `rollup` keeps its default (400 days): the problem is shown at its table's key.
    let got = problems("location = \"x\"\n[retention]\nraw = \"500d\"\n", &[]);
    assert_eq!(
        got,
        ["2:2: retention.rollup must be at least retention.raw"]
    );
}
