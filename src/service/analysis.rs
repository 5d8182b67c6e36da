//! The analysis task: every finished run goes to the anomaly [`crate::service::baselines::Engine`],
//! then with the episodes it started or ended to the incident state machine
//! ([`alert::engine::Engine`]), whose changes are committed to the store (incident, timeline
//! and notifications together) before the outbox is woken to deliver them. API commands
//! (acknowledge, resolve) and a clock tick (reminders, flapping, maintenance) arrive here too,
//! so one task owns all incident state and needs no lock.
//!
//! Runs reach it from the store's run feed ([`super::feed`]), read on the leader only, so the
//! runs of every node are analysed once, by one node; after each run the feed's `analysis`
//! cursor moves (at once when the queue is empty, at least every second under load), and a
//! node that becomes leader resumes the incidents from the store first. Runs still queued when
//! the node stops leading are dropped, not analysed: the new leader reads them from the cursor.
//! At shutdown the queue is drained before the task ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc};

use crate::alert::IncidentChange;
use crate::alert::engine::CommandError;
use crate::alert::{self, Incident, IncidentState};
use crate::baseline::Transition;
use crate::journey::Journey;
use crate::run::RunResult;
use crate::service::commands::{Action, Command, CommandFailed};
use crate::service::metrics::Metrics;
use crate::store::Store;
use crate::store::alerts::IncidentFilter;

/// Runs waiting for analysis before new ones are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// How often reminders, flapping and maintenance windows are looked at.
const TICK: Duration = Duration::from_secs(5);
/// Baselines warmed up more recently than this are not warmed again on becoming leader.
const REWARM_AFTER: Duration = Duration::from_secs(60);

/// A run to analyse, with its position in the run feed.
pub type Queued = (Arc<Journey>, RunResult, i64);
pub type Sender = mpsc::Sender<Queued>;

pub fn channel() -> (Sender, mpsc::Receiver<Queued>) {
    mpsc::channel(QUEUE)
}

/// The feed cursor the analysis moves.
pub const CURSOR: &str = "analysis";

/// Told when what the pages show may have changed (an incident was committed, a journey's
/// outcome changed), so that readers (the status page's cache) rebuild instead of waiting
/// for their refresh. Defined here so that the analysis knows nothing of the pages.
pub trait ShownChanged: Send + Sync {
    fn shown_changed(&self);
}

/// For analysis without pages (tests).
impl ShownChanged for () {
    fn shown_changed(&self) {}
}

/// Baselines learned from the rollups of the catalog's journeys, and how many series.
pub async fn warmed_baselines(
    store: &Store,
    catalog: &std::sync::RwLock<crate::service::catalog::Catalog>,
) -> crate::store::Result<(crate::service::baselines::Engine, usize)> {
    let journeys: Vec<Arc<Journey>> = {
        let c = catalog.read().unwrap_or_else(|e| e.into_inner());
        c.journeys.values().cloned().collect()
    };
    let refs: Vec<&Journey> = journeys.iter().map(|j| j.as_ref()).collect();
    let mut engine = crate::service::baselines::Engine::new(store.clone());
    let series = engine.warm_up(&refs, Utc::now()).await?;
    Ok((engine, series))
}

pub struct Analysis {
    pub baseline: crate::service::baselines::Engine,
    pub alerts: alert::engine::Engine,
    pub store: Store,
    /// Wakes the outbox when notifications were queued.
    pub outbox: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// How far back incidents are resumed (reopen window, flapping window).
    pub lookback: chrono::Duration,
    /// The journeys, for warming baselines up again when this node becomes leader.
    pub catalog: Arc<std::sync::RwLock<crate::service::catalog::Catalog>>,
    /// When the baselines were last warmed up from the store.
    pub warmed: std::time::Instant,
    /// The status page and dashboard snapshots, told when what they show changes.
    pub status: Arc<dyn ShownChanged>,
    /// Each (journey, location)'s last outcome: a change shows on the next page load.
    pub outcomes: std::collections::HashMap<(String, String), crate::run::Outcome>,
}

impl Analysis {
    /// Loads the incidents a previous process left active (or resolved recently enough to
    /// reopen) and the open anomaly episodes.
    pub async fn resume(&mut self, lookback: chrono::Duration) -> crate::store::Result<usize> {
        let now = Utc::now();
        let incidents = self
            .store
            .incidents()
            .incidents(&IncidentFilter {
                since: Some(now - lookback),
                ..IncidentFilter::default()
            })
            .await?;
        let episodes = self.store.episodes().open().await?;
        let active = incidents
            .iter()
            .filter(|i| i.state != IncidentState::Resolved)
            .count();
        self.alerts.resume(incidents, &episodes, now);
        self.metrics.set_open_incidents(active);
        Ok(active)
    }

    /// Until every run sender is gone (the feed has stopped), then returns. The clock's
    /// reminders and flapping checks run while this node leads; when it becomes leader, the
    /// incidents are resumed from the store (another node may have changed them).
    pub async fn run(
        mut self,
        mut runs: mpsc::Receiver<Queued>,
        mut commands: mpsc::Receiver<Command>,
        mut leadership: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = *leadership.borrow_and_update();
        let mut cursor = Cursor::default();
        loop {
            // Biased, leadership first: no run or command is handled by an engine that has
            // not yet learned it leads (and resumed the incidents) or that it no longer does.
            tokio::select! {
                biased;
                Ok(()) = leadership.changed() => {
                    let now = *leadership.borrow_and_update();
                    if now && !leading {
                        self.take_over().await;
                    }
                    if !now {
                        // The new leader's cursor is the truth now; ours must not overwrite it.
                        cursor = Cursor::default();
                    }
                    leading = now;
                }
                run = runs.recv() => match run {
                    // Runs queued before this node stopped leading are left to the new
                    // leader, which reads them from the cursor: one engine per run.
                    Some((journey, result, seq)) if leading => {
                        self.on_run(&journey, &result).await;
                        cursor.moved(seq);
                        if runs.is_empty() || cursor.due() {
                            cursor.save(&self.store).await;
                        }
                    }
                    Some(_) => {}
                    None => {
                        if leading {
                            cursor.save(&self.store).await;
                        }
                        return;
                    }
                },
                Some(command) = commands.recv() => {
                    if leading {
                        self.on_command(command).await;
                    } else {
                        // Its engine holds only what it last led: the leader's is the truth.
                        // (Commands are relayed to the leader; this is the moment between
                        // losing the lead and the API handle seeing it: the caller retries.)
                        let _ = command.reply.send(Err(CommandFailed::Unavailable(
                            "this node stopped leading a moment ago: ask again".into(),
                        )));
                    }
                }
                _ = tick.tick(), if leading => {
                    for change in self.alerts.tick(Utc::now()) {
                        self.commit(change).await;
                    }
                }
            }
        }
    }

    /// This node leads now: the incidents as the store has them (another node may have
    /// changed them), and baselines learned again from the rollups unless they were just
    /// learned (at start), since the old leader refined its own meanwhile.
    async fn take_over(&mut self) {
        match self.resume(self.lookback).await {
            Ok(active) => tracing::info!(active, "leading: incidents resumed"),
            Err(e) => tracing::error!(error = %e, "leading: incidents could not be resumed"),
        }
        if self.warmed.elapsed() < REWARM_AFTER {
            return;
        }
        match warmed_baselines(&self.store, &self.catalog).await {
            Ok((fresh, series)) => {
                self.baseline = fresh;
                self.warmed = std::time::Instant::now();
                tracing::info!(series, "leading: anomaly baselines warmed up again");
            }
            Err(e) => tracing::error!(error = %e, "leading: baselines kept as they were"),
        }
    }

    async fn on_run(&mut self, journey: &Journey, result: &RunResult) {
        let key = (result.journey.clone(), result.location.clone());
        if self.outcomes.insert(key, result.outcome) != Some(result.outcome) {
            self.status.shown_changed();
        }
        let events = match self.baseline.observe(journey, result).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(journey = %result.journey, error = %e, "anomaly episode could not be stored");
                Vec::new()
            }
        };
        for event in &events {
            log_episode(event);
            if let Some(change) = self.alerts.observe_episode(journey, event, Utc::now()) {
                self.commit(change).await;
            }
        }
        if let Some(change) = self.alerts.observe_run(journey, result, Utc::now()) {
            self.commit(change).await;
        }
    }

    async fn on_command(&mut self, command: Command) {
        let now = Utc::now();
        let decided = match command.action {
            Action::Acknowledge => self.alerts.acknowledge(command.id, &command.by, now),
            Action::Resolve => self.alerts.resolve(command.id, &command.by, now),
        };
        let answer = match decided {
            Ok(change) => self
                .commit(change)
                .await
                .ok_or_else(|| CommandFailed::Unavailable("the change could not be stored".into())),
            Err(CommandError::NotFound(id)) => Err(self.not_active(id).await),
            Err(e) => Err(e.into()),
        };
        let _ = command.reply.send(answer);
    }

    /// Why an incident the engine does not hold as active cannot be changed.
    async fn not_active(&self, id: i64) -> CommandFailed {
        match self.store.incidents().incident(id).await {
            Ok(Some(i)) => CommandFailed::Refused(CommandError::Conflict {
                id,
                state: i.state.as_str(),
            }),
            Ok(None) => CommandError::NotFound(id).into(),
            Err(e) => CommandFailed::Unavailable(e.to_string()),
        }
    }

    /// Durable before external: stores the change, then wakes the outbox. A change that
    /// cannot be stored is undone in the engine, to be computed again from the next run.
    async fn commit(&mut self, change: IncidentChange) -> Option<Incident> {
        let journey = change.incident.journey.clone();
        match self.store.incidents().save_incident(&change).await {
            Ok(id) => {
                self.alerts.saved(&journey, id);
                self.status.shown_changed();
                if !change.notifications.is_empty() {
                    self.outbox.notify_one();
                }
                let mut incident = change.incident;
                incident.id = id;
                for e in &change.events {
                    tracing::warn!(
                        incident = id, journey = %journey, severity = incident.severity.as_str(),
                        state = incident.state.as_str(), event = %e.kind,
                        notifications = change.notifications.len(), "{}", e.detail
                    );
                }
                self.metrics
                    .set_open_incidents(self.alerts.open_incidents().count());
                Some(incident)
            }
            Err(e) => {
                self.alerts.rollback(&journey);
                tracing::error!(journey = %journey, error = %e, "incident change could not be stored; will be computed again");
                None
            }
        }
    }
}

/// The feed position analysed so far. Saved when the queue is empty, so a quiet feed saves
/// after every run, and at least every [`CURSOR_EVERY`] under load, so a busy one costs one
/// commit a second rather than one per run; a new leader analyses again at most what came
/// after the last save.
#[derive(Default)]
struct Cursor {
    unsaved: Option<i64>,
    saved_at: Option<std::time::Instant>,
}

const CURSOR_EVERY: Duration = Duration::from_secs(1);

impl Cursor {
    fn moved(&mut self, seq: i64) {
        self.unsaved = Some(seq);
    }

    fn due(&self) -> bool {
        self.saved_at.is_none_or(|t| t.elapsed() >= CURSOR_EVERY)
    }

    async fn save(&mut self, store: &Store) {
        let Some(seq) = self.unsaved else {
            return;
        };
        match store.feed().set_cursor(CURSOR, seq).await {
            Ok(()) => {
                self.unsaved = None;
                self.saved_at = Some(std::time::Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "analysis: feed cursor not saved"),
        }
    }
}

fn log_episode(event: &crate::baseline::EpisodeEvent) {
    let e = event.transition.episode();
    let s = &event.series;
    match event.transition {
        Transition::Started(_) => tracing::warn!(
            journey = %s.journey, step = %s.step, location = %s.location,
            detector = e.detector.as_str(), episode = event.id,
            baseline = e.baseline, value = e.peak_value,
            "anomaly episode started"
        ),
        Transition::Ended(_) => tracing::info!(
            journey = %s.journey, step = %s.step, location = %s.location,
            detector = e.detector.as_str(), episode = event.id,
            "anomaly episode ended"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that follows for a while, then leads: it learns the baselines again from the
    /// rollups every node has been writing, and resumes the incidents the old leader opened.
    #[tokio::test]
    async fn taking_over_resumes_incidents_and_learns_the_baselines_again() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (_, catalog) = crate::api::test_support::catalog_with(
            "name: shop\nsteps:\n  - name: a\n    wait: 1ms\n",
        );
        let catalog = Arc::new(std::sync::RwLock::new(catalog));
        let mut analysis = Analysis {
            baseline: crate::service::baselines::Engine::new(store.clone()),
            alerts: alert::engine::Engine::new(
                &crate::config::alerting::AlertConfig::default().engine_settings(),
            ),
            store: store.clone(),
            outbox: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::new()),
            lookback: chrono::Duration::hours(1),
            catalog,
            warmed: std::time::Instant::now(),
            status: Arc::new(()),
            outcomes: Default::default(),
        };
        // Another node's runs of the last hours, and the incident it opened.
        let now = Utc::now();
        let runs: Vec<crate::store::RunRecord> = (1..=30)
            .map(|i| {
                let step = crate::run::testkit::step("a").kind("wait").ms(5.0);
                crate::api::test_support::run_record(
                    "shop",
                    "eu",
                    now - chrono::Duration::minutes(10 * i),
                    5.0,
                    false,
                    vec![step.build()],
                )
            })
            .collect();
        store.runs().record_now(&runs).await;
        let mut incident =
            Incident::open_for_test("shop", crate::alert::Severity::Failure, Utc::now());
        incident.id = 0;
        store
            .incidents()
            .save_incident(&IncidentChange {
                incident,
                events: vec![],
                notifications: vec![],
                muted: vec![],
            })
            .await
            .unwrap();

        // Warmed up a moment ago (at start): only the incidents are read again.
        analysis.take_over().await;
        assert_eq!(analysis.alerts.open_incidents().count(), 1);
        assert!(analysis.baseline.is_empty());
        // Following for longer: the baselines are learned again too.
        analysis.warmed = std::time::Instant::now()
            .checked_sub(REWARM_AFTER * 2)
            .unwrap();
        analysis.take_over().await;
        assert!(
            !analysis.baseline.is_empty(),
            "baselines learned from the rollups"
        );
    }
}
