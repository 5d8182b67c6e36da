//! The service's Prometheus metrics (`prometheus-client`): what is counted as runs are stored
//! ([`Metrics::record_run`]) and deliveries made, and the gauges mirrored from their owners
//! (scheduler, writer, telemetry) at scrape time, so the two never drift apart. `/metrics`
//! (`crate::api`) only encodes them.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::run::{RunResult, StepStatus};
use crate::scheduler::SchedulerStats;
use crate::telemetry::TelemetryStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    journey: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    /// `delivered`, `retry` or `failed` (given up).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabels {
    channel: String,
    /// `pending`, `delivered`, `failed` or `muted`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    journey: String,
    step: String,
    kind: String,
}

/// 1 ms to about 65 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    step_duration: Family<StepLabels, Histogram, fn() -> Histogram>,
    scheduling_lag: Histogram,
    runs_dropped: Counter,
    runs_missed: Counter,
    in_flight: Gauge,
    waiting_for_permit: Gauge,
    journeys: Gauge,
    skipped_overlap: Counter,
    abandoned: Counter,
    writer_queue: Gauge,
    spans_lost: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
    incidents_open: Gauge,
    leader: Gauge,
    outbox: Family<OutboxLabels, Gauge>,
    /// Serialises scrapes: counters mirrored from their owners are advanced by differences.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A new metric registered as `name` with `help`, and the handle that updates it.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("waymark");
        let runs = registered(
            &mut registry,
            "runs",
            "Runs completed, by journey and outcome",
        );
        let step_duration: Family<StepLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_buckets);
        registry.register_with_unit(
            "step_duration",
            "Duration of steps that ran (last attempt), by journey, step and kind",
            Unit::Seconds,
            step_duration.clone(),
        );
        let scheduling_lag = latency_buckets();
        registry.register_with_unit(
            "scheduling_lag",
            "How late runs started compared to their schedule",
            Unit::Seconds,
            scheduling_lag.clone(),
        );
        Metrics {
            runs,
            step_duration,
            scheduling_lag,
            runs_dropped: registered(
                &mut registry,
                "store_runs_dropped",
                "Runs not stored because the store writer's queue was full or closed",
            ),
            runs_missed: registered(
                &mut registry,
                "runs_missed",
                "Ticks a node claimed and never stored, because it stopped mid-run (counted by the leader)",
            ),
            in_flight: registered(
                &mut registry,
                "scheduler_runs_in_flight",
                "Runs executing now",
            ),
            waiting_for_permit: registered(
                &mut registry,
                "scheduler_runs_waiting_for_permit",
                "Runs waiting for a concurrency permit now",
            ),
            journeys: registered(
                &mut registry,
                "scheduler_journeys",
                "Journeys being scheduled",
            ),
            skipped_overlap: registered(
                &mut registry,
                "scheduler_skipped_overlap",
                "Ticks skipped because the journey's previous run was still in progress",
            ),
            abandoned: registered(
                &mut registry,
                "scheduler_runs_abandoned",
                "Runs dropped at shutdown after the grace period",
            ),
            writer_queue: registered(
                &mut registry,
                "store_writer_queue_depth",
                "Runs queued for the store writer",
            ),
            spans_lost: registered(
                &mut registry,
                "telemetry_spans_lost",
                "Spans that could not be exported (collector down or queue full)",
            ),
            deliveries: registered(
                &mut registry,
                "notification_attempts",
                "Notification delivery attempts, by channel and outcome (delivered, retry, failed)",
            ),
            incidents_open: registered(
                &mut registry,
                "incidents_open",
                "Incidents open or acknowledged",
            ),
            leader: registered(
                &mut registry,
                "cluster_leader",
                "1 while this node holds the leader lease and runs the singleton duties, else 0",
            ),
            outbox: registered(
                &mut registry,
                "notifications",
                "Notifications in the store, by channel and status (failed = given up)",
            ),
            registry,
            scrape: Mutex::new(()),
        }
    }

    /// Counts a completed run: its outcome, its steps' durations and its scheduling lag.
    pub fn record_run(&self, result: &RunResult, lag: Duration) {
        let outcome = result.outcome.as_str().to_string();
        self.runs
            .get_or_create(&RunLabels {
                journey: result.journey.clone(),
                outcome,
            })
            .inc();
        for step in &result.steps {
            if step.status == StepStatus::Skipped {
                continue;
            }
            if let Some(total) = step.timings.total {
                self.step_duration
                    .get_or_create(&StepLabels {
                        journey: result.journey.clone(),
                        step: step.name.clone(),
                        kind: step.kind.clone(),
                    })
                    .observe(total.as_secs_f64());
            }
        }
        self.scheduling_lag.observe(lag.as_secs_f64());
    }

    /// A notification delivery attempt and its outcome.
    pub fn record_delivery(&self, channel: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn set_open_incidents(&self, n: usize) {
        self.incidents_open.set(n as i64);
    }

    /// The outbox as the store counts it (read at each scrape).
    pub fn set_notification_counts(
        &self,
        counts: &[(String, crate::store::alerts::NotificationStatus, u64)],
    ) {
        for (channel, status, n) in counts {
            self.outbox
                .get_or_create(&OutboxLabels {
                    channel: channel.clone(),
                    status: status.as_str().to_string(),
                })
                .set(*n as i64);
        }
    }

    /// A run the writer would not take.
    pub fn record_dropped(&self) {
        self.runs_dropped.inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Ticks claimed and never stored.
    pub fn record_missed(&self, n: u64) {
        self.runs_missed.inc_by(n);
    }

    pub fn runs_dropped(&self) -> u64 {
        self.runs_dropped.get()
    }

    /// The exposition, with the owners' counters as of now.
    pub fn encode(
        &self,
        scheduler: Option<SchedulerStats>,
        writer_queue: Option<usize>,
        telemetry: Option<TelemetryStats>,
    ) -> Result<String, std::fmt::Error> {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let mirror = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        if let Some(s) = scheduler {
            self.in_flight.set(s.in_flight as i64);
            self.waiting_for_permit.set(s.waiting_for_permit as i64);
            self.journeys.set(s.journeys as i64);
            mirror(&self.skipped_overlap, s.skipped_overlap);
            mirror(&self.abandoned, s.abandoned);
        }
        if let Some(depth) = writer_queue {
            self.writer_queue.set(depth as i64);
        }
        if let Some(t) = telemetry {
            mirror(&self.spans_lost, t.spans_lost);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
