//! The service's digest duty: at the end of every period, each owner's digest is computed,
//! stored once (the store's `(owner, from, to)` key makes a second save a no-op), then
//! delivered to the owner's channels.
//!
//! Crash safety comes from the order: save, then deliver, then record each channel's outcome,
//! then mark the digest done. A restart finds saved-but-undone digests and delivers them to the
//! channels without an outcome, so nothing is lost and nothing already delivered is resent
//! (except a channel whose send succeeded in the instant before the crash: at least once, with
//! a stable Message-ID). Only the latest period is caught up after downtime, not every missed
//! one. Time comes in as `now`.

// The cycle is the service duty that decides when "now" is.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::config::DigestConfig;
use super::deliver::DigestChannel;
use super::model::Digest;
use super::render::LinkBase;
use crate::channels::DeliveryError;
use crate::channels::config::Channels;
use crate::journey::Journey;
use crate::store::digest::{DigestDelivery, StoredDigest};
use crate::store::{Store, StoreError};

/// How often undelivered digests are retried.
const RETRY_EVERY: Duration = Duration::from_secs(60);

pub struct DigestCycle {
    pub store: Store,
    pub config: DigestConfig,
    pub links: LinkBase,
    pub channels: BTreeMap<String, DigestChannel>,
    /// A channel still failing this long after the digest was made is given up on.
    pub give_up_after: Duration,
}

/// What one [`DigestCycle::tick`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Tick {
    /// Digests computed and stored (new ones).
    pub created: Vec<i64>,
    /// `(digest, channel)` delivered.
    pub delivered: Vec<(i64, String)>,
    /// `(digest, channel, error)` that failed for good.
    pub failed: Vec<(i64, String, String)>,
    /// Deliveries to try again later.
    pub pending: usize,
}

/// Where digests go and how long a delivery is retried: from `[alerting]`.
pub struct Delivery<'a> {
    pub channels: &'a Channels,
    pub links: LinkBase,
    pub give_up_after: std::time::Duration,
}

impl DigestCycle {
    pub fn new(config: DigestConfig, delivery: Delivery<'_>, store: Store) -> DigestCycle {
        let names: BTreeSet<&String> = config
            .channels
            .iter()
            .chain(config.owners.values().flat_map(|o| &o.channels))
            .collect();
        let channels = names
            .into_iter()
            .filter_map(|name| match DigestChannel::new(name, delivery.channels) {
                Ok(c) => Some((name.clone(), c)),
                Err(e) => {
                    tracing::error!(channel = %name, error = %e, "digest channel unusable");
                    None
                }
            })
            .collect();
        DigestCycle {
            store,
            links: delivery.links,
            config,
            channels,
            give_up_after: delivery.give_up_after,
        }
    }

    /// Makes the latest complete period's digests that do not exist yet, then delivers every
    /// digest not done.
    pub async fn tick(
        &self,
        journeys: &[Arc<Journey>],
        now: DateTime<Utc>,
    ) -> Result<Tick, StoreError> {
        let mut tick = Tick::default();
        if let Some((from, to)) = self.config.last_complete_period(now) {
            let refs: Vec<&Journey> = journeys.iter().map(|j| j.as_ref()).collect();
            let owners: BTreeSet<&str> = refs.iter().filter_map(|j| j.owner.as_deref()).collect();
            for owner in owners {
                if self
                    .store
                    .digests()
                    .digests(Some(owner), 1)
                    .await?
                    .first()
                    .is_some_and(|d| d.meta.from == from && d.meta.to == to)
                {
                    continue;
                }
                let digest = super::compute(&self.store, owner, &refs, from, to, now).await?;
                if digest.summary.runs == 0 && digest.incidents.is_empty() {
                    // Nothing ran (a new install, or journeys added since): nothing to report.
                    continue;
                }
                let body = serde_json::to_value(&digest).expect("a digest serializes to JSON");
                let (id, new) = self
                    .store
                    .digests()
                    .save_digest(owner, from, to, now, &body)
                    .await?;
                if new {
                    tracing::info!(digest = id, owner, %from, %to, "feedback digest made");
                    tick.created.push(id);
                }
            }
        }
        for stored in self.store.digests().unsent_digests().await? {
            self.deliver(&stored, now, &mut tick).await?;
        }
        Ok(tick)
    }

    async fn deliver(
        &self,
        stored: &StoredDigest,
        now: DateTime<Utc>,
        tick: &mut Tick,
    ) -> Result<(), StoreError> {
        // An unreadable body (written by a newer version?) fails its deliveries, not the duty.
        let digest = serde_json::from_value::<Digest>(stored.body.clone())
            .map_err(|e| format!("the stored digest is unreadable: {e}"));
        let done: BTreeSet<String> = self
            .store
            .digests()
            .digest_deliveries(stored.meta.id)
            .await?
            .into_iter()
            .map(|d| d.channel)
            .collect();
        let expired = now - stored.meta.created_at
            > chrono::Duration::from_std(self.give_up_after).unwrap_or(chrono::Duration::MAX);
        let mut pending = 0;
        for name in self.config.channels_of(&stored.meta.owner) {
            if done.contains(name) {
                continue;
            }
            let permanent = |message: String| DeliveryError::Permanent {
                status: None,
                message,
            };
            let outcome = match (&digest, self.channels.get(name)) {
                (Ok(digest), Some(channel)) => {
                    channel.send(stored.meta.id, digest, &self.links).await
                }
                (Err(e), _) => Err(permanent(e.clone())),
                (_, None) => Err(permanent(format!(
                    "channel `{name}` is unusable (see the log at start)"
                ))),
            };
            let (status, error) = match outcome {
                Ok(_) => ("delivered", None),
                Err(DeliveryError::Retry { message, .. }) if !expired => {
                    tracing::warn!(digest = stored.meta.id, channel = %name, error = %message, "digest not delivered; will retry");
                    pending += 1;
                    continue;
                }
                Err(e) => ("failed", Some(e.to_string())),
            };
            self.store
                .digests()
                .record_digest_delivery(
                    stored.meta.id,
                    &DigestDelivery {
                        channel: name.clone(),
                        status: status.into(),
                        at: now,
                        error: error.clone(),
                    },
                )
                .await?;
            match error {
                None => tick.delivered.push((stored.meta.id, name.clone())),
                Some(e) => {
                    tracing::error!(digest = stored.meta.id, channel = %name, error = %e, "digest delivery failed for good");
                    tick.failed.push((stored.meta.id, name.clone(), e));
                }
            }
        }
        if pending == 0 {
            self.store
                .digests()
                .mark_digest_sent(stored.meta.id, now)
                .await?;
        }
        tick.pending += pending;
        Ok(())
    }

    /// Ticks at start, at every period's end, and every minute while deliveries are pending.
    pub async fn run(
        &self,
        journeys: impl Fn() -> Vec<Arc<Journey>> + Send,
        stop: CancellationToken,
    ) {
        loop {
            let now = Utc::now();
            let wait = match self.tick(&journeys(), now).await {
                Ok(t) if t.pending > 0 => RETRY_EVERY,
                Ok(_) => self.until_next_boundary(now),
                Err(e) => {
                    tracing::error!(error = %e, "digests: store error; retrying");
                    RETRY_EVERY
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn until_next_boundary(&self, now: DateTime<Utc>) -> Duration {
        self.config
            .next_boundary(now)
            .and_then(|b| (b - now).to_std().ok())
            // Whole periods can be months: wake at least hourly, which also absorbs clock jumps.
            .map_or(RETRY_EVERY, |d| d.min(Duration::from_secs(3600)))
    }
}
