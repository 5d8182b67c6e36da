//! The delivery worker: sends the notifications the store holds as `pending`, after they were
//! committed with the incident change that caused them.
//!
//! - Order: per incident and channel, a notification is only sent once the earlier ones are
//!   delivered or given up, so a resolve never overtakes its trigger.
//! - Retries: exponential backoff with jitter, never sooner than the receiver's `Retry-After`;
//!   a permanent error, or still failing `give_up_after` after creation, marks it `failed`.
//! - Every attempt is recorded. A crash between sending and recording sends the notification
//!   again after restart: at most a duplicate, with the same id and dedup key; never a loss.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alert::route::LOG_CHANNEL;
use crate::alert::{Links, Notification};
use crate::channels::{self as notify, DeliveryError, Notifier};
use crate::config::alerting::AlertConfig;
use crate::service::metrics::Metrics;
use crate::store::Store;
use crate::store::alerts::{AfterAttempt, DeliveryAttempt, DeliveryOutcome, NotificationRecord};

/// Notifications read per pass; more wait for the next pass.
const BATCH: u32 = 500;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;
/// Longest sleep between passes when nothing is due (new notifications wake it at once).
const IDLE: Duration = Duration::from_secs(1);

/// Backoff between attempts: `initial`, doubled each time, at most `max`, each delay drawn in
/// [½, 1] of its value so that many failing notifications do not retry in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
            .min(self.max);
        exp.mul_f64(rng.random_range(0.5..=1.0))
    }
}

/// Builds dashboard and trace links at send time, from the config as it is now.
#[derive(Debug, Clone, Default)]
pub struct Linker {
    dashboard_url: Option<String>,
    trace_url: Option<String>,
}

impl Linker {
    pub fn new(config: &AlertConfig) -> Linker {
        Linker {
            dashboard_url: config
                .dashboard_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            trace_url: config.trace_url.as_deref().map(str::to_string),
        }
    }

    pub fn links(&self, n: &Notification) -> Links {
        let i = &n.incident;
        let page = |path: String| {
            self.dashboard_url
                .as_ref()
                .map(|base| format!("{base}{path}"))
        };
        Links {
            incident: page(format!("/app/incidents/{}", i.id)),
            run: i
                .cause
                .run_id
                .and_then(|id| page(format!("/app/runs/{id}"))),
            trace: match (&self.trace_url, &i.cause.trace_id) {
                (Some(t), Some(id)) => Some(t.replace("{trace_id}", id)),
                _ => None,
            },
            runbook: i.runbook.clone(),
        }
    }
}

pub struct Outbox {
    store: Store,
    notifiers: HashMap<String, Box<dyn Notifier>>,
    linker: Linker,
    backoff: Backoff,
    give_up_after: chrono::Duration,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(config: &AlertConfig, store: Store, metrics: Arc<Metrics>) -> Outbox {
        let mut notifiers: HashMap<String, Box<dyn Notifier>> = config
            .channels
            .iter()
            .map(|(name, c)| (name.clone(), notify::build(c)))
            .collect();
        notifiers
            .entry(LOG_CHANNEL.to_string())
            .or_insert_with(notify::log_notifier);
        Outbox {
            store,
            notifiers,
            linker: Linker::new(config),
            backoff: Backoff {
                initial: config.retry.initial,
                max: config.retry.max,
            },
            give_up_after: chrono::Duration::from_std(config.give_up_after)
                .unwrap_or(chrono::Duration::MAX),
            metrics,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the worker when something was queued (it polls every second anyway).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Delivers until `stop` is cancelled; the pass in progress finishes first.
    pub async fn run(&self, stop: CancellationToken) {
        loop {
            let next = match self.pass(Utc::now()).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "outbox: cannot read pending notifications");
                    Some(Utc::now() + chrono::Duration::seconds(5))
                }
            };
            let sleep = next.map_or(IDLE, |t| {
                (t - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE)
            });
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Sends what is due; returns when the next pending notification is due, if any.
    pub async fn pass(&self, now: DateTime<Utc>) -> crate::store::Result<Option<DateTime<Utc>>> {
        let pending = self.store.incidents().pending_notifications(BATCH).await?;
        // Only the oldest pending notification of each incident × channel may go.
        let mut heads = HashSet::new();
        let heads: Vec<NotificationRecord> = pending
            .into_iter()
            .filter(|r| heads.insert((r.notification.incident.id, r.notification.channel.clone())))
            .collect();
        let (due, later): (Vec<_>, Vec<_>) = heads
            .into_iter()
            .partition(|r| r.next_attempt_at.is_none_or(|t| t <= now));
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |r| self.deliver(r))
            .await;
        Ok(later.iter().filter_map(|r| r.next_attempt_at).min())
    }

    async fn deliver(&self, record: NotificationRecord) {
        let mut n = record.notification;
        n.links = self.linker.links(&n);
        let started = Instant::now();
        let result = match self.notifiers.get(&n.channel) {
            Some(notifier) => {
                match tokio::time::timeout(notify::SEND_TIMEOUT * 2, notifier.send(&n)).await {
                    Ok(result) => result,
                    Err(_) => Err(DeliveryError::Retry {
                        status: None,
                        message: "the notifier did not answer in time".into(),
                        retry_after: None,
                    }),
                }
            }
            None => Err(DeliveryError::Permanent {
                status: None,
                message: format!("channel `{}` is not configured any more", n.channel),
            }),
        };
        let at = Utc::now();
        let attempts = record.attempts + 1;
        let (after, attempt) = match result {
            Ok(delivered) => (
                AfterAttempt::Delivered,
                attempt_of(
                    at,
                    started,
                    delivered.status,
                    DeliveryOutcome::Delivered,
                    None,
                ),
            ),
            Err(e) => {
                let after = match &e {
                    DeliveryError::Permanent { .. } => AfterAttempt::Failed,
                    DeliveryError::Retry { retry_after, .. } => {
                        let delay = self
                            .backoff
                            .delay(attempts, &mut rand::rng())
                            .max(retry_after.unwrap_or_default());
                        let next = at + chrono::Duration::from_std(delay).unwrap_or_default();
                        if next - n.created_at > self.give_up_after {
                            AfterAttempt::Failed
                        } else {
                            AfterAttempt::RetryAt(next)
                        }
                    }
                };
                let outcome = match after {
                    AfterAttempt::Failed => DeliveryOutcome::Failed,
                    _ => DeliveryOutcome::Retry,
                };
                (
                    after,
                    attempt_of(at, started, e.status(), outcome, Some(e.to_string())),
                )
            }
        };
        self.metrics
            .record_delivery(&n.channel, attempt.outcome.as_str());
        match after {
            AfterAttempt::Failed => tracing::error!(
                channel = %n.channel, notification = %n.id, incident = n.incident.id,
                attempts, error = attempt.error.as_deref().unwrap_or(""),
                "notification given up"
            ),
            AfterAttempt::RetryAt(next) => tracing::warn!(
                channel = %n.channel, notification = %n.id, attempts, next = %next,
                error = attempt.error.as_deref().unwrap_or(""),
                "notification not delivered; will retry"
            ),
            AfterAttempt::Delivered => tracing::info!(
                channel = %n.channel, notification = %n.id, kind = n.kind.as_str(),
                incident = n.incident.id, attempts, "notification delivered"
            ),
        }
        if let Err(e) = self
            .store
            .incidents()
            .record_attempt(n.id, &attempt, after)
            .await
        {
            // The notification stays pending: it will be sent again (same id, same dedup key).
            tracing::error!(notification = %n.id, error = %e, "delivery attempt not recorded");
        }
    }
}

fn attempt_of(
    at: DateTime<Utc>,
    started: Instant,
    status: Option<u16>,
    outcome: DeliveryOutcome,
    error: Option<String>,
) -> DeliveryAttempt {
    DeliveryAttempt {
        at,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        status_code: status,
        outcome,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::IncidentChange;
    use crate::alert::NotificationKind;
    use crate::channels::test_support::{Recorder, closed_port, notification};
    use crate::store::alerts::NotificationStatus;

    /// An outbox with one webhook channel `hook` at `url`, on an in-memory store.
    async fn outbox(url: &str, give_up_after: &str) -> Outbox {
        let mut config: AlertConfig = toml::from_str(&format!(
            "give_up_after = \"{give_up_after}\"\nretry = {{ initial = \"20ms\", max = \"40ms\" }}\n\
             [channels.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"s3cret-value\"\n"
        ))
        .unwrap();
        config.validate(|_| None).unwrap();
        let store = Store::connect("sqlite::memory:").await.unwrap();
        Outbox::new(&config, store, Arc::new(Metrics::new()))
    }

    /// Queues `kinds` of one new incident to `hook`, as the engine's change would.
    async fn queue(outbox: &Outbox, kinds: &[NotificationKind]) -> Vec<uuid::Uuid> {
        let base = notification(NotificationKind::Triggered);
        let mut incident = base.incident.clone();
        incident.id = 0;
        let notifications: Vec<Notification> = kinds
            .iter()
            .map(|k| Notification {
                id: uuid::Uuid::new_v4(),
                channel: "hook".into(),
                kind: *k,
                created_at: Utc::now(),
                incident: incident.clone(),
                links: Links::default(),
            })
            .collect();
        let change = IncidentChange {
            incident,
            events: vec![],
            notifications: notifications.clone(),
            muted: vec![],
        };
        let id = outbox
            .store
            .incidents()
            .save_incident(&change)
            .await
            .unwrap();
        assert!(id > 0);
        notifications.iter().map(|n| n.id).collect()
    }

    async fn status(outbox: &Outbox, incident: i64) -> Vec<(NotificationStatus, u32)> {
        let records = outbox
            .store
            .incidents()
            .incident_notifications(incident)
            .await
            .unwrap();
        records.iter().map(|r| (r.status, r.attempts)).collect()
    }

    /// Passes until nothing is pending (or 5 s).
    async fn drain(outbox: &Outbox) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !outbox
            .store
            .incidents()
            .pending_notifications(10)
            .await
            .unwrap()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "still pending");
            outbox.pass(Utc::now()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_permanent_error_fails_at_once_and_says_why() {
        let server = Recorder::start(400, "bad request: no such hook").await;
        let outbox = outbox(&server.url("/hook"), "1h").await;
        let ids = queue(&outbox, &[NotificationKind::Triggered]).await;
        drain(&outbox).await;
        assert_eq!(status(&outbox, 1).await, [(NotificationStatus::Failed, 1)]);
        let attempts = outbox
            .store
            .incidents()
            .delivery_attempts(ids[0])
            .await
            .unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (attempts[0].status_code, attempts[0].outcome.as_str()),
            (Some(400), "failed")
        );
        assert!(
            attempts[0]
                .error
                .as_deref()
                .unwrap()
                .contains("no such hook")
        );
        let metrics = outbox.metrics.encode(None, None, None).unwrap();
        assert!(
            metrics.contains(
                "waymark_notification_attempts_total{channel=\"hook\",outcome=\"failed\"} 1"
            ),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried_until_give_up_after() {
        let url = format!("http://127.0.0.1:{}/hook", closed_port().await);
        let outbox = outbox(&url, "300ms").await;
        queue(&outbox, &[NotificationKind::Triggered]).await;
        drain(&outbox).await;
        let [(state, attempts)] = status(&outbox, 1).await[..] else {
            panic!("one notification")
        };
        assert_eq!(state, NotificationStatus::Failed);
        // 20–40 ms apart, for 300 ms: several attempts, the last one giving up.
        assert!(attempts >= 4, "{attempts} attempts");
    }

    /// The `kind` of each webhook the server received since the last call.
    fn kinds(server: &Recorder) -> Vec<String> {
        server
            .take_all()
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                body["kind"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_resolve_never_overtakes_its_trigger() {
        let server = Recorder::start(503, "down").await;
        let outbox = outbox(&server.url("/hook"), "1h").await;
        queue(
            &outbox,
            &[NotificationKind::Triggered, NotificationKind::Resolved],
        )
        .await;
        // The trigger fails and waits for its retry; the resolve stays queued behind it.
        outbox.pass(Utc::now()).await.unwrap();
        outbox
            .pass(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(kinds(&server), ["triggered", "triggered"]);
        server.answer(202, &[], "");
        drain(&outbox).await;
        assert_eq!(kinds(&server), ["triggered", "resolved"]);
        assert_eq!(
            status(&outbox, 1).await,
            [
                (NotificationStatus::Delivered, 3),
                (NotificationStatus::Delivered, 1)
            ]
        );
    }

    #[test]
    fn backoff_doubles_within_jittered_bounds_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let mut rng = rand::rng();
        for (attempts, full) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)] {
            for _ in 0..100 {
                let d = b.delay(attempts, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "{attempts}: {d:?}");
            }
        }
    }
}
