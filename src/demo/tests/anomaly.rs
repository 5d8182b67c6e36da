//! The chaos phases as the anomaly detector sees them: the demo target run by the demo
//! journeys, judged against the simulated history the demo seeds, as `waymark demo` does.

use std::sync::Arc;

use chrono::Utc;

use super::*;
use crate::baseline::{DetectorKind, Transition};
use crate::journey::Journey;
use crate::journey::parse::{ParseOptions, load_paths};
use crate::journey::template::EnvSecrets;
use crate::runner::Runner;
use crate::service::baselines::Engine;
use crate::store::Store;

fn shop_checkout(overrides: &std::collections::BTreeMap<String, String>) -> Journey {
    let loaded = load_paths(
        &[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/journeys"
        ))],
        &ParseOptions {
            extra_vars: overrides.keys().cloned().collect(),
            ..ParseOptions::default()
        },
    );
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    loaded
        .journeys
        .into_iter()
        .find(|j| j.name == "shop-checkout")
        .expect("the demo's checkout journey")
}

/// Whether `events` start a latency episode on `step`.
fn slowdown_of(events: &[crate::baseline::EpisodeEvent], step: &str) -> bool {
    events.iter().any(|e| {
        e.series.step == step
            && matches!(&e.transition, Transition::Started(ep) if ep.detector == DetectorKind::Latency)
    })
}

#[tokio::test]
async fn the_n_plus_one_phase_is_flagged_within_five_runs() {
    let d = demo().await;
    let overrides = super::super::launch::variables(&d.target);
    let journey = shop_checkout(&overrides);
    let runner = Runner {
        location: "local".into(),
        secrets: Arc::new(DemoSecrets(EnvSecrets::default())),
        overrides,
        telemetry: crate::telemetry::Telemetry::disabled(),
    };
    // As `waymark demo` starts: three real runs calibrate three days of simulated history,
    // and the baselines warm up from it.
    let mut calibration = Vec::new();
    for _ in 0..3 {
        calibration.push(runner.run(&journey).await);
    }
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let now = Utc::now();
    let typical = crate::demo::history::calibrate(&calibration);
    crate::demo::history::seed(&store, &[&journey], "local", now, &typical)
        .await
        .unwrap();
    let mut engine = Engine::new(store.clone());
    assert_eq!(
        engine.warm_up(&[&journey], now).await.unwrap(),
        journey.steps.len()
    );

    // Calm: the live runs are what the history says.
    for i in 0..20 {
        let run = runner.run(&journey).await;
        assert_eq!(run.outcome, crate::run::Outcome::Passed, "calm run {i}");
        let events = engine.observe(&journey, &run).await.unwrap();
        assert!(events.is_empty(), "calm run {i}: {events:?}");
    }

    // The N+1 phase: reading an order back makes one query per catalogue item.
    d.target.faults().set(FaultSet {
        n_plus_one: true,
        ..FaultSet::default()
    });
    let mut flagged = None;
    for i in 1..=5 {
        let run = runner.run(&journey).await;
        let events = engine.observe(&journey, &run).await.unwrap();
        if slowdown_of(&events, "read order back") {
            flagged = Some(i);
            break;
        }
    }
    assert!(
        flagged.is_some(),
        "the N+1 slowdown of `read order back` is flagged within 5 runs"
    );
}
