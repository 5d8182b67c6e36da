//! The dashboard and the public status page in a real browser: `waymark serve` with a failing
//! public journey (so an incident opens) and a healthy one, then headless Chromium driven by
//! `tests/e2e/dashboard.mjs` (playwright-core, installed by scripts/test.sh) logs in, opens the
//! overview, a journey, a run's waterfall, acknowledges the incident and views the status page.
//! Screenshots are kept in `target/test-artifacts/dashboard/`.

use std::path::Path;
use std::time::Duration;

use crate::support::serve::{
    Serve, active_incident, closed_port, dashboard_user, eventually, setup,
};

const PASSWORD: &str = "a long dashboard password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_browses_and_acknowledges_an_incident_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/e2e/node_modules/playwright-core").exists(),
        "playwright-core is not installed: run the suite with scripts/test.sh"
    );
    let closed = closed_port();
    let dir = setup(&[
        (
            "checkout.yaml",
            format!(
                "name: checkout\npublic: true\ngroup: Shop\nowner: shop-team\nschedule: {{ every: 1s }}\n\
                 steps:\n  - name: pay\n    timeout: 500ms\n    http: {{ url: \"http://127.0.0.1:{closed}/pay\" }}\n"
            ),
        ),
        (
            "internal.yaml",
            "name: internal\nschedule: { every: 1s }\nsteps:\n  - name: ping\n    wait: 5ms\n".to_string(),
        ),
        (
            "health.yaml",
            "name: health\npublic: true\nschedule: { every: 1s }\nsteps:\n  - name: ping\n    wait: 5ms\n".to_string(),
        ),
    ]);
    dashboard_user(dir.path(), "ada", PASSWORD);
    let serve = Serve::start(dir.path(), 0);
    let incident = active_incident(&serve).await;
    // A run of checkout and of health are stored by now; give the writer a moment for health.
    eventually(
        "runs of both journeys",
        &serve,
        Duration::from_secs(10),
        || async {
            let v = serve.json("/api/v1/journeys/health/runs").await;
            (!v["runs"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;

    let artifacts = root.join("target/test-artifacts/dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let (base, artifacts_env) = (serve.base.clone(), artifacts.clone());
    let script = root.join("tests/e2e/dashboard.mjs");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .env("BASE", base)
            .env("USERNAME", "ada")
            .env("PASSWORD", PASSWORD)
            .env("JOURNEY", "checkout")
            .env("INCIDENT", incident.to_string())
            .env("ARTIFACTS", artifacts_env)
            .output()
            .expect("node runs (scripts/test.sh installs it)")
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the browser checks failed:\n{report}\nlog:\n{}",
        serve.log()
    );
    assert!(report.contains("dashboard: every check passed"), "{report}");
    for shot in [
        "status-page",
        "incident-acknowledged",
        "overview",
        "journey",
        "run",
    ] {
        let png = std::fs::read(artifacts.join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot}.png");
    }
    // The browser's acknowledgement reached the incident engine.
    let v = serve.json(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(v["incident"]["state"], "acknowledged");
    assert_eq!(v["incident"]["acknowledged_by"], "ada");
}
