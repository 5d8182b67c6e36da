use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::reload::{Loading, Reloader};
use super::retention;
use crate::api::test_support::Recorder;
use crate::config::Retention;
use crate::run::testkit::{journey, run};
use crate::scheduler::{Scheduler, SchedulerConfig, SystemClock};
use crate::service::catalog::Catalog;
use crate::store::{RunRecord, Store};

fn journey_yaml(name: &str, path: &str) -> String {
    format!(
        "name: {name}\nschedule: {{ every: 1h }}\nsteps:\n  - name: a\n    http: {{ url: \"http://127.0.0.1:1{path}\" }}\n"
    )
}

fn recording_scheduler() -> Arc<Scheduler> {
    Arc::new(Scheduler::new(
        Vec::<Arc<crate::journey::Journey>>::new(),
        Arc::new(Recorder::default()),
        Arc::new(SystemClock),
        SchedulerConfig::default(),
    ))
}

fn names(catalog: &RwLock<Catalog>) -> Vec<String> {
    catalog.read().unwrap().journeys.keys().cloned().collect()
}

#[tokio::test]
async fn reload_keeps_the_last_good_version_of_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journeys");
    std::fs::create_dir(&jdir).unwrap();
    std::fs::write(jdir.join("a.yaml"), journey_yaml("a", "/one")).unwrap();
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let catalog = Arc::new(RwLock::new(Catalog::default()));
    let scheduler = recording_scheduler();
    let mut reloader = Reloader::new(
        jdir.clone(),
        store.clone(),
        catalog.clone(),
        scheduler.clone(),
        Loading::default(),
    );
    assert!(reloader.poll().await);
    assert_eq!(names(&catalog), ["a"]);
    assert_eq!(scheduler.stats().journeys, 1);
    assert!(!reloader.poll().await, "nothing changed");
    let v1 = catalog.read().unwrap().journeys["a"]
        .source
        .content_sha256
        .clone();

    // Added.
    std::fs::write(jdir.join("b.yaml"), journey_yaml("b", "/two")).unwrap();
    assert!(reloader.poll().await);
    assert_eq!(names(&catalog), ["a", "b"]);
    assert_eq!(scheduler.stats().journeys, 2);

    // Broken: the last good version of `a` keeps running; the problem is listed.
    std::fs::write(
        jdir.join("a.yaml"),
        "name: a\nsteps:\n  - name: a\n    http: { url: \"http://127.0.0.1:1/\", metod: GET }\n",
    )
    .unwrap();
    assert!(reloader.poll().await);
    {
        let c = catalog.read().unwrap();
        assert_eq!(c.journeys["a"].source.content_sha256, v1);
        let problems: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("a.yaml:4:41: unknown key `metod`"),
            "{problems:?}"
        );
    }
    assert_eq!(scheduler.stats().journeys, 2);

    // Fixed with a new version.
    std::fs::write(jdir.join("a.yaml"), journey_yaml("a", "/three")).unwrap();
    assert!(reloader.poll().await);
    assert_ne!(
        catalog.read().unwrap().journeys["a"].source.content_sha256,
        v1
    );
    assert!(catalog.read().unwrap().problems.is_empty());

    // Deleted while broken or not: the journey stops.
    std::fs::write(jdir.join("b.yaml"), "name: b\nsteps: 3\n").unwrap();
    assert!(reloader.poll().await);
    assert_eq!(names(&catalog), ["a", "b"]);
    std::fs::remove_file(jdir.join("b.yaml")).unwrap();
    assert!(reloader.poll().await);
    assert_eq!(names(&catalog), ["a"]);
    assert!(catalog.read().unwrap().problems.is_empty());
    assert_eq!(scheduler.stats().journeys, 1);

    // Every version that ran was recorded, with its text.
    let versions = store.runs().journeys().await.unwrap();
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(versions.iter().all(|v| v.definition.is_some()));
    scheduler.shutdown().await;
}

#[tokio::test]
async fn retention_prunes_runs_older_than_the_raw_period() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let now = chrono::DateTime::from_timestamp(1_773_482_400, 0).unwrap();
    let record = |days_ago: i64| -> RunRecord {
        let t = now - chrono::Duration::days(days_ago);
        RunRecord {
            result: run("j")
                .location("l")
                .at(t)
                .duration_ms(1.0)
                .finished_at(t)
                .build(),
            planned_at: t,
            scheduling_lag: Duration::ZERO,
            journey_sha256: String::new(),
        }
    };
    let keep = record(1);
    store.runs().record_now(&[record(40), keep.clone()]).await;
    let pruned = retention::prune_once(&store, &Retention::default(), now)
        .await
        .unwrap();
    assert_eq!(pruned.runs, 1);
    let left = store.runs().recent_runs("j", 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].run_id, keep.result.run_id);
}

#[tokio::test]
async fn the_store_sink_queues_runs_and_counts_what_the_writer_refuses() {
    use crate::scheduler::{PlannedRun, RunSink};
    use crate::store::{StoreWriter, WriterConfig};

    let store = Store::connect("sqlite::memory:").await.unwrap();
    let (writer, _task) = StoreWriter::spawn(
        store.clone(),
        WriterConfig {
            capacity: 1,
            ..WriterConfig::default()
        },
    );
    let metrics = Arc::new(crate::service::metrics::Metrics::new());
    let sink = super::StoreSink::new(writer.clone(), metrics.clone());
    let journey = Arc::new(journey(&journey_yaml("j", "/")));
    let now = chrono::Utc::now();
    let result = |id| {
        run("j")
            .id(id)
            .location("l")
            .at(now)
            .finished_at(now)
            .duration_ms(1.0)
            .build()
    };
    let planned = PlannedRun {
        journey: journey.clone(),
        planned: now,
        started: now,
        lag: Duration::from_millis(5),
    };
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    // The current-thread runtime does not run the writer task until this test yields: the
    // queue (capacity 1) holds the first run and refuses the second.
    sink.record(planned.clone(), result(first)).await;
    assert_eq!(writer.queue_depth(), 1);
    sink.record(planned, result(second)).await;
    assert_eq!(metrics.runs_dropped(), 1);
    writer.flush().await.unwrap();
    assert_eq!(writer.queue_depth(), 0);
    let stored = store
        .runs()
        .run(first)
        .await
        .unwrap()
        .expect("first run stored");
    assert_eq!(stored.scheduling_lag, Duration::from_millis(5));
    assert_eq!(stored.journey_sha256, journey.source.content_sha256);
    assert!(store.runs().run(second).await.unwrap().is_none());
}

#[tokio::test]
async fn a_node_schedules_only_the_journeys_that_run_from_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journeys");
    std::fs::create_dir(&jdir).unwrap();
    let with_locations = |name: &str, locations: &str| {
        journey_yaml(name, "/").replacen('\n', &format!("\nlocations: {locations}\n"), 1)
    };
    std::fs::write(
        jdir.join("everywhere.yaml"),
        journey_yaml("everywhere", "/"),
    )
    .unwrap();
    std::fs::write(jdir.join("eu.yaml"), with_locations("eu-only", "[eu-west]")).unwrap();
    std::fs::write(jdir.join("us.yaml"), with_locations("us-only", "[us-east]")).unwrap();
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let catalog = Arc::new(RwLock::new(Catalog::default()));
    let scheduler = recording_scheduler();
    let mut reloader = Reloader::new(
        jdir,
        store,
        catalog.clone(),
        scheduler.clone(),
        Loading {
            location: Some("eu-west".to_string()),
            ..Loading::default()
        },
    );
    assert!(reloader.poll().await);
    assert_eq!(
        names(&catalog),
        ["eu-only", "everywhere", "us-only"],
        "all listed"
    );
    assert_eq!(
        scheduler.stats().journeys,
        2,
        "us-only is not scheduled here"
    );
    assert_eq!(
        catalog.read().unwrap().journeys["us-only"].locations,
        ["us-east"]
    );
}
