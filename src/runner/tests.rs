//! Runner unit tests: panic isolation (a bug in one run is that run's `error`, and whatever
//! runs journeys carries on).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::journey::template::{EnvSecrets, MapSecrets};
use crate::run::testkit::journey;
use crate::scheduler::{
    BoxFuture, PlannedRun, RunSink, RunnerExecutor, Scheduler, SchedulerConfig, TokioClock,
};
use crate::step::FailureClass;

fn runner() -> Runner {
    Runner {
        location: "test".into(),
        secrets: Arc::new(EnvSecrets::default()),
        overrides: BTreeMap::new(),
        telemetry: Telemetry::disabled(),
    }
}

/// The step failed with `class`, and its message starts with `start`.
#[track_caller]
fn assert_failure_starts(step: &StepResult, class: FailureClass, start: &str) {
    let failure = step.failure.as_ref().expect("the step failed");
    assert_eq!(failure.class, class);
    assert!(failure.message.starts_with(start), "{}", failure.message);
}

const PANICKING: &str = r#"name: buggy
schedule: { every: 1m }
steps:
  - name: panic-for-tests
    wait: 0s
  - name: next
    wait: 0s
  - name: cleanup
    always_run: true
    wait: 0s
"#;

const GOOD: &str = r#"name: good
schedule: { every: 1m }
steps:
  - name: pause
    wait: 0s
"#;

#[tokio::test]
async fn a_panicking_step_is_an_internal_error_and_the_run_goes_on_to_cleanup() {
    let r = runner();
    let result = r.run(&journey(PANICKING)).await;
    assert_eq!(result.outcome, Outcome::Error);
    let statuses: Vec<StepStatus> = result.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Error, StepStatus::Skipped, StepStatus::Passed]
    );
    assert_failure_starts(
        &result.steps[0],
        FailureClass::Internal,
        "internal error: deliberate panic in step `panic-for-tests`",
    );
    // A panicking step is never retried: the fault is not the target's.
    assert_eq!(result.steps[0].attempts, 1);
    // The same runner goes on running journeys.
    assert_eq!(r.run(&journey(GOOD)).await.outcome, Outcome::Passed);
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(String, Outcome)>>>);

impl RunSink for Collect {
    fn record(&self, _run: PlannedRun, result: RunResult) -> BoxFuture<'_, ()> {
        self.0
            .lock()
            .unwrap()
            .push((result.journey.clone(), result.outcome));
        Box::pin(async {})
    }
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_records_a_panicking_run_as_an_error_and_keeps_running_journeys() {
    let sink = Collect::default();
    let executor = RunnerExecutor {
        runner: runner(),
        sink: sink.clone(),
    };
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
        .unwrap()
        .with_timezone(&Utc);
    let scheduler = Scheduler::new(
        [journey(PANICKING), journey(GOOD)],
        Arc::new(executor),
        Arc::new(TokioClock::starting_at(start)),
        SchedulerConfig {
            max_concurrent_runs: 4,
            shutdown_grace: Duration::from_secs(10),
        },
    );
    tokio::time::sleep(Duration::from_secs(3 * 60 + 10)).await;
    let stats = scheduler.shutdown().await;
    assert_eq!(stats.panicked, 0, "the runner contains the panic itself");
    let runs = sink.0.lock().unwrap().clone();
    let of = |name: &str| -> Vec<Outcome> {
        runs.iter()
            .filter(|(j, _)| j == name)
            .map(|(_, o)| *o)
            .collect()
    };
    assert_eq!(of("buggy"), [Outcome::Error; 3]);
    assert_eq!(of("good"), [Outcome::Passed; 3]);
}

/// Issue #19: `{{ }}` inside `variables:` is rendered from the variables above it.
#[tokio::test]
async fn variables_are_rendered_in_order_from_earlier_ones_and_keep_secrets_redacted() {
    let src = r#"name: vars
variables:
  host: 127.0.0.1
  port: 9
  base: "http://{{ host }}:{{ port }}"
  same_port: "{{ port }}"
  auth: "Bearer {{ secret.PW }}"
steps:
  - name: check
    wait: 0s
    conditions:
      - "{{ base }} == http://127.0.0.1:9"
      - "{{ base }} == http://{{ host }}:9"
      - "{{ same_port }} == 9"
      - "{{ auth }} == nope"
"#;
    let mut r = runner();
    r.secrets = Arc::new(MapSecrets::new(&[("PW", "hunter2")]));
    let result = r.run(&journey(src)).await;
    let conditions = &result.steps[0].conditions;
    assert!(conditions[..3].iter().all(|c| c.passed), "{conditions:#?}");
    assert!(!conditions[3].passed);
    assert_eq!(conditions[3].actual, "Bearer ***", "the secret is redacted");
    let json = serde_json::to_string(&result).unwrap();
    assert!(!json.contains("hunter2"), "{json}");

    // An override wins over the default, and what is rendered from it sees it.
    r.overrides = [("host".to_string(), "example.test".to_string())].into();
    let overridden = r.run(&journey(src)).await;
    let c = &overridden.steps[0].conditions;
    assert!(!c[0].passed && c[1].passed, "{c:#?}");
}

#[tokio::test]
async fn a_variable_that_cannot_be_rendered_is_the_first_steps_error() {
    let src = r#"name: vars
variables:
  auth: "Bearer {{ secret.MISSING }}"
steps:
  - name: first
    wait: 0s
  - name: second
    wait: 0s
"#;
    let result = runner().run(&journey(src)).await;
    assert_eq!(result.outcome, Outcome::Error);
    assert_eq!(result.steps[0].status, StepStatus::Error);
    assert_failure_starts(
        &result.steps[0],
        FailureClass::Template,
        "variable `auth`: secret `MISSING` is not set",
    );
    assert_eq!(result.steps[1].status, StepStatus::Skipped);
}
