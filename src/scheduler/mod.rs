//! Runs journeys on their schedules: one task per journey plans its next instant
//! ([`plan::next_fire`]), sleeps until it on the injected [`Clock`], and dispatches a run to a
//! [`RunExecutor`].
//!
//! Rules:
//! - at most [`SchedulerConfig::max_concurrent_runs`] runs execute at once (a semaphore); a run
//!   waiting for a permit has started its *lag*, which the executor receives;
//! - a journey never overlaps itself: a tick that comes while its previous run is queued or
//!   executing is skipped and counted ([`SchedulerStats::skipped_overlap`]), never queued;
//! - the scheduler never retries (a panicking executor is counted, not retried); a tick missed because the process could not run (suspend,
//!   clock step) is not caught up: planning resumes after the current time;
//! - [`Scheduler::replace_journeys`] hot-reloads: removed journeys stop planning (their
//!   in-flight run finishes), added ones start, changed ones restart their schedule;
//! - [`Scheduler::shutdown`] stops planning and starting runs, waits for in-flight runs up to
//!   [`SchedulerConfig::shutdown_grace`], then drops those still running (reported abandoned).

pub mod clock;
pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journey::Journey;
use crate::run::RunResult;
use crate::runner::Runner;

pub use clock::{BoxFuture, Clock, SystemClock, TokioClock};
pub use plan::{interval_offset, next_fire};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Runs executing at once, all journeys together. Default: [`default_concurrency`].
    pub max_concurrent_runs: usize,
    /// How long [`Scheduler::shutdown`] waits for in-flight runs. Default: 30 s.
    pub shutdown_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_runs: default_concurrency(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Runs executing at once by default: 16 per available CPU (8 if the count is unknown). Runs
/// mostly wait on the network, so several per core is the right order of magnitude; the
/// service config's `concurrency` has the same default.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(8, |n| n.get() * 16)
}

/// One dispatched run, as the executor receives it.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub journey: Arc<Journey>,
    /// The instant the schedule asked for.
    pub planned: DateTime<Utc>,
    /// When the run actually starts (after it got a concurrency permit).
    pub started: DateTime<Utc>,
    /// `started - planned`, zero if negative.
    pub lag: Duration,
}

/// Performs one run. It is called at most once per tick and never retried; the scheduler only
/// waits for the future to complete.
pub trait RunExecutor: Send + Sync + 'static {
    fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()>;
}

/// Where a [`RunnerExecutor`] hands each result (the store, in `waymark serve`).
pub trait RunSink: Send + Sync + 'static {
    fn record(&self, run: PlannedRun, result: RunResult) -> BoxFuture<'_, ()>;
}

/// The production executor: [`Runner::run`], then the result to a [`RunSink`].
pub struct RunnerExecutor<S> {
    pub runner: Runner,
    pub sink: S,
}

impl<S: RunSink> RunExecutor for RunnerExecutor<S> {
    fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let result = self.runner.run(&run.journey).await;
            self.sink.record(run, result).await;
        })
    }
}

/// Counters, for `/metrics`. Totals since the scheduler was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Runs handed to the executor.
    pub started: u64,
    /// Runs whose executor future completed.
    pub finished: u64,
    /// Ticks skipped because the journey's previous run was still queued or executing.
    pub skipped_overlap: u64,
    /// Runs whose executor panicked (a bug; logged as an error).
    pub panicked: u64,
    /// Runs dropped at shutdown after the grace period.
    pub abandoned: u64,
    /// Runs that were waiting for a permit when shutdown began, and so never started.
    pub cancelled_queued: u64,
    /// Runs executing now.
    pub in_flight: u64,
    /// Runs waiting for a concurrency permit now.
    pub waiting_for_permit: u64,
    /// Journeys being scheduled.
    pub journeys: u64,
}

/// What [`Scheduler::shutdown`] returns: the final counters.
pub type ShutdownSummary = SchedulerStats;

/// What [`Scheduler::replace_journeys`] did, by journey name (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// What [`Scheduler::run_now`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNow {
    /// A run was dispatched as if the schedule had fired now (it still waits for a permit).
    Dispatched,
    /// A run of the journey is queued or executing: nothing was dispatched (no overlap).
    AlreadyRunning,
    /// No journey of that name is scheduled.
    Unknown,
    /// Shutdown has begun.
    ShuttingDown,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    skipped_overlap: AtomicU64,
    panicked: AtomicU64,
    abandoned: AtomicU64,
    cancelled_queued: AtomicU64,
    in_flight: AtomicU64,
    waiting: AtomicU64,
}

struct Shared {
    executor: Arc<dyn RunExecutor>,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    grace: Duration,
    counters: Counters,
    /// Cancelled when shutdown begins: no planning, no new run.
    stop: CancellationToken,
    /// Cancelled when the grace period is over: in-flight runs are dropped.
    abandon: CancellationToken,
    loops: TaskTracker,
    runs: TaskTracker,
    /// Where planning loops and runs execute: the runtime `Scheduler::new` was called in,
    /// whoever calls later (the reloader and the API's manual trigger run elsewhere).
    runtime: tokio::runtime::Handle,
}

struct Entry {
    journey: Arc<Journey>,
    /// Stops this journey's planning loop (a child of `Shared::stop`).
    cancel: CancellationToken,
    /// Set while a run of this journey is queued or executing; kept across a reload.
    busy: Arc<AtomicBool>,
}

#[derive(Default)]
struct Journeys {
    scheduled: HashMap<String, Entry>,
    /// Busy flags of removed journeys whose last run may still be in flight, so that a journey
    /// removed and added back does not overlap that run.
    retired: HashMap<String, Arc<AtomicBool>>,
}

pub struct Scheduler {
    shared: Arc<Shared>,
    journeys: Mutex<Journeys>,
}

impl Scheduler {
    /// Starts scheduling `journeys` (must be called inside a tokio runtime). Journey names are
    /// unique (the loader guarantees it); of duplicates, the last one wins.
    pub fn new<J: Into<Arc<Journey>>>(
        journeys: impl IntoIterator<Item = J>,
        executor: Arc<dyn RunExecutor>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        let shared = Arc::new(Shared {
            executor,
            clock,
            permits: Arc::new(Semaphore::new(config.max_concurrent_runs.max(1))),
            grace: config.shutdown_grace,
            counters: Counters::default(),
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
            loops: TaskTracker::new(),
            runs: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
        });
        let scheduler = Self {
            shared,
            journeys: Mutex::new(Journeys::default()),
        };
        scheduler.replace_journeys(journeys);
        scheduler
    }

    /// Hot reload: the scheduled set becomes `journeys`. A journey is *changed* if its
    /// `source.content_sha256` or its schedule differs; its schedule restarts from now, and
    /// it still does not overlap a run of its previous version. Removed journeys stop
    /// planning; a run of theirs already in flight finishes (and a journey removed and added
    /// back does not overlap it either). No-op after shutdown began.
    pub fn replace_journeys<J: Into<Arc<Journey>>>(
        &self,
        journeys: impl IntoIterator<Item = J>,
    ) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        if self.shared.stop.is_cancelled() {
            tracing::warn!("journeys replaced after scheduler shutdown; ignored");
            return summary;
        }
        let mut incoming: HashMap<String, Arc<Journey>> = HashMap::new();
        for j in journeys {
            let j: Arc<Journey> = j.into();
            incoming.insert(j.name.clone(), j);
        }
        let mut state = self.journeys.lock().unwrap_or_else(|e| e.into_inner());
        let Journeys {
            scheduled: map,
            retired,
        } = &mut *state;
        retired.retain(|_, busy| busy.load(Ordering::Acquire));
        let removed: Vec<String> = map
            .keys()
            .filter(|name| !incoming.contains_key(*name))
            .cloned()
            .collect();
        for name in removed {
            if let Some(entry) = map.remove(&name) {
                entry.cancel.cancel();
                retired.insert(name.clone(), entry.busy);
                tracing::info!(journey = %name, "journey removed from schedule");
            }
            summary.removed.push(name);
        }
        for (name, journey) in incoming {
            let busy = match map.get(&name) {
                Some(old)
                    if old.journey.source.content_sha256 == journey.source.content_sha256
                        && old.journey.schedule == journey.schedule =>
                {
                    summary.unchanged.push(name);
                    continue;
                }
                Some(old) => {
                    old.cancel.cancel();
                    tracing::info!(journey = %name, "journey changed; schedule restarted");
                    summary.changed.push(name.clone());
                    old.busy.clone()
                }
                None => {
                    summary.added.push(name.clone());
                    retired.remove(&name).unwrap_or_default()
                }
            };
            let cancel = self.shared.stop.child_token();
            self.shared.loops.spawn_on(
                journey_loop(
                    self.shared.clone(),
                    journey.clone(),
                    busy.clone(),
                    cancel.clone(),
                ),
                &self.shared.runtime,
            );
            map.insert(
                name,
                Entry {
                    journey,
                    cancel,
                    busy,
                },
            );
        }
        for list in [
            &mut summary.added,
            &mut summary.removed,
            &mut summary.changed,
            &mut summary.unchanged,
        ] {
            list.sort();
        }
        summary
    }

    /// Runs a scheduled journey now (the API's manual trigger), under the same rules as a
    /// tick: the concurrency limit, no overlap with a run of the same journey, counted in the
    /// stats. Its schedule is not changed.
    pub fn run_now(&self, name: &str) -> RunNow {
        if self.shared.stop.is_cancelled() {
            return RunNow::ShuttingDown;
        }
        let (journey, busy) = {
            let state = self.journeys.lock().unwrap_or_else(|e| e.into_inner());
            match state.scheduled.get(name) {
                Some(e) => (e.journey.clone(), e.busy.clone()),
                None => return RunNow::Unknown,
            }
        };
        if busy.swap(true, Ordering::AcqRel) {
            return RunNow::AlreadyRunning;
        }
        let guard = BusyGuard(busy);
        let now = self.shared.clock.now();
        self.shared.runs.spawn_on(
            run_one(self.shared.clone(), journey, now, guard),
            &self.shared.runtime,
        );
        RunNow::Dispatched
    }

    pub fn stats(&self) -> SchedulerStats {
        let c = &self.shared.counters;
        let journeys = self
            .journeys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scheduled
            .len();
        SchedulerStats {
            started: c.started.load(Ordering::Relaxed),
            finished: c.finished.load(Ordering::Relaxed),
            skipped_overlap: c.skipped_overlap.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            cancelled_queued: c.cancelled_queued.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            waiting_for_permit: c.waiting.load(Ordering::Relaxed),
            journeys: journeys as u64,
        }
    }

    /// Graceful shutdown: stop planning and starting runs, wait up to the grace period (on
    /// the scheduler's clock) for in-flight runs, drop the rest, and return the counters.
    /// Calling it again returns the counters again.
    pub async fn shutdown(&self) -> ShutdownSummary {
        let shared = &self.shared;
        let deadline = shared.clock.now()
            + chrono::Duration::from_std(shared.grace).unwrap_or(chrono::Duration::MAX);
        shared.stop.cancel();
        self.journeys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scheduled
            .clear();
        // Planning loops end at once on `stop`; after them, nothing dispatches a run.
        shared.loops.close();
        shared.loops.wait().await;
        shared.runs.close();
        tokio::select! {
            () = shared.runs.wait() => {}
            () = shared.clock.sleep_until(deadline) => {
                let left = shared.counters.in_flight.load(Ordering::Relaxed);
                tracing::warn!(runs = left, "shutdown grace period over; abandoning runs");
                shared.abandon.cancel();
                shared.runs.wait().await;
            }
        }
        let stats = self.stats();
        tracing::info!(
            started = stats.started,
            finished = stats.finished,
            skipped_overlap = stats.skipped_overlap,
            abandoned = stats.abandoned,
            "scheduler stopped"
        );
        stats
    }

    /// Waits for `token`, then shuts down (for `waymark serve`'s signal handling).
    pub async fn shutdown_on(&self, token: CancellationToken) -> ShutdownSummary {
        token.cancelled().await;
        self.shutdown().await
    }
}

impl Drop for Scheduler {
    /// Without a shutdown, dropping the scheduler stops planning; in-flight runs go on.
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn journey_loop(
    shared: Arc<Shared>,
    journey: Arc<Journey>,
    busy: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let mut after = shared.clock.now();
    loop {
        let Some(planned) = next_fire(&journey.schedule, &journey.name, after) else {
            tracing::info!(journey = %journey.name, "schedule has no future instant");
            return;
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = shared.clock.sleep_until(planned) => {}
        }
        if cancel.is_cancelled() {
            return;
        }
        dispatch(&shared, &journey, &busy, planned);
        // Ticks that passed while this task could not run are not caught up.
        after = planned.max(shared.clock.now());
    }
}

/// Clears a journey's busy flag when its run task ends, however it ends.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Decrements a gauge when dropped.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    journey: &Arc<Journey>,
    busy: &Arc<AtomicBool>,
    planned: DateTime<Utc>,
) {
    if busy.swap(true, Ordering::AcqRel) {
        shared
            .counters
            .skipped_overlap
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            journey = %journey.name,
            planned = %planned,
            "tick skipped: previous run still in progress"
        );
        return;
    }
    let guard = BusyGuard(busy.clone());
    shared.runs.spawn_on(
        run_one(shared.clone(), journey.clone(), planned, guard),
        &shared.runtime,
    );
}

async fn run_one(
    shared: Arc<Shared>,
    journey: Arc<Journey>,
    planned: DateTime<Utc>,
    _busy: BusyGuard,
) {
    let counters = &shared.counters;
    let permit = {
        let _waiting = Gauge::up(&counters.waiting);
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => None,
            permit = shared.permits.clone().acquire_owned() => permit.ok(),
        }
    };
    let Some(_permit) = permit.filter(|_| !shared.stop.is_cancelled()) else {
        counters.cancelled_queued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(journey = %journey.name, "queued run dropped at shutdown");
        return;
    };
    let started = shared.clock.now();
    let lag = (started - planned).to_std().unwrap_or(Duration::ZERO);
    counters.started.fetch_add(1, Ordering::Relaxed);
    let _in_flight = Gauge::up(&counters.in_flight);
    tracing::debug!(
        journey = %journey.name,
        planned = %planned,
        lag_ms = lag.as_millis() as u64,
        "run dispatched"
    );
    let run = PlannedRun {
        journey: journey.clone(),
        planned,
        started,
        lag,
    };
    tokio::select! {
        biased;
        () = shared.abandon.cancelled() => {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(journey = %journey.name, planned = %planned, "run abandoned at shutdown");
        }
        outcome = AssertUnwindSafe(shared.executor.execute(run)).catch_unwind() => match outcome {
            Ok(()) => {
                counters.finished.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counters.panicked.fetch_add(1, Ordering::Relaxed);
                tracing::error!(journey = %journey.name, planned = %planned, "run executor panicked");
            }
        }
    }
}
