//! `waymark serve`: the real binary, scheduling `every: 1s` journeys against a test server,
//! storing runs in SQLite and answering the API; hot reload, signals and crash recovery.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use waymark::store::Store;

use crate::support::TestServer;
use crate::support::serve::{
    Serve, TOKEN, client, closed_port, db_url, eventually, journey, setup,
};

fn promtool() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("promtool"))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stores_runs_answers_the_api_and_stops_cleanly_on_sigterm() {
    let srv = TestServer::start().await;
    let dir = setup(&[("ping.yaml", journey("ping", &format!("{}/json", srv.base)))]);
    let serve = Serve::start(dir.path(), 1);

    assert_eq!(serve.get("/healthz").await.0, 200);
    assert_eq!(serve.get("/readyz").await.0, 200);
    let ids = eventually(
        "two stored runs",
        &serve,
        Duration::from_secs(10),
        || async {
            let ids = serve.run_ids("ping").await;
            (ids.len() >= 2).then_some(ids)
        },
    )
    .await;

    let run = serve.json(&format!("/api/v1/runs/{}", ids[0])).await;
    assert_eq!(run["journey"], "ping");
    assert_eq!(run["outcome"], "passed", "{run}");
    assert_eq!(run["steps"][0]["name"], "fetch");
    assert_eq!(run["steps"][0]["status"], "passed");
    assert_eq!(run["journey_sha256"].as_str().unwrap().len(), 64);

    let list = serve.journeys().await;
    let j = &list["journeys"][0];
    assert_eq!(j["name"], "ping");
    assert_eq!(j["schedule"], "every 1s");
    assert_eq!(j["owner"], "team-test");
    assert_eq!(j["version"], run["journey_sha256"]);
    assert!(j["last_run"]["run_id"].is_string(), "{list}");
    assert_eq!(list["problems"], serde_json::json!([]));

    let (status, body) = serve
        .get(&format!("/api/v1/runs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");

    // The manual trigger.
    let trigger = format!("{}/api/v1/journeys/ping/run", serve.base);
    let res = client().post(&trigger).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = client()
        .post(&trigger)
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = client()
        .post(format!("{}/api/v1/journeys/nope/run", serve.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    // 409 while a scheduled run of `ping` is in progress (runs never overlap): try again.
    eventually(
        "a manual run accepted",
        &serve,
        Duration::from_secs(5),
        || async {
            let res = client()
                .post(&trigger)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            match res.status().as_u16() {
                202 => Some(()),
                409 => None,
                other => panic!("trigger answered {other}"),
            }
        },
    )
    .await;

    // Metrics, checked by Prometheus's own parser when it is installed.
    let (status, metrics) = serve.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("waymark_runs_total{journey=\"ping\",outcome=\"passed\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "waymark_step_duration_seconds_count{journey=\"ping\",step=\"fetch\",kind=\"http\"}"
    ));
    assert!(
        metrics.contains("waymark_scheduler_journeys 1"),
        "{metrics}"
    );
    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "promtool: {report}\n{metrics}");
    } else {
        eprintln!("promtool not installed: /metrics not checked by Prometheus's parser");
    }

    let reported = serve.run_ids("ping").await;
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));

    let store = Store::connect(&db_url(dir.path())).await.unwrap();
    let stored = store.runs().recent_runs("ping", 500).await.unwrap();
    for id in &reported {
        assert!(
            stored.iter().any(|r| r.run_id.to_string() == *id),
            "{id} lost"
        );
    }
    // Runs finished after the last listing (and the manual one) were flushed too.
    assert!(
        stored.len() > reported.len() || stored.len() >= 3,
        "{}",
        stored.len()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_adds_keeps_last_good_and_stops_journeys() {
    let srv = TestServer::start().await;
    let a_yaml = journey("a", &format!("{}/json", srv.base));
    let dir = setup(&[("a.yaml", a_yaml.clone())]);
    let journeys = dir.path().join("journeys");
    let serve = Serve::start(dir.path(), 1);
    eventually("a runs", &serve, Duration::from_secs(10), || async {
        (!serve.run_ids("a").await.is_empty()).then_some(())
    })
    .await;
    let version_a = serve.journeys().await["journeys"][0]["version"].clone();

    // Added: listed and running within a few seconds.
    std::fs::write(
        journeys.join("b.yaml"),
        journey("b", &format!("{}/status/200", srv.base)),
    )
    .unwrap();
    eventually("b runs", &serve, Duration::from_secs(8), || async {
        (!serve.run_ids("b").await.is_empty()).then_some(())
    })
    .await;
    let names: Vec<Value> = serve.journeys().await["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].clone())
        .collect();
    assert_eq!(names, ["a", "b"]);

    // Broken: the problem is listed with its place, the last good `a` keeps running.
    std::fs::write(
        journeys.join("a.yaml"),
        a_yaml.replace("url:", "metod: GET, url:"),
    )
    .unwrap();
    let problems = eventually("a problem", &serve, Duration::from_secs(8), || async {
        let p = serve.journeys().await["problems"].clone();
        (!p.as_array().unwrap().is_empty()).then_some(p)
    })
    .await;
    let problem = problems[0].as_str().unwrap();
    assert!(
        problem.contains("a.yaml:7:") && problem.contains("metod"),
        "{problems}"
    );
    let list = serve.journeys().await;
    assert_eq!(list["journeys"][0]["name"], "a");
    assert_eq!(list["journeys"][0]["version"], version_a);
    let before = serve.run_ids("a").await.len();
    eventually(
        "a keeps running",
        &serve,
        Duration::from_secs(5),
        || async { (serve.run_ids("a").await.len() >= before + 2).then_some(()) },
    )
    .await;

    // Deleted: gone from the list, no more runs.
    std::fs::remove_file(journeys.join("b.yaml")).unwrap();
    eventually("b removed", &serve, Duration::from_secs(8), || async {
        let list = serve.journeys().await;
        (list["journeys"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b_runs = serve.run_ids("b").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(serve.run_ids("b").await.len(), b_runs, "b still runs");
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_no_reported_run_and_restarts_cleanly() {
    let srv = TestServer::start().await;
    let dir = setup(&[
        ("fast.yaml", journey("fast", &format!("{}/json", srv.base))),
        (
            "slow.yaml",
            journey("slow", &format!("{}/slow?ms=2000", srv.base)),
        ),
    ]);
    let serve = Serve::start(dir.path(), 1);
    let (fast, slow) = eventually("runs of both", &serve, Duration::from_secs(15), || async {
        let (fast, slow) = (serve.run_ids("fast").await, serve.run_ids("slow").await);
        (fast.len() >= 3 && !slow.is_empty()).then_some((fast, slow))
    })
    .await;
    // Kill while a slow run is in flight (each takes 2 s; the next starts on the tick after).
    eventually(
        "a run in flight",
        &serve,
        Duration::from_secs(10),
        || async {
            let metrics = serve.get("/metrics").await.1;
            let in_flight = metrics
                .lines()
                .find_map(|l| l.strip_prefix("waymark_scheduler_runs_in_flight "))
                .and_then(|v| v.parse::<u64>().ok());
            (in_flight > Some(0)).then_some(())
        },
    )
    .await;
    let pid = serve.pid();
    assert_eq!(serve.stop(libc::SIGKILL).await, None, "pid {pid}");

    let store = Store::connect(&db_url(dir.path())).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    for id in fast.iter().chain(&slow) {
        let run = store.runs().run(id.parse().unwrap()).await.unwrap();
        assert!(run.is_some(), "reported run {id} lost");
    }
    store.close().await;

    let serve = Serve::start(dir.path(), 2);
    assert_eq!(serve.get("/readyz").await.0, 200);
    // On SQLite the restarted node leads (so it alerts) at its first beat, without waiting
    // the 15 s for the lease its killed life held.
    eventually(
        "the restarted node leads",
        &serve,
        Duration::from_secs(3),
        || async {
            let nodes = serve.json("/api/v1/nodes").await;
            nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["this"] == true && n["leader"] == true)
                .then_some(())
        },
    )
    .await;
    let after = serve.run_ids("fast").await;
    for id in &fast {
        assert!(after.contains(id), "{id} missing after restart");
    }
    eventually(
        "new runs after restart",
        &serve,
        Duration::from_secs(10),
        || async { (serve.run_ids("fast").await.len() > after.len()).then_some(()) },
    )
    .await;
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
}

#[tokio::test]
async fn service_log_has_state_changes_not_a_line_per_run_and_no_colour_in_a_file() {
    let srv = TestServer::start().await;
    let down = format!("http://127.0.0.1:{}/", closed_port());
    let dir = setup(&[
        ("ping.yaml", journey("ping", &format!("{}/json", srv.base))),
        ("down.yaml", journey("down", &down)),
    ]);
    let serve = Serve::start(dir.path(), 1);
    eventually(
        "three runs of each",
        &serve,
        Duration::from_secs(15),
        || async {
            (serve.run_ids("ping").await.len() >= 3 && serve.run_ids("down").await.len() >= 3)
                .then_some(())
        },
    )
    .await;
    let log = serve.log();
    let changes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("journey outcome changed"))
        .collect();
    assert_eq!(changes.len(), 1, "{log}");
    assert!(
        changes[0].contains("journey=down") && changes[0].contains("outcome=Failed"),
        "{log}"
    );
    assert!(
        !log.contains("run finished"),
        "a line per run at INFO:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
}

#[tokio::test]
async fn migrate_applies_migrations_and_bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = db_url(dir.path());
    let run = |url: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_waymark"))
                .arg("migrate")
                .env("WAYMARK_DATABASE_URL", url)
                .output()
                .unwrap()
        })
    };
    let out = run(url.clone()).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    assert!(store.runs().journeys().await.unwrap().is_empty());
    store.close().await;

    let out = run("mysql://localhost/x".into()).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}

/// A run of `journey` whose single step `fetch` passed in `latency_ms`, at `at`.
fn past_run(
    journey: &str,
    at: chrono::DateTime<chrono::Utc>,
    latency_ms: f64,
) -> waymark::store::RunRecord {
    use waymark::run::testkit::{run, step};
    waymark::store::RunRecord {
        result: run(journey)
            .location("local")
            .at(at)
            .finished_at(at + chrono::Duration::milliseconds(latency_ms as i64))
            .duration_ms(latency_ms)
            .step(step("fetch").ms(latency_ms))
            .build(),
        planned_at: at,
        scheduling_lag: Duration::ZERO,
        journey_sha256: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warms_baselines_from_rollups_and_ends_a_resumed_anomaly_with_normal_runs() {
    use waymark::baseline::SeriesKey;
    use waymark::baseline::{DetectorKind, Episode};

    let srv = TestServer::start().await;
    // Local answers take a millisecond or two, whatever the history says: only changes of
    // 5 ms or more matter here (the option for steps this fast).
    let yaml = format!(
        "{}    anomaly: {{ min_delta: 5ms }}\n",
        journey("steady", &format!("{}/json", srv.base))
    );
    let dir = setup(&[("steady.yaml", yaml)]);
    // Three days of history (one run every 10 minutes, ~1 ms like the local server answers;
    // the third day teaches the detector how far runs deviate) and an episode left open by a
    // previous process.
    let store = Store::connect(&db_url(dir.path())).await.unwrap();
    let now = chrono::Utc::now();
    let history: Vec<_> = (1..=432)
        .map(|i| {
            past_run(
                "steady",
                now - chrono::Duration::minutes(10 * i),
                1.0 + (i % 5) as f64 * 0.1,
            )
        })
        .collect();
    store
        .runs()
        .record_runs(&history, chrono::Utc::now())
        .await
        .unwrap();
    let series = SeriesKey {
        journey: "steady".into(),
        step: "fetch".into(),
        location: "local".into(),
    };
    let started = (now - chrono::Duration::minutes(30)).timestamp_millis();
    let episode = Episode {
        detector: DetectorKind::Latency,
        start_ms: started,
        detected_ms: started + 180_000,
        end_ms: None,
        peak_score: 12.0,
        peak_value: 40.0,
        baseline: 1.2,
        anomalous_runs: 3,
    };
    let id = store
        .episodes()
        .open_episode(&series, "medium", &episode)
        .await
        .unwrap();
    store.close().await;

    let serve = Serve::start(dir.path(), 1);
    let listed = serve.json("/api/v1/anomalies?open=true").await;
    assert_eq!(listed["anomalies"][0]["id"], id, "{listed}");
    // Five normal runs (every 1 s) end the resumed episode.
    let ended = eventually(
        "the resumed episode to end",
        &serve,
        Duration::from_secs(20),
        || async {
            let v = serve.json("/api/v1/anomalies?journey=steady").await;
            let e = v["anomalies"][0].clone();
            (e["open"] == false).then_some(e)
        },
    )
    .await;
    assert_eq!(ended["id"], id);
    assert_eq!(ended["step"], "fetch");
    assert_eq!(ended["detector"], "latency");
    assert!(
        ended["end"].as_str().unwrap() > ended["start"].as_str().unwrap(),
        "{ended}"
    );
    assert!(
        serve.json("/api/v1/anomalies?open=true").await["anomalies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        serve.log().contains("anomaly baselines warmed up"),
        "{}",
        serve.log()
    );
    assert_eq!(serve.get("/api/v1/anomalies?open=maybe").await.0, 400);
    // The open episode made the journey degraded: an incident that its end resolved, told to
    // the built-in log channel (no channel is configured).
    let incident = eventually(
        "the degradation resolved",
        &serve,
        Duration::from_secs(10),
        || async {
            let v = serve.json("/api/v1/incidents?journey=steady").await;
            let i = v["incidents"][0].clone();
            (i["state"] == "resolved").then_some(i)
        },
    )
    .await;
    assert_eq!(incident["severity"], "degraded");
    assert_eq!(incident["cause"]["anomaly"]["episode_id"], id);
    assert_eq!(incident["channels"], serde_json::json!(["log"]));
    let log = serve.log();
    assert!(
        log.contains("[DEGRADED] steady: step \"fetch\" is slower than its baseline"),
        "{log}"
    );
    assert!(log.contains("[RESOLVED] steady: resolved"), "{log}");
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
}
