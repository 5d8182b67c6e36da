//! What nodes sharing one database agree through it: their heartbeats (the node list), leases
//! (one leader at a time for the singleton duties) and run claims (each scheduled tick of a
//! journey at a location runs once, whichever node of that location planned it).
//!
//! Leases and claims are single statements whose outcome the database decides (an upsert with
//! a condition, an insert that may conflict), so two nodes racing for one never both win.

use chrono::{DateTime, Utc};

use super::{Result, Store, from_ns, to_ns};

/// A node as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    /// Random per process start.
    pub node_id: String,
    pub location: String,
    pub version: String,
    pub hostname: String,
    /// Over the (name, content hash) of every journey it schedules.
    pub journeys_sha256: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// Who holds a lease, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// A tick that was claimed and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedTick {
    pub journey: String,
    pub location: String,
    pub planned_at: DateTime<Utc>,
    pub node_id: String,
}

/// Which unsettled claims a settling pass settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleCutoffs {
    /// Any claim made before this.
    pub claimed_before: DateTime<Utc>,
    /// Claims made before this by a node silent since `silent_since` (or no longer listed): a
    /// dead node stores nothing more, so they need not wait for `claimed_before`.
    pub silent_claimed_before: DateTime<Utc>,
    pub silent_since: DateTime<Utc>,
}

/// A scheduled tick of a journey at a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick<'a> {
    pub journey: &'a str,
    pub location: &'a str,
    pub planned_at: DateTime<Utc>,
}

/// Heartbeats, leases and run claims of the nodes sharing the database.
///
/// Borrowed from the store by [`Store::cluster`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a>(pub(super) &'a Store);

impl Cluster<'_> {
    /// Records (or refreshes) `node`'s heartbeat.
    pub async fn heartbeat(self, node: &NodeInfo) -> Result<()> {
        let times = (to_ns(node.started_at)?, to_ns(node.heartbeat_at)?);
        dispatch!(self.0, cluster::heartbeat(node, times))
    }

    /// Every node that ever beat, newest heartbeat first.
    pub async fn nodes(self) -> Result<Vec<NodeInfo>> {
        dispatch!(self.0, cluster::nodes())
    }

    /// Takes the lease `name` for `holder` until `until`, if it is free, expired at `now`, or
    /// already `holder`'s (a renewal); true if `holder` holds it now.
    pub async fn acquire_lease(
        self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let (now, until) = (to_ns(now)?, to_ns(until)?);
        dispatch!(self.0, cluster::acquire(name, holder, until, now))
    }

    /// Takes the lease `name` for `holder` until `until` whoever holds it: for a store only one
    /// node can use (SQLite), where any other holder is this node's own previous life.
    pub async fn take_lease(self, name: &str, holder: &str, until: DateTime<Utc>) -> Result<bool> {
        let until = to_ns(until)?;
        dispatch!(self.0, cluster::acquire(name, holder, until, i64::MAX))
    }

    /// Gives the lease up if `holder` has it (a clean shutdown: the next node need not wait
    /// for it to expire).
    pub async fn release_lease(self, name: &str, holder: &str) -> Result<()> {
        dispatch!(self.0, cluster::release(name, holder))
    }

    /// The lease's holder, if it has one not expired at `now`.
    pub async fn lease(self, name: &str, now: DateTime<Utc>) -> Result<Option<Lease>> {
        let now = to_ns(now)?;
        dispatch!(self.0, cluster::lease(name, now))
    }

    /// Claims `tick` for `node`; true if this node is the one to run it.
    pub async fn claim_run(self, tick: Tick<'_>, node: &str, now: DateTime<Utc>) -> Result<bool> {
        let times = (to_ns(tick.planned_at)?, to_ns(now)?);
        dispatch!(self.0, cluster::claim(tick, node, times))
    }

    /// Settles the claims `cutoffs` select: those whose run is stored `ran`, the others
    /// `missed` (their node stopped before storing the run); returns the missed ticks with the
    /// node that claimed each.
    pub async fn settle_claims(self, cutoffs: SettleCutoffs) -> Result<Vec<MissedTick>> {
        let ns = (
            to_ns(cutoffs.claimed_before)?,
            to_ns(cutoffs.silent_claimed_before)?,
            to_ns(cutoffs.silent_since)?,
        );
        dispatch!(self.0, cluster::settle(ns))
    }
}

/// A `nodes` row.
#[derive(sqlx::FromRow)]
pub(super) struct NodeRow {
    node_id: String,
    location: String,
    version: String,
    hostname: String,
    journeys_sha256: String,
    started_at_ns: i64,
    heartbeat_at_ns: i64,
}

impl From<NodeRow> for NodeInfo {
    fn from(row: NodeRow) -> Self {
        NodeInfo {
            node_id: row.node_id,
            location: row.location,
            version: row.version,
            hostname: row.hostname,
            journeys_sha256: row.journeys_sha256,
            started_at: from_ns(row.started_at_ns),
            heartbeat_at: from_ns(row.heartbeat_at_ns),
        }
    }
}

/// A `leases` row.
#[derive(sqlx::FromRow)]
pub(super) struct LeaseRow {
    holder: String,
    expires_at_ns: i64,
}

impl From<LeaseRow> for Lease {
    fn from(row: LeaseRow) -> Self {
        Lease {
            holder: row.holder,
            expires_at: from_ns(row.expires_at_ns),
        }
    }
}

/// A `run_claims` row settled as missed.
#[derive(sqlx::FromRow)]
pub(super) struct MissedRow {
    journey: String,
    location: String,
    planned_at_ns: i64,
    node_id: String,
}

impl From<MissedRow> for MissedTick {
    fn from(row: MissedRow) -> Self {
        MissedTick {
            journey: row.journey,
            location: row.location,
            planned_at: from_ns(row.planned_at_ns),
            node_id: row.node_id,
        }
    }
}

macro_rules! dialect {
    () => {
        use crate::store::cluster::{
            Lease, LeaseRow, MissedRow, MissedTick, NodeInfo, NodeRow, Tick,
        };

        #[rustfmt::skip]
        queries! {
            fn heartbeat(n: &NodeInfo, (started, beat): (i64, i64)) -> () = execute:
                "INSERT INTO nodes (node_id, location, version, hostname, journeys_sha256, \
                 started_at_ns, heartbeat_at_ns) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (node_id) DO UPDATE SET location = excluded.location, \
                 version = excluded.version, hostname = excluded.hostname, \
                 journeys_sha256 = excluded.journeys_sha256, \
                 started_at_ns = excluded.started_at_ns, heartbeat_at_ns = excluded.heartbeat_at_ns",
                &n.node_id, &n.location, &n.version, &n.hostname, &n.journeys_sha256, started, beat;

            fn nodes() -> Vec<NodeInfo> = all NodeRow:
                "SELECT node_id, location, version, hostname, journeys_sha256, started_at_ns, \
                 heartbeat_at_ns FROM nodes ORDER BY heartbeat_at_ns DESC, node_id";

            fn acquire(name: &str, holder: &str, until: i64, now: i64) -> bool = execute:
                "INSERT INTO leases (name, holder, expires_at_ns) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at_ns = excluded.expires_at_ns \
                 WHERE leases.holder = excluded.holder OR leases.expires_at_ns <= $4";

            fn release(name: &str, holder: &str) -> () = execute:
                "DELETE FROM leases WHERE name = $1 AND holder = $2";

            fn lease(name: &str, now: i64) -> Option<Lease> = optional LeaseRow:
                "SELECT holder, expires_at_ns FROM leases WHERE name = $1 AND expires_at_ns > $2";

            fn claim(tick: Tick<'_>, node: &str, (planned, now): (i64, i64)) -> bool = execute:
                "INSERT INTO run_claims (journey, location, planned_at_ns, node_id, claimed_at_ns) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                tick.journey, tick.location, planned, node, now;
        }

        pub(in crate::store) async fn settle(
            pool: &Pool<Db>,
            (before, silent_before, silent_since): (i64, i64, i64),
        ) -> Result<Vec<MissedTick>> {
            const DUE: &str = "outcome IS NULL AND (claimed_at_ns < $1 OR (claimed_at_ns < $2 \
                 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = run_claims.node_id \
                 AND n.heartbeat_at_ns >= $3)))";
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE run_claims SET outcome = 'ran' WHERE {DUE} \
                 AND EXISTS (SELECT 1 FROM runs r WHERE r.journey = run_claims.journey \
                 AND r.location = run_claims.location AND r.planned_at_ns = run_claims.planned_at_ns)"
            )))
            .bind(before)
            .bind(silent_before)
            .bind(silent_since)
            .execute(&mut *tx)
            .await?;
            let rows: Vec<MissedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE run_claims SET outcome = 'missed' WHERE {DUE} \
                 RETURNING journey, location, planned_at_ns, node_id"
            )))
            .bind(before)
            .bind(silent_before)
            .bind(silent_since)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut missed: Vec<MissedTick> = rows.into_iter().map(MissedTick::from).collect();
            missed.sort_by(|a, b| (a.planned_at, &a.journey).cmp(&(b.planned_at, &b.journey)));
            Ok(missed)
        }
    };
}
pub(super) use dialect;
