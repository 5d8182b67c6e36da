//! `schemathesis` (PyPI, installed by scripts/test.sh) against `waymark serve`'s own OpenAPI
//! document: generated and mutated requests to every `/api/v1` operation, with the write
//! token, over data that exists (runs of a passing and a failing journey, an open incident, a
//! stored digest). Every check must pass: no server error, and every answer (status, content
//! type, body) as the document describes it.

use crate::support::serve::{Serve, TOKEN, active_incident, closed_port, db_url, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let closed = closed_port();
    let dir = setup(&[
        (
            "checkout.yaml",
            format!(
                "name: checkout\nowner: shop-team\nschedule: {{ every: 1s }}\nsteps:\n  - name: pay\n    \
                 timeout: 300ms\n    http: {{ url: \"http://127.0.0.1:{closed}/pay\" }}\n"
            ),
        ),
        (
            "health.yaml",
            "name: health\nschedule: { every: 1s }\nsteps:\n  - name: ping\n    wait: 5ms\n"
                .to_string(),
        ),
    ]);
    let serve = Serve::start(dir.path(), 0);
    active_incident(&serve).await;
    // A digest of what ran so far, stored as the digest cycle would.
    let store = waymark::store::Store::connect(&db_url(dir.path()))
        .await
        .unwrap();
    let checkout = waymark::run::testkit::journey_from(
        &std::fs::read_to_string(dir.path().join("journeys/checkout.yaml")).unwrap(),
        "checkout.yaml",
        &Default::default(),
    );
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(14);
    let digest = waymark::digest::compute::compute(&store, "shop-team", &[&checkout], from, to, to)
        .await
        .unwrap();
    store
        .digests()
        .save_digest(
            "shop-team",
            from,
            to,
            to,
            &serde_json::to_value(&digest).unwrap(),
        )
        .await
        .unwrap();
    store.close().await;

    let schema = format!("{}/api/v1/openapi.json", serve.base);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args([
                "run",
                &schema,
                "--checks",
                "all",
                "--max-time",
                "40",
                "--header",
            ])
            .arg(format!("Authorization: Bearer {TOKEN}"))
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis is not installed: run the suite with scripts/test.sh")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{report}\n{}",
        &stderr[stderr.floor_char_boundary(stderr.len().saturating_sub(4000))..]
    );
    // It did reach every operation.
    assert!(report.contains("16 selected / 16 total"), "{report}");
    assert!(
        !serve.log().contains("API request failed"),
        "{}",
        serve.log()
    );
}
