//! The analysis task: every finished run goes to the anomaly [`baseline::engine::Engine`],
//! then with the episodes it started or ended to the incident state machine
//! ([`alert::engine::Engine`]), whose changes are committed to the store (incident, timeline
//! and notifications together) before the outbox is woken to deliver them. API commands
//! (acknowledge, resolve) and a clock tick (reminders, flapping, maintenance) arrive here too,
//! so one task owns all incident state and needs no lock.
//!
//! Runs reach it through a bounded queue that the scheduler's sink never waits on; at
//! shutdown the queue is drained before the task ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc};

use crate::alert::commands::{Action, Command, CommandFailed};
use crate::alert::engine::CommandError;
use crate::alert::{self, Incident, IncidentState};
use crate::api::Metrics;
use crate::baseline::{self, Transition};
use crate::journey::Journey;
use crate::runner::RunResult;
use crate::store::alerts::{IncidentChange, IncidentFilter};
use crate::store::{EpisodeFilter, Store};

/// Runs waiting for analysis before new ones are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// How often reminders, flapping and maintenance windows are looked at.
const TICK: Duration = Duration::from_secs(5);

pub type Sender = mpsc::Sender<(Arc<Journey>, RunResult)>;

pub fn channel() -> (Sender, mpsc::Receiver<(Arc<Journey>, RunResult)>) {
    mpsc::channel(QUEUE)
}

pub struct Analysis {
    pub baseline: baseline::engine::Engine,
    pub alerts: alert::engine::Engine,
    pub store: Store,
    /// Wakes the outbox when notifications were queued.
    pub outbox: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl Analysis {
    /// Loads the incidents a previous process left active (or resolved recently enough to
    /// reopen) and the open anomaly episodes.
    pub async fn resume(&mut self, lookback: chrono::Duration) -> crate::store::Result<usize> {
        let now = Utc::now();
        let incidents = self
            .store
            .incidents(&IncidentFilter {
                since: Some(now - lookback),
                ..IncidentFilter::default()
            })
            .await?;
        let episodes = self
            .store
            .episodes(&EpisodeFilter {
                open_only: true,
                ..EpisodeFilter::default()
            })
            .await?;
        let active = incidents
            .iter()
            .filter(|i| i.state != IncidentState::Resolved)
            .count();
        self.alerts.resume(incidents, &episodes, now);
        self.metrics.set_open_incidents(active);
        Ok(active)
    }

    /// Until every run sender is gone (the scheduler has stopped), then returns.
    pub async fn run(
        mut self,
        mut runs: mpsc::Receiver<(Arc<Journey>, RunResult)>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                run = runs.recv() => match run {
                    Some((journey, result)) => self.on_run(&journey, &result).await,
                    None => return,
                },
                Some(command) = commands.recv() => self.on_command(command).await,
                _ = tick.tick() => {
                    for change in self.alerts.tick(Utc::now()) {
                        self.commit(change).await;
                    }
                }
            }
        }
    }

    async fn on_run(&mut self, journey: &Journey, result: &RunResult) {
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
        match self.store.incident(id).await {
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
        match self.store.save_incident(&change).await {
            Ok(id) => {
                self.alerts.saved(&journey, id);
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

fn log_episode(event: &baseline::engine::EpisodeEvent) {
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
