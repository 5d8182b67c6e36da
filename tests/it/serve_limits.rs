//! Issue #19 against the real `waymark serve`: journey files that used to take the service
//! down (a 3,000-deep JSON body that passed validation, YAML nested 8,700 deep) are reported
//! as problems while the service stays up and keeps running its other journeys.

use std::time::Duration;

use crate::support::TestServer;
use crate::support::serve::{Serve, eventually, journey, setup};

fn deep_body(depth: usize) -> String {
    format!(
        "name: deep-body\nschedule: {{ every: 1s }}\nsteps:\n  - name: post\n    http:\n      method: POST\n      url: http://127.0.0.1:9/\n      json:\n        {}1\n",
        "- ".repeat(depth)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_journey_files_are_problems_and_the_service_carries_on() {
    let srv = TestServer::start().await;
    let dir = setup(&[("good.yaml", journey("good", &format!("{}/json", srv.base)))]);
    let journeys = dir.path().join("journeys");
    let serve = Serve::start(dir.path(), 1);
    eventually("good runs", &serve, Duration::from_secs(10), || async {
        (!serve.run_ids("good").await.is_empty()).then_some(())
    })
    .await;

    std::fs::write(journeys.join("deep-body.yaml"), deep_body(3000)).unwrap();
    std::fs::write(
        journeys.join("deep-yaml.yaml"),
        format!("{}1\n", "- ".repeat(8700)),
    )
    .unwrap();
    let problems = eventually("two problems", &serve, Duration::from_secs(10), || async {
        let p = serve.journeys().await["problems"].clone();
        (p.as_array().unwrap().len() == 2).then_some(p)
    })
    .await;
    let text = problems.to_string();
    for file in ["deep-body.yaml:9:", "deep-yaml.yaml:1:129:"] {
        assert!(text.contains(file), "{file} missing from {text}");
    }
    assert_eq!(
        text.matches("nest deeper than 64 levels").count(),
        2,
        "{text}"
    );

    // Still up, and still running what it ran.
    let before = serve.run_ids("good").await.len();
    eventually(
        "good keeps running",
        &serve,
        Duration::from_secs(8),
        || async { (serve.run_ids("good").await.len() >= before + 2).then_some(()) },
    )
    .await;
    let list = serve.journeys().await;
    assert_eq!(list["journeys"].as_array().unwrap().len(), 1, "{list}");
    assert!(serve.log().contains("journey problem"), "{}", serve.log());
    assert_eq!(serve.stop(libc::SIGTERM).await, Some(0));
}
