//! The state machine over simulated time: every rule of the module doc, one test each.

use chrono::{DateTime, Utc};

use super::*;
use crate::alert::engine::Settings;
use crate::baseline::SeriesKey;
use crate::baseline::{DetectorKind, Episode};
use crate::config::alerting::AlertConfig;
use crate::run::testkit;
use crate::step::FailureClass;

const T0: i64 = 1_795_000_000;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + minute * 60, 0).unwrap()
}

fn journey(extra: &str) -> Journey {
    testkit::journey(&format!(
        "name: checkout\nowner: shop-team\ntags: [critical]\nrunbook: https://wiki.example.com/checkout\n{extra}\
         steps:\n  - name: pay\n    dependency: payments\n    wait: 1ms\n"
    ))
}

fn config(text: &str) -> Settings {
    let mut c: AlertConfig = toml::from_str(text).unwrap();
    c.validate(|_| None).unwrap();
    c.engine_settings()
}

/// Where a failure of [`engine`]'s journey is sent, in this order.
const FAILURE_CHANNELS: &[&str] = &["pager", "mail", "chat"];

/// Pager for failures, chat for everything, mail (reminders every 4 h by default) for failures.
fn engine() -> Engine {
    Engine::new(&config(
        r#"
        [channels.pager]
        type = "log"
        [channels.chat]
        type = "log"
        [channels.mail]
        type = "log"
        remind_every = "4h"
        [[routes]]
        severity = ["failure"]
        channels = ["pager", "mail"]
        [[routes]]
        channels = ["chat"]
        "#,
    ))
}

#[derive(Clone, Copy, PartialEq)]
enum Run {
    Good,
    Slow,
    Failed,
}

fn run(kind: Run, location: &str, minute: i64) -> RunResult {
    let pay = testkit::step("pay").dependency("payments");
    let pay = match kind {
        Run::Good => pay,
        Run::Slow => pay.degraded("[RESPONSE_TIME] > 800", "1204"),
        Run::Failed => pay
            .condition("[STATUS] == 200", false, "503")
            .failure(FailureClass::HttpStatus, "[STATUS] == 200 (actual: 503)"),
    };
    testkit::run("checkout")
        .location(location)
        .at(at(minute))
        .finished_at(at(minute))
        .duration_ms(12.0)
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .step(pay)
        .build()
}

/// Feeds runs at consecutive minutes from `from`, saving every change as the store would
/// (ids from 1); returns the changes.
struct Sim {
    engine: Engine,
    journey: Journey,
    next_id: i64,
}

impl Sim {
    fn new(engine: Engine, journey: Journey) -> Sim {
        Sim {
            engine,
            journey,
            next_id: 1,
        }
    }

    fn save(&mut self, mut change: IncidentChange) -> IncidentChange {
        if change.incident.id == 0 {
            self.engine.saved(&self.journey.name, self.next_id);
            change.incident.id = self.next_id;
            self.next_id += 1;
        }
        change
    }

    fn runs(&mut self, kinds: &[Run], location: &str, from: i64) -> Vec<IncidentChange> {
        let mut out = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let minute = from + i as i64;
            let r = run(*kind, location, minute);
            if let Some(c) = self.engine.observe_run(&self.journey, &r, at(minute)) {
                out.push(self.save(c));
            }
        }
        out
    }

    fn tick(&mut self, now: DateTime<Utc>) -> Vec<IncidentChange> {
        let changes = self.engine.tick(now);
        changes.into_iter().map(|c| self.save(c)).collect()
    }
}

fn kinds_and_channels(c: &IncidentChange) -> Vec<(NotificationKind, String)> {
    c.notifications
        .iter()
        .map(|n| (n.kind, n.channel.clone()))
        .collect()
}

fn sent(c: &IncidentChange, kind: NotificationKind, channels: &[&str]) {
    let expected: Vec<(NotificationKind, String)> =
        channels.iter().map(|ch| (kind, ch.to_string())).collect();
    assert_eq!(kinds_and_channels(c), expected, "{:?}", c.events);
}

use Run::*;

#[test]
fn two_failed_runs_open_a_failure_and_two_good_runs_resolve_it() {
    let mut sim = Sim::new(engine(), journey(""));
    assert!(sim.runs(&[Good, Failed], "eu", 0).is_empty());
    let opened = sim.runs(&[Failed], "eu", 2);
    assert_eq!(opened.len(), 1);
    let c = &opened[0];
    sent(c, NotificationKind::Triggered, FAILURE_CHANNELS);
    let i = &c.incident;
    assert_eq!(
        (i.severity, i.state),
        (Severity::Failure, IncidentState::Open)
    );
    assert_eq!(
        i.started_at,
        at(1),
        "time to detect starts at the first failed run"
    );
    assert_eq!(i.opened_at, at(2));
    assert_eq!(i.cause.step.as_deref(), Some("pay"));
    assert_eq!(i.cause.dependency.as_deref(), Some("payments"));
    assert_eq!(i.cause.failure_class.as_deref(), Some("http_status"));
    assert_eq!(i.cause.condition.as_deref(), Some("[STATUS] == 200"));
    assert_eq!(i.cause.actual.as_deref(), Some("503"));
    assert_eq!(i.cause.failing_locations, ["eu"]);
    assert_eq!(
        i.runbook.as_deref(),
        Some("https://wiki.example.com/checkout")
    );
    assert_eq!(i.owner.as_deref(), Some("shop-team"));
    assert!(i.dedup_key.starts_with("waymark-"));
    assert_eq!(c.events[0].kind, EventKind::Triggered);
    // More failures change nothing; one good run is not enough.
    assert!(sim.runs(&[Failed, Failed, Good], "eu", 3).is_empty());
    let resolved = sim.runs(&[Good], "eu", 6);
    sent(&resolved[0], NotificationKind::Resolved, FAILURE_CHANNELS);
    let r = &resolved[0].incident;
    assert_eq!((r.id, r.state), (1, IncidentState::Resolved));
    assert_eq!(r.dedup_key, i.dedup_key);
    assert_eq!(r.resolved_by, Some(ResolvedBy::Auto));
    assert_eq!(r.duration(at(99)), std::time::Duration::from_secs(5 * 60));
}

#[test]
fn journey_rules_change_the_counts() {
    let j = journey("alert: { failure_after: 3, resolve_after: 1 }\n");
    let mut sim = Sim::new(engine(), j);
    assert!(sim.runs(&[Failed, Failed], "eu", 0).is_empty());
    assert_eq!(sim.runs(&[Failed], "eu", 2).len(), 1);
    let resolved = sim.runs(&[Good], "eu", 3);
    assert_eq!(resolved[0].incident.state, IncidentState::Resolved);
}

#[test]
fn a_degradation_escalates_to_failure_in_the_same_incident() {
    let mut sim = Sim::new(engine(), journey(""));
    let degraded = sim.runs(&[Slow, Slow], "eu", 0);
    sent(&degraded[0], NotificationKind::Triggered, &["chat"]);
    let d = &degraded[0].incident;
    assert_eq!(d.severity, Severity::Degraded);
    assert_eq!(d.cause.condition.as_deref(), Some("[RESPONSE_TIME] > 800"));
    assert_eq!(d.cause.actual.as_deref(), Some("1204"));
    sim.engine.acknowledge(d.id, "ada", at(2)).unwrap();
    let escalated = sim.runs(&[Failed, Failed], "eu", 2);
    assert_eq!(escalated.len(), 1);
    let e = &escalated[0];
    assert_eq!(e.incident.id, d.id);
    assert_eq!(e.incident.dedup_key, d.dedup_key);
    assert_eq!(e.incident.severity, Severity::Failure);
    assert_eq!(
        e.incident.state,
        IncidentState::Open,
        "the acknowledgement was for less"
    );
    assert_eq!(e.incident.acknowledged_by, None);
    assert_eq!(e.incident.channels, ["chat", "pager", "mail"]);
    sent(e, NotificationKind::Escalated, &["chat", "pager", "mail"]);
    // Failure back to slow runs: no de-escalation, and not resolved while slow.
    assert!(sim.runs(&[Slow, Slow, Slow], "eu", 4).is_empty());
    let resolved = sim.runs(&[Good, Good], "eu", 7);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].incident.state, IncidentState::Resolved);
}

fn episode(id: i64, transition: fn(Episode) -> Transition) -> EpisodeEvent {
    EpisodeEvent {
        id,
        series: SeriesKey {
            journey: "checkout".into(),
            step: "pay".into(),
            location: "eu".into(),
        },
        transition: transition(Episode {
            detector: DetectorKind::Latency,
            start_ms: at(0).timestamp_millis(),
            detected_ms: at(3).timestamp_millis(),
            end_ms: None,
            peak_score: 9.0,
            peak_value: 412.0,
            baseline: 80.0,
            anomalous_runs: 3,
        }),
    }
}

#[test]
fn an_anomaly_episode_is_a_degradation_until_it_ends() {
    let mut sim = Sim::new(engine(), journey(""));
    sim.runs(&[Good, Good, Good], "eu", 0);
    let j = sim.journey.clone();
    let opened = sim
        .engine
        .observe_episode(&j, &episode(41, Transition::Started), at(3))
        .unwrap();
    let opened = sim.save(opened);
    sent(&opened, NotificationKind::Triggered, &["chat"]);
    let a = opened.incident.cause.anomaly.as_ref().unwrap();
    assert_eq!((a.episode_id, a.detector.as_str()), (41, "latency"));
    assert_eq!(
        opened.notifications[0].summary(),
        "[DEGRADED] checkout: step \"pay\" is slower than its baseline (412 ms, usually 80 ms)"
    );
    assert!(
        sim.runs(&[Good, Good, Good], "eu", 4).is_empty(),
        "episode still open"
    );
    let ended = sim
        .engine
        .observe_episode(&j, &episode(41, Transition::Ended), at(7))
        .unwrap();
    assert_eq!(ended.incident.state, IncidentState::Resolved);
    sent(&ended, NotificationKind::Resolved, &["chat"]);
}

#[test]
fn k_of_m_locations() {
    let j = journey("alert: { locations: 2 }\n");
    let mut sim = Sim::new(engine(), j);
    for loc in ["eu", "us", "ap"] {
        sim.runs(&[Good, Good], loc, 0);
    }
    let partial = sim.runs(&[Failed, Failed], "eu", 2);
    assert_eq!(partial[0].incident.severity, Severity::Degraded);
    assert_eq!(partial[0].incident.cause.failing_locations, ["eu"]);
    let full = sim.runs(&[Failed, Failed], "us", 2);
    assert_eq!(full[0].incident.severity, Severity::Failure);
    assert_eq!(full[0].incident.cause.failing_locations, ["eu", "us"]);
    assert_eq!(full[0].notifications[0].kind, NotificationKind::Escalated);
    // Resolves only once every location is good again.
    assert!(sim.runs(&[Good, Good], "eu", 4).is_empty());
    assert_eq!(sim.runs(&[Good, Good], "us", 4).len(), 1);
}

/// Both locations fail, then us stops reporting (its only node died) while eu recovers: once
/// us has been silent for three periods plus the timeout, it leaves the rules and the incident
/// resolves on eu's word. A location silent alone keeps its last word.
#[test]
fn a_location_that_stops_reporting_leaves_the_rules() {
    let j = journey("schedule: { every: 1m }\ntimeout: 30s\nalert: { locations: 2 }\n");
    assert_eq!(
        tick::silent_after(&j, "2026-03-14T10:00:00Z".parse().unwrap()),
        chrono::Duration::seconds(210)
    );
    let mut sim = Sim::new(engine(), j);
    sim.runs(&[Good], "eu", 0);
    sim.runs(&[Good, Failed, Failed], "us", 0);
    let open = sim.runs(&[Failed, Failed], "eu", 1);
    assert_eq!(open[0].incident.severity, Severity::Failure);
    assert!(
        sim.runs(&[Good, Good, Good], "eu", 3).is_empty(),
        "us still fails"
    );
    // us's last run started at minute 2: silent from 2 + 3.5 min on.
    assert!(sim.tick(at(5)).is_empty());
    let resolved = sim.tick(at(6));
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].incident.state, IncidentState::Resolved);

    // Every location silent: nothing to judge by, the incident stays.
    let mut sim = Sim::new(engine(), journey("schedule: { every: 1m }\n"));
    sim.runs(&[Failed, Failed], "eu", 0);
    assert!(sim.tick(at(60)).is_empty());
    assert_eq!(sim.engine.open_incidents().count(), 1);
}

#[test]
fn a_single_location_is_enough_when_only_one_runs_the_journey() {
    let mut sim = Sim::new(engine(), journey("alert: { locations: 3 }\n"));
    let c = sim.runs(&[Failed, Failed], "local", 0);
    assert_eq!(c[0].incident.severity, Severity::Failure);
}

#[test]
fn failing_again_soon_reopens_the_same_incident() {
    let mut sim = Sim::new(engine(), journey(""));
    let first = sim.runs(&[Failed, Failed, Good, Good], "eu", 0);
    let key = first[0].incident.dedup_key.clone();
    let again = sim.runs(&[Failed, Failed], "eu", 10);
    assert_eq!(again[0].incident.id, 1);
    assert_eq!(again[0].incident.dedup_key, key);
    assert_eq!(again[0].incident.reopened, 1);
    assert_eq!(again[0].incident.resolved_at, None);
    sent(&again[0], NotificationKind::Reopened, FAILURE_CHANNELS);
    // Resolved, then failing again after the 30-minute window: a new incident.
    sim.runs(&[Good, Good], "eu", 12);
    let later = sim.runs(&[Failed, Failed], "eu", 60);
    assert_eq!(later[0].incident.id, 2);
    assert_ne!(later[0].incident.dedup_key, key);
    assert_eq!(later[0].notifications[0].kind, NotificationKind::Triggered);
}

#[test]
fn flapping_is_notified_once_then_settles() {
    let mut sim = Sim::new(engine(), journey(""));
    let mut all = Vec::new();
    // Each cycle opens and resolves: 2 changes per 4 minutes; the 7th change (> 6) flaps.
    for cycle in 0..6 {
        all.extend(sim.runs(&[Failed, Failed, Good, Good], "eu", cycle * 4));
    }
    assert_eq!(all.len(), 12);
    assert!(all.iter().all(|c| c.incident.id == 1), "one incident");
    let kinds: Vec<NotificationKind> = all
        .iter()
        .map(|c| {
            c.notifications
                .first()
                .map_or(NotificationKind::Reminder, |n| n.kind)
        })
        .collect();
    use NotificationKind::*;
    assert_eq!(
        &kinds[..7],
        [
            Triggered, Resolved, Reopened, Resolved, Reopened, Resolved, Flapping
        ]
    );
    assert!(
        all[7..]
            .iter()
            .all(|c| c.notifications.is_empty() && c.muted.is_empty())
    );
    assert!(all[8].events[0].detail.contains("flapping: not notified"));
    let last = all.last().unwrap();
    assert!(last.incident.flapping);
    assert_eq!(last.incident.state, IncidentState::Resolved);
    // Quiet for less than the hour: still flapping; a whole hour: settles, resolve sent.
    assert!(sim.tick(at(23 + 59)).is_empty());
    let settled = sim.tick(at(23 + 61));
    assert_eq!(settled.len(), 1);
    assert!(!settled[0].incident.flapping);
    sent(&settled[0], Resolved, FAILURE_CHANNELS);
    assert_eq!(settled[0].events[0].detail, "settled: resolved");
}

fn with_maintenance(window: &str) -> Engine {
    Engine::new(&config(&format!(
        "[channels.pager]\ntype = \"log\"\n[[maintenance]]\n{window}\n"
    )))
}

#[test]
fn maintenance_mutes_alerts_and_sends_them_if_still_open_afterwards() {
    let start = at(0).to_rfc3339();
    let end = at(30).to_rfc3339();
    let window = format!(
        "name = \"db upgrade\"\ntags = [\"critical\"]\nstart = \"{start}\"\nend = \"{end}\""
    );
    let mut sim = Sim::new(with_maintenance(&window), journey(""));
    let opened = sim.runs(&[Failed, Failed], "eu", 0);
    assert!(opened[0].notifications.is_empty());
    assert_eq!(opened[0].muted.len(), 1);
    assert_eq!(opened[0].events[1].kind, EventKind::Muted);
    assert!(
        opened[0].events[1].detail.contains("db upgrade"),
        "{:?}",
        opened[0].events
    );
    assert!(sim.tick(at(29)).is_empty());
    let after = sim.tick(at(30));
    sent(&after[0], NotificationKind::Triggered, &["pager"]);
    assert!(sim.tick(at(31)).is_empty(), "sent once");
    let resolved = sim.runs(&[Good, Good], "eu", 40);
    sent(&resolved[0], NotificationKind::Resolved, &["pager"]);
}

#[test]
fn an_incident_that_lives_and_dies_in_maintenance_sends_nothing() {
    let window = "name = \"nightly\"\ncron = \"0 * * * *\"\nduration = \"50m\"";
    let mut sim = Sim::new(with_maintenance(window), journey(""));
    let changes = sim.runs(&[Failed, Failed, Good, Good], "eu", 0);
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| c.notifications.is_empty() && c.muted.len() == 1)
    );
    assert!(sim.tick(at(55)).is_empty());
}

#[test]
fn a_resolve_in_maintenance_still_clears_an_alert_that_was_sent() {
    // 00:00–00:30 of the next hour is maintenance; the alert went out before it.
    let window = "name = \"m\"\ncron = \"0 * * * *\"\nduration = \"30m\"";
    let mut sim = Sim::new(with_maintenance(window), journey(""));
    let base = 45 - (T0 / 60) % 60; // minute 45 of an hour
    let opened = sim.runs(&[Failed, Failed], "eu", base);
    assert_eq!(opened[0].notifications.len(), 1);
    let resolved = sim.runs(&[Good, Good], "eu", base + 20);
    sent(&resolved[0], NotificationKind::Resolved, &["pager"]);
}

#[test]
fn reminders_repeat_on_channels_that_want_them_until_acknowledged() {
    let mut sim = Sim::new(engine(), journey(""));
    let opened = sim.runs(&[Failed, Failed], "eu", 0);
    let id = opened[0].incident.id;
    assert!(sim.tick(at(1 + 239)).is_empty());
    let reminder = sim.tick(at(1 + 240));
    sent(&reminder[0], NotificationKind::Reminder, &["mail"]);
    assert!(
        reminder[0].events[0].detail.contains("open for 4h"),
        "{:?}",
        reminder[0].events
    );
    assert!(sim.tick(at(1 + 241)).is_empty());
    sim.engine.acknowledge(id, "ada", at(300)).unwrap();
    assert!(
        sim.tick(at(1 + 480)).is_empty(),
        "no reminders once acknowledged"
    );
}

#[test]
fn acknowledge_and_resolve_commands() {
    let mut sim = Sim::new(engine(), journey(""));
    let id = sim.runs(&[Failed, Failed], "eu", 0)[0].incident.id;
    assert_eq!(
        sim.engine.acknowledge(99, "ada", at(3)),
        Err(CommandError::NotFound(99))
    );
    let ack = sim.engine.acknowledge(id, "ada", at(3)).unwrap();
    assert_eq!(ack.incident.state, IncidentState::Acknowledged);
    assert_eq!(ack.incident.acknowledged_by.as_deref(), Some("ada"));
    sent(&ack, NotificationKind::Acknowledged, FAILURE_CHANNELS);
    assert_eq!(
        sim.engine.acknowledge(id, "bob", at(4)),
        Err(CommandError::Conflict {
            id,
            state: "acknowledged"
        })
    );
    let resolved = sim.engine.resolve(id, "bob", at(5)).unwrap();
    assert_eq!(
        resolved.incident.resolved_by,
        Some(ResolvedBy::User("bob".into()))
    );
    sent(&resolved, NotificationKind::Resolved, FAILURE_CHANNELS);
    assert_eq!(
        sim.engine.resolve(id, "bob", at(6)),
        Err(CommandError::NotFound(id))
    );
    // Streaks start over: one more failure does not reopen it, two do.
    assert!(sim.runs(&[Failed], "eu", 6).is_empty());
    assert_eq!(sim.runs(&[Failed], "eu", 7)[0].incident.reopened, 1);
}

#[test]
fn a_change_that_could_not_be_saved_is_computed_again() {
    let mut sim = Sim::new(engine(), journey(""));
    sim.runs(&[Failed], "eu", 0);
    let r = run(Failed, "eu", 1);
    let j = sim.journey.clone();
    assert!(sim.engine.observe_run(&j, &r, at(1)).is_some());
    sim.engine.rollback("checkout");
    assert!(sim.engine.open_incidents().next().is_none());
    let again = sim.engine.observe_run(&j, &r, at(1)).unwrap();
    assert_eq!(again.incident.state, IncidentState::Open);
}

#[test]
fn resumed_incidents_resolve_and_resumed_episodes_hold() {
    let mut first = Sim::new(engine(), journey(""));
    let incident = first.runs(&[Failed, Failed], "eu", 0)[0].incident.clone();
    let mut sim = Sim::new(engine(), journey(""));
    sim.engine.resume(vec![incident.clone()], &[], at(10));
    let resolved = sim.runs(&[Good, Good], "eu", 10);
    assert_eq!(resolved[0].incident.id, incident.id);
    sent(&resolved[0], NotificationKind::Resolved, FAILURE_CHANNELS);
}
