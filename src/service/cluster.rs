//! Several `waymark serve` nodes on one database: this node's identity and heartbeat, the
//! leader lease that decides which node runs the singleton duties, and the claim a run takes
//! before it starts, so that a tick planned by every node of a location runs once.
//!
//! A node alone (SQLite, or the only PostgreSQL node) takes the lease at its first beat and
//! claims every tick: nothing changes for it. The lease lasts [`LEASE_TTL`] and is renewed
//! every [`HEARTBEAT`], so when a leader dies another node takes over within
//! `LEASE_TTL + HEARTBEAT` ([`FAILOVER`]); a leader that stops cleanly releases it at once.
//!
//! A node's identity outlives its process ([`node_identity`]), so a leader that crashed and
//! restarts renews its own lease at its first beat instead of waiting for it to expire; on
//! SQLite, which only one node can use, the first beat takes the lease whoever held it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::scheduler::{BoxFuture, PlannedRun, RunExecutor};
use crate::service::catalog::Catalog;
use crate::store::Store;
use crate::store::cluster::{NodeInfo, SettleCutoffs, Tick};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// At most this long without a leader after the leader dies.
pub const FAILOVER: Duration = Duration::from_secs(20);
/// A node whose heartbeat is older than this is listed as gone.
pub const GONE_AFTER: Duration = Duration::from_secs(30);
/// A beat that has not finished after this long counts as failed: a leader whose database
/// stopped answering (a network partition drops packets, so nothing errors) steps down well
/// before its lease expires and another node takes it.
pub const BEAT_TIMEOUT: Duration = Duration::from_secs(4);
/// A claim that has not been answered after this long is given up and the tick runs.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);
const LEADER: &str = "leader";

/// This node, as the others see it.
pub struct Cluster {
    store: Store,
    node: RwLock<NodeInfo>,
    leader: watch::Sender<bool>,
    /// Set until the first beat that reached the database.
    first_beat: std::sync::atomic::AtomicBool,
}

/// This machine's host name, or empty.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The identity of the node serving at `listen` in `location` on this host: the same after a
/// restart (two processes cannot listen on one address), unless `configured` names one.
pub fn node_identity(configured: Option<&str>, location: &str, listen: SocketAddr) -> String {
    match configured {
        Some(id) => id.to_string(),
        None => format!("{}@{listen}/{location}", hostname()),
    }
}

impl Cluster {
    pub fn new(store: Store, location: &str, node_id: String) -> Arc<Cluster> {
        let now = Utc::now();
        Arc::new(Cluster {
            store,
            first_beat: std::sync::atomic::AtomicBool::new(true),
            node: RwLock::new(NodeInfo {
                node_id,
                location: location.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                hostname: hostname(),
                journeys_sha256: String::new(),
                started_at: now,
                heartbeat_at: now,
            }),
            leader: watch::channel(false).0,
        })
    }

    pub fn node_id(&self) -> String {
        self.node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .node_id
            .clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Changes of leadership, for duties that run on the leader only.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// One heartbeat and one lease attempt (taking or renewing it). Store errors leave the
    /// node a follower: a leader that cannot reach the database must not act as one.
    pub async fn beat(&self, catalog: &RwLock<Catalog>) {
        let now = Utc::now();
        let node = {
            let mut node = self.node.write().unwrap_or_else(|e| e.into_inner());
            node.heartbeat_at = now;
            node.journeys_sha256 = fingerprint(&catalog.read().unwrap_or_else(|e| e.into_inner()));
            node.clone()
        };
        if let Err(e) = self.store.cluster().heartbeat(&node).await {
            tracing::warn!(error = %e, "cluster: heartbeat not recorded");
        }
        let until = now + chrono::Duration::from_std(LEASE_TTL).unwrap_or_default();
        let first = self.first_beat.load(std::sync::atomic::Ordering::Acquire);
        let taken = if first && self.store.is_single_node() {
            self.store
                .cluster()
                .take_lease(LEADER, &node.node_id, until)
                .await
        } else {
            self.store
                .cluster()
                .acquire_lease(LEADER, &node.node_id, now, until)
                .await
        };
        let leader = match taken {
            Ok(held) => {
                self.first_beat
                    .store(false, std::sync::atomic::Ordering::Release);
                held
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster: leader lease not renewed");
                false
            }
        };
        self.lead(leader);
    }

    fn lead(&self, leader: bool) {
        if leader != self.is_leader() {
            tracing::info!(node = %self.node_id(), leader, "cluster: leadership changed");
        }
        self.leader.send_replace(leader);
    }

    /// Beats every [`HEARTBEAT`] until `stop`, then gives the lease up.
    pub async fn run(self: Arc<Self>, catalog: Arc<RwLock<Catalog>>, stop: CancellationToken) {
        loop {
            if tokio::time::timeout(BEAT_TIMEOUT, self.beat(&catalog))
                .await
                .is_err()
            {
                tracing::warn!(timeout = ?BEAT_TIMEOUT, "cluster: the database did not answer the heartbeat");
                self.lead(false);
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
        self.leader.send_replace(false);
        if let Err(e) = self
            .store
            .cluster()
            .release_lease(LEADER, &self.node_id())
            .await
        {
            tracing::warn!(error = %e, "cluster: leader lease not released");
        }
    }
}

/// SHA-256 over the sorted (name, content hash) of the scheduled journeys: equal on nodes that
/// run the same journey files.
pub fn fingerprint(catalog: &Catalog) -> String {
    let mut h = Sha256::new();
    for (name, j) in &catalog.journeys {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(j.source.content_sha256.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Runs `duty` while this node leads: started when it becomes leader, cancelled (through the
/// token it is given) when it stops leading or at `stop`, started again if it leads again.
pub async fn while_leader<F, Fut>(
    mut leadership: watch::Receiver<bool>,
    stop: CancellationToken,
    mut duty: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        // Biased: once `stop` is cancelled, leadership no longer matters.
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            led = leadership.wait_for(|l| *l) => if led.is_err() { return },
        }
        let term = stop.child_token();
        let task = tokio::spawn(duty(term.clone()));
        tokio::select! {
            biased;
            () = stop.cancelled() => {}
            _ = leadership.wait_for(|l| !*l) => {}
        }
        term.cancel();
        let _ = task.await;
    }
}

/// How long after its claim a tick's run must be stored, beyond the journey's timeout: the
/// writer's batching and a slow commit.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(60);
/// How often the leader settles claims.
pub const SETTLE_EVERY: Duration = Duration::from_secs(10);

/// One settling pass as of `now`: claims older than the longest journey timeout plus
/// [`SETTLE_MARGIN`] whose run is not stored are recorded as missed, logged and counted; so
/// are those older than the longest timeout whose node is gone (silent for [`GONE_AFTER`]),
/// since a dead node stores nothing more.
pub async fn settle_once(
    store: &Store,
    catalog: &RwLock<Catalog>,
    metrics: &crate::service::metrics::Metrics,
    now: chrono::DateTime<Utc>,
) -> Result<usize, crate::store::StoreError> {
    let longest = catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .journeys
        .values()
        .map(|j| j.timeout)
        .max()
        .unwrap_or_default();
    let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
    let missed = store
        .cluster()
        .settle_claims(SettleCutoffs {
            claimed_before: ago(longest + SETTLE_MARGIN),
            silent_claimed_before: ago(longest),
            silent_since: ago(GONE_AFTER),
        })
        .await?;
    for m in &missed {
        tracing::warn!(
            journey = %m.journey, location = %m.location, planned = %m.planned_at, node = %m.node_id,
            "tick missed: its node claimed it and stopped before storing the run"
        );
    }
    metrics.record_missed(missed.len() as u64);
    Ok(missed.len())
}

/// Settles claims every [`SETTLE_EVERY`] until `stop` (a leader duty).
pub async fn settle(
    store: Store,
    catalog: Arc<RwLock<Catalog>>,
    metrics: Arc<crate::service::metrics::Metrics>,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = settle_once(&store, &catalog, &metrics, Utc::now()).await {
            tracing::warn!(error = %e, "cluster: claims not settled");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SETTLE_EVERY) => {}
        }
    }
}

/// Takes the tick's claim before running it; a tick another node of the location claimed is
/// skipped. When the claim cannot be recorded (database unreachable) the run goes ahead: a
/// tick run twice is better than a tick lost.
pub struct ClaimingExecutor<E> {
    pub inner: E,
    pub cluster: Arc<Cluster>,
    pub location: String,
}

impl<E: RunExecutor> RunExecutor for ClaimingExecutor<E> {
    fn execute(&self, run: PlannedRun) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let tick = Tick {
                journey: &run.journey.name,
                location: &self.location,
                planned_at: run.planned,
            };
            let node = self.cluster.node_id();
            let claim = self
                .cluster
                .store
                .cluster()
                .claim_run(tick, &node, Utc::now());
            match tokio::time::timeout(CLAIM_TIMEOUT, claim).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::debug!(journey = %run.journey.name, planned = %run.planned, "tick claimed by another node");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(journey = %run.journey.name, error = %e, "tick not claimed; running it anyway");
                }
                Err(_) => {
                    tracing::warn!(journey = %run.journey.name, "tick not claimed: the database did not answer; running it anyway");
                }
            }
            self.inner.execute(run).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_a_clean_stop_hands_over_and_duties_follow_leadership() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::connect(&url).await.unwrap();
        let catalog = Arc::new(RwLock::new(Catalog::default()));
        let (a, b) = (
            Cluster::new(store.clone(), "eu", "a".into()),
            Cluster::new(store.clone(), "eu", "b".into()),
        );
        // On SQLite a node's first beat takes the lease whoever holds it (b's, then a's);
        // later beats take it only from nobody.
        b.beat(&catalog).await;
        a.beat(&catalog).await;
        b.beat(&catalog).await;
        assert!(a.is_leader() && !b.is_leader());
        let nodes = store.cluster().nodes().await.unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(
            nodes
                .iter()
                .all(|n| n.journeys_sha256 == fingerprint(&Catalog::default()))
        );

        // A duty that counts its starts and stops.
        let (starts, stops) = (
            Arc::new(std::sync::atomic::AtomicU32::new(0)),
            Arc::new(std::sync::atomic::AtomicU32::new(0)),
        );
        let stop = CancellationToken::new();
        let duty = {
            let (starts, stops) = (starts.clone(), stops.clone());
            tokio::spawn(while_leader(b.leadership(), stop.clone(), move |term| {
                let (starts, stops) = (starts.clone(), stops.clone());
                async move {
                    starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    term.cancelled().await;
                    stops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }))
        };

        // a stops cleanly: its lease goes at once and b takes it at its next beat.
        let a_stop = CancellationToken::new();
        a_stop.cancel();
        a.clone().run(catalog.clone(), a_stop).await;
        assert!(!a.is_leader());
        b.beat(&catalog).await;
        assert!(b.is_leader());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 1);
        stop.cancel();
        duty.await.unwrap();
        assert_eq!(stops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_crash_restart_leads_at_its_first_beat() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::connect(&url).await.unwrap();
        let catalog = RwLock::new(Catalog::default());
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let id = node_identity(None, "eu", listen);
        assert_eq!(
            id,
            node_identity(None, "eu", listen),
            "stable across restarts"
        );
        assert_ne!(id, node_identity(None, "us", listen));
        assert_ne!(
            id,
            node_identity(None, "eu", "127.0.0.1:8081".parse().unwrap())
        );
        assert_eq!(node_identity(Some("web-1"), "eu", listen), "web-1");

        let first = Cluster::new(store.clone(), "eu", id.clone());
        first.beat(&catalog).await;
        assert!(first.is_leader());
        // Killed: no release. Its next life, with the same identity, renews the lease at once.
        drop(first);
        let again = Cluster::new(store.clone(), "eu", id);
        again.beat(&catalog).await;
        assert!(again.is_leader());
        // On SQLite even a new identity (port 0, a renamed host) takes the lease at once.
        drop(again);
        let renamed = Cluster::new(store.clone(), "eu", "renamed".into());
        renamed.beat(&catalog).await;
        assert!(renamed.is_leader());
        let lease = store
            .cluster()
            .lease(LEADER, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.holder, "renamed");
    }

    #[tokio::test]
    async fn a_claimed_tick_never_stored_is_recorded_as_missed_and_counted() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (_, catalog) = crate::api::test_support::catalog_with(
            "name: shop\ntimeout: 2s\nsteps:\n  - name: a\n    wait: 1ms\n",
        );
        let catalog = RwLock::new(catalog);
        let metrics = crate::service::metrics::Metrics::new();
        let now = Utc::now();
        let tick = |secs_ago: i64| Tick {
            journey: "shop",
            location: "eu",
            planned_at: now - chrono::Duration::seconds(secs_ago),
        };
        // A live node claimed ticks 2 min ago and 10 s ago, a node gone silent one 11 s ago;
        // no run was stored.
        let live = Cluster::new(store.clone(), "eu", "live".into());
        live.beat(&catalog).await;
        let claim = |ago: i64, node: String| {
            let store = store.clone();
            async move {
                let at = now - chrono::Duration::seconds(ago);
                assert!(
                    store
                        .cluster()
                        .claim_run(tick(ago), &node, at)
                        .await
                        .unwrap()
                );
            }
        };
        claim(120, live.node_id()).await;
        claim(10, live.node_id()).await;
        claim(11, "gone".into()).await;
        // The old one, and the gone node's once the journey's timeout has passed.
        assert_eq!(
            settle_once(&store, &catalog, &metrics, now).await.unwrap(),
            2
        );
        assert_eq!(
            settle_once(&store, &catalog, &metrics, now).await.unwrap(),
            0
        );
        let text = metrics.encode(None, None, None).unwrap();
        assert!(
            text.lines().any(|l| l == "waymark_runs_missed_total 2"),
            "{text}"
        );
        // The live node's recent one once the journey's timeout and the margin have passed.
        let later = now + chrono::Duration::seconds(62);
        assert_eq!(
            settle_once(&store, &catalog, &metrics, later)
                .await
                .unwrap(),
            1
        );
    }
}
