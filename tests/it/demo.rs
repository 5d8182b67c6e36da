//! `waymark demo --chaos` as a newcomer starts it, with a compressed schedule (every journey
//! every second, each chaos phase 12 s) and a webhook channel to a local receiver: the
//! journeys pass before any fault, the slow search becomes a latency anomaly and a degraded
//! incident, the failing payments a failure incident, both notified and both resolved once
//! the fault is lifted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::alerting::peers::Receiver;

struct Demo {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let res = reqwest::get(&url).await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` every 500 ms until it gives a value or `within` passes.
    async fn until<T, F, Fut>(&self, what: &str, within: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {within:?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn incidents(&self) -> Vec<Value> {
        let v = self.get("/api/v1/incidents?journey=shop-checkout").await;
        v["incidents"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_faults_become_anomalies_and_incidents_that_are_notified_and_resolve() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journeys = dir.path().join("journeys");
    std::fs::create_dir(&journeys).unwrap();
    for entry in std::fs::read_dir("journeys").unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, journeys.join(path.file_name().unwrap())).unwrap();
    }
    // Incidents a few seconds apart stay separate incidents (the default reopens for 30 min).
    std::fs::write(
        dir.path().join("waymark.toml"),
        format!(
            "[alerting]\nreopen_within = \"3s\"\n\
             [alerting.channels.hook]\ntype = \"webhook\"\nurl = \"{}/hook\"\n\
             secret = \"demo-webhook-secret\"\n",
            hook.base
        ),
    )
    .unwrap();
    let log = dir.path().join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["demo", "--chaos", "--every", "1s", "--chaos-phase", "12s"])
        .arg("--config")
        .arg(dir.path().join("waymark.toml"))
        .current_dir(dir.path())
        .env(
            "WAYMARK_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("w.db").display()),
        )
        .env("WAYMARK_LISTEN", "127.0.0.1:0")
        .env("WAYMARK_LOG", "info")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let mut base = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.trim().strip_prefix("dashboard:") {
            base = Some(url.trim().trim_end_matches("/app").to_string());
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let demo = Demo {
        base: base.unwrap_or_else(|| {
            panic!(
                "no dashboard line in:\n{banner}\nlog:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        }),
        child,
        log,
    };
    assert!(
        banner.contains("login:       demo / waymark-demo"),
        "{banner}"
    );
    assert!(banner.contains("simulated runs"), "{banner}");

    // Calm first: live runs (they have a trace id; seeded history has none) pass.
    demo.until("a live passing run", Duration::from_secs(10), || async {
        let v = demo
            .get("/api/v1/journeys/shop-checkout/runs?limit=5")
            .await;
        v["runs"]
            .as_array()?
            .iter()
            .find(|r| r["trace_id"] != "" && r["outcome"] == "passed")
            .map(|_| ())
    })
    .await;
    assert!(demo.incidents().await.is_empty(), "no incident while calm");
    // The status page shows the shipped journeys, grouped, with their simulated history.
    let status = demo.get("/status.json").await;
    let groups: Vec<&str> = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["Shop", "Third parties"], "{status}");
    let checkout = &status["groups"][0]["journeys"][0];
    assert_eq!(checkout["name"], "shop-checkout", "{status}");
    assert!(checkout["uptime_30d"].as_f64().unwrap() > 99.0, "{status}");

    // 12–24 s: catalogue search 300 ms slower.
    let episode = demo
        .until(
            "a latency anomaly on the search",
            Duration::from_secs(30),
            || async {
                let v = demo.get("/api/v1/anomalies?journey=shop-checkout").await;
                v["anomalies"]
                    .as_array()?
                    .iter()
                    .find(|a| a["step"] == "search catalogue" && a["detector"] == "latency")
                    .cloned()
            },
        )
        .await;
    assert!(
        episode["peak"]["value"].as_f64().unwrap() >= 300.0,
        "{episode}"
    );
    let degraded = demo
        .until("a degraded incident", Duration::from_secs(10), || async {
            demo.incidents()
                .await
                .into_iter()
                .find(|i| i["severity"] == "degraded")
        })
        .await;
    assert_eq!(degraded["cause"]["anomaly"]["step"], "search catalogue");

    // 36–48 s: the payment provider refuses most charges.
    let failure = demo
        .until("a failure incident", Duration::from_secs(40), || async {
            demo.incidents()
                .await
                .into_iter()
                .find(|i| i["severity"] == "failure")
        })
        .await;
    assert_eq!(failure["cause"]["step"], "place order", "{failure}");
    assert_eq!(failure["cause"]["dependency"], "payments", "{failure}");

    // Both resolve once their fault is lifted.
    demo.until(
        "both incidents resolved",
        Duration::from_secs(30),
        || async {
            let all = demo.incidents().await;
            let resolved = |id: &Value| {
                all.iter()
                    .any(|i| &i["id"] == id && i["state"] == "resolved")
            };
            (resolved(&degraded["id"]) && resolved(&failure["id"])).then_some(())
        },
    )
    .await;

    // And the webhook heard each open and each resolution.
    let notified = demo
        .until(
            "four webhook notifications",
            Duration::from_secs(15),
            || async {
                let got: Vec<(i64, String)> = hook
                    .received("/hook")
                    .iter()
                    .map(|r| r.json())
                    .map(|n| {
                        (
                            n["incident"]["id"].as_i64().unwrap(),
                            n["kind"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                (got.iter().filter(|(_, k)| k == "resolved").count() >= 2).then_some(got)
            },
        )
        .await;
    for incident in [&degraded, &failure] {
        let id = incident["id"].as_i64().unwrap();
        for kind in ["triggered", "resolved"] {
            assert!(
                notified.contains(&(id, kind.to_string())),
                "{kind} of incident {id}: {notified:?}"
            );
        }
    }
}
