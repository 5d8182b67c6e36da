//! The `waymark` binary: validate and run, output formats, exit codes, secrets.

use std::path::Path;
use std::process::Output;

use crate::support::TestServer;

const SECRET: &str = "s3cr3t-t0ken-value-91f2";

async fn waymark(args: &[&str], dir: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(&args)
            .current_dir(dir)
            .env("WAYMARK_SECRET_API_KEY", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn validate_reports_every_problem_with_positions_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let journeys = dir.path().join("journeys");
    std::fs::create_dir(&journeys).unwrap();
    std::fs::write(
        journeys.join("good.yaml"),
        "name: good\nsteps:\n  - name: a\n    http: { url: \"http://127.0.0.1:1/\" }\n",
    )
    .unwrap();
    std::fs::write(
        journeys.join("bad.yaml"),
        "name: bad\nsteps:\n  - name: a\n    http: { url: \"http://127.0.0.1:1/\", metod: GET }\n    conditions: [\"[STATUS] ==\"]\n",
    )
    .unwrap();
    let o = waymark(&["validate"], dir.path()).await;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("journeys/bad.yaml:4:41: unknown key `metod`"),
        "{out}"
    );
    assert!(out.contains("journeys/bad.yaml:5:"), "{out}");
    assert!(out.contains("1 journey(s) valid"), "{out}");

    std::fs::remove_file(journeys.join("bad.yaml")).unwrap();
    let o = waymark(&["validate"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[tokio::test]
async fn shipped_examples_are_valid() {
    let o = waymark(
        &["validate", "journeys"],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("4 journey(s) valid"));
}

fn write_journey(dir: &Path, body: &str) {
    std::fs::write(dir.join("j.yaml"), body).unwrap();
}

#[tokio::test]
async fn run_exit_codes_follow_the_outcome() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let var = format!("base={}", srv.base);
    write_journey(
        dir.path(),
        "name: ok\nsteps:\n  - name: a\n    http: { url: \"{{ base }}/json\" }\n",
    );
    let o = waymark(&["run", "j.yaml", "--var", &var], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("ok PASSED"), "{}", stdout(&o));

    write_journey(
        dir.path(),
        "name: ko\nsteps:\n  - name: a\n    http: { url: \"{{ base }}/status/503\" }\n",
    );
    let o = waymark(&["run", "j.yaml", "--var", &var], dir.path()).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("http_status"), "{}", stdout(&o));

    // Not valid: `base` is not defined without --var.
    let o = waymark(&["run", "j.yaml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("j.yaml:4:"), "{}", stdout(&o));

    // A missing secret is the journey's problem, not the target's.
    write_journey(
        dir.path(),
        "name: s\nsteps:\n  - name: a\n    http: { url: \"{{ base }}/json?k={{ secret.NOT_SET }}\" }\n",
    );
    let o = waymark(&["run", "j.yaml", "--var", &var], dir.path()).await;
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));

    let o = waymark(&["run", "no-such-journey"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn run_finds_journeys_by_name() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journeys")).unwrap();
    std::fs::write(
        dir.path().join("journeys/x.yaml"),
        "name: by-name\nsteps:\n  - name: a\n    http: { url: \"{{ base }}/json\" }\n",
    )
    .unwrap();
    let var = format!("base={}", srv.base);
    let o = waymark(
        &["run", "by-name", "--var", &var, "--format", "json"],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["journey"], "by-name");
    assert_eq!(v["outcome"], "passed");
    assert_eq!(v["steps"][0]["status"], "passed");
    assert_eq!(v["steps"][0]["response"]["status"], 200);
    assert!(v["steps"][0]["timings"]["total"].as_f64().unwrap() > 0.0);
    assert!(v["run_id"].as_str().unwrap().len() == 36);
}

/// The target echoes the secret back in its body and the condition that fails shows the body:
/// the secret must still appear nowhere, in either format.
#[tokio::test]
async fn secrets_never_reach_the_output() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_journey(
        dir.path(),
        r#"name: secret
steps:
  - name: leaky target
    http:
      method: POST
      url: "{{ base }}/echo?key={{ secret.API_KEY }}"
      headers: { X-Api-Key: "{{ secret.API_KEY }}", X-Other: "{{ secret.API_KEY }}" }
      body: "token={{ secret.API_KEY }}"
    conditions: ["[BODY] == pat(*nothing like this*)", "[BODY].body == x"]
    extract: { never: "[BODY].missing" }
"#,
    );
    let var = format!("base={}", srv.base);
    for format in ["text", "json"] {
        let o = waymark(
            &["run", "j.yaml", "--var", &var, "--format", format],
            dir.path(),
        )
        .await;
        let out = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            !out.contains(SECRET),
            "secret leaked in {format} output:\n{out}"
        );
        assert!(
            out.contains("***"),
            "{format} output shows no redaction marker:\n{out}"
        );
    }
}

#[tokio::test]
async fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let o = waymark(&["--version"], dir.path()).await;
    assert!(stdout(&o).starts_with("waymark "), "{}", stdout(&o));
    let o = waymark(&["--help"], dir.path()).await;
    assert!(
        stdout(&o).contains("waymark run checkout --var"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test]
async fn run_prints_a_summary_per_dependency() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_journey(
        dir.path(),
        r#"name: deps
steps:
  - name: own api
    http: { url: "{{ base }}/json" }
  - name: charge
    dependency: payments
    http: { url: "{{ base }}/json" }
  - name: geocode
    dependency: maps
    http: { url: "{{ base }}/status/502" }
  - name: refund
    dependency: payments
    always_run: true
    http: { url: "{{ base }}/json" }
"#,
    );
    let var = format!("base={}", srv.base);
    let o = waymark(&["run", "j.yaml", "--var", &var], dir.path()).await;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let deps = out
        .split("dependencies:")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        deps.contains("maps      FAILING  0/1 step(s) passed"),
        "{out}"
    );
    assert!(
        deps.contains("payments  healthy  2/2 step(s) passed"),
        "{out}"
    );
    let o = waymark(
        &["run", "j.yaml", "--var", &var, "--format", "json"],
        dir.path(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["steps"][1]["dependency"], "payments");
    assert!(v["steps"][0].get("dependency").is_none());
}

/// Issue #19: `waymark digest` without a database created `waymark.db` in the working
/// directory and printed a "never ran" digest with exit 0.
#[tokio::test]
async fn digest_never_creates_a_database_and_fails_on_a_missing_or_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journeys")).unwrap();
    std::fs::write(
        dir.path().join("journeys/shop.yaml"),
        "name: shop\nowner: shop-team\nsteps:\n  - name: home\n    http: { url: \"http://127.0.0.1:9/\" }\n",
    )
    .unwrap();
    let digest = |db: Option<String>| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_waymark"));
            c.args(["digest", "--owner", "shop-team"])
                .current_dir(dir)
                .env_remove("WAYMARK_DATABASE_URL");
            if let Some(url) = db {
                c.env("WAYMARK_DATABASE_URL", url);
            }
            c.output().unwrap()
        })
    };
    let out = digest(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no database at `sqlite://waymark.db`"),
        "{stderr}"
    );
    assert!(stdout(&out).is_empty(), "no digest printed");
    assert!(
        !dir.path().join("waymark.db").exists(),
        "no database created"
    );

    // A store that exists but holds no run is no better.
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let migrate = {
        let url = url.clone();
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
                .arg("migrate")
                .current_dir(dir)
                .env("WAYMARK_DATABASE_URL", url)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(migrate.status.success(), "{migrate:?}");
    let out = digest(Some(url)).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("holds no runs yet"), "{stderr}");
}

/// Issue #19: ANSI escapes and bidi controls in journey names and messages reached the
/// terminal raw.
#[tokio::test]
async fn control_characters_in_names_and_messages_are_escaped_in_text_output() {
    let dir = tempfile::tempdir().unwrap();
    write_journey(
        dir.path(),
        "name: \"evil\\e[2J\\u202e\"\nsteps:\n  - name: \"step\\e[31m\"\n    wait: 0s\n    conditions: [\"\\e]0;title\\a == x\"]\n",
    );
    let o = waymark(&["run", "j.yaml"], dir.path()).await;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains(['\x1b', '\x07', '\u{202e}']), "{out:?}");
    assert!(out.contains("evil\\u{1b}[2J\\u{202e} FAILED"), "{out}");
    assert!(out.contains("step\\u{1b}[31m"), "{out}");
    assert!(out.contains("\\u{1b}]0;title\\u{7} == x"), "{out}");

    write_journey(
        dir.path(),
        "name: x\nsteps:\n  - name: s\n    \"\\e[2Jwait\": 0s\n",
    );
    let o = waymark(&["validate", "j.yaml"], dir.path()).await;
    let out = stdout(&o);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("unknown key `\\u{1b}[2Jwait`"), "{out}");
}

/// Issue #19: nesting 8,700 levels deep aborted `validate` (exit 134); a non-UTF-8 file was
/// reported at 1:1.
#[tokio::test]
async fn deep_nesting_and_invalid_utf8_are_positioned_problems_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    write_journey(dir.path(), &format!("{}1\n", "- ".repeat(8700)));
    let o = waymark(&["validate", "j.yaml"], dir.path()).await;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "j.yaml:1:129: YAML syntax error: lists and mappings nest deeper than 64 levels"
        ),
        "{out}"
    );

    std::fs::write(
        dir.path().join("j.yaml"),
        b"name: x\nsteps:\n  - name: caf\xe9\n",
    )
    .unwrap();
    let o = waymark(&["validate", "j.yaml"], dir.path()).await;
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("j.yaml:3:14: the file is not valid UTF-8"),
        "{out}"
    );
}
