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

impl Store {
    /// Records (or refreshes) `node`'s heartbeat.
    pub async fn heartbeat(&self, node: &NodeInfo) -> Result<()> {
        let times = (to_ns(node.started_at)?, to_ns(node.heartbeat_at)?);
        match self {
            Store::Sqlite(p) => super::sqlite::c::heartbeat(p, node, times).await,
            Store::Postgres(p) => super::postgres::c::heartbeat(p, node, times).await,
        }
    }

    /// Every node that ever beat, newest heartbeat first.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        match self {
            Store::Sqlite(p) => super::sqlite::c::nodes(p).await,
            Store::Postgres(p) => super::postgres::c::nodes(p).await,
        }
    }

    /// Forgets nodes whose last heartbeat is older than `before`.
    pub async fn prune_nodes(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = to_ns(before)?;
        match self {
            Store::Sqlite(p) => super::sqlite::c::prune_nodes(p, before).await,
            Store::Postgres(p) => super::postgres::c::prune_nodes(p, before).await,
        }
    }

    /// Takes the lease `name` for `holder` until `until`, if it is free, expired at `now`, or
    /// already `holder`'s (a renewal); true if `holder` holds it now.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let (now, until) = (to_ns(now)?, to_ns(until)?);
        match self {
            Store::Sqlite(p) => super::sqlite::c::acquire(p, name, holder, now, until).await,
            Store::Postgres(p) => super::postgres::c::acquire(p, name, holder, now, until).await,
        }
    }

    /// Takes the lease `name` for `holder` until `until` whoever holds it: for a store only one
    /// node can use (SQLite), where any other holder is this node's own previous life.
    pub async fn take_lease(&self, name: &str, holder: &str, until: DateTime<Utc>) -> Result<bool> {
        let until = to_ns(until)?;
        match self {
            Store::Sqlite(p) => super::sqlite::c::acquire(p, name, holder, i64::MAX, until).await,
            Store::Postgres(p) => {
                super::postgres::c::acquire(p, name, holder, i64::MAX, until).await
            }
        }
    }

    /// Gives the lease up if `holder` has it (a clean shutdown: the next node need not wait
    /// for it to expire).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        match self {
            Store::Sqlite(p) => super::sqlite::c::release(p, name, holder).await,
            Store::Postgres(p) => super::postgres::c::release(p, name, holder).await,
        }
    }

    /// The lease's holder, if it has one not expired at `now`.
    pub async fn lease(&self, name: &str, now: DateTime<Utc>) -> Result<Option<Lease>> {
        let now = to_ns(now)?;
        match self {
            Store::Sqlite(p) => super::sqlite::c::lease(p, name, now).await,
            Store::Postgres(p) => super::postgres::c::lease(p, name, now).await,
        }
    }

    /// Claims `tick` for `node`; true if this node is the one to run it.
    pub async fn claim_run(&self, tick: Tick<'_>, node: &str, now: DateTime<Utc>) -> Result<bool> {
        let times = (to_ns(tick.planned_at)?, to_ns(now)?);
        match self {
            Store::Sqlite(p) => super::sqlite::c::claim(p, tick, node, times).await,
            Store::Postgres(p) => super::postgres::c::claim(p, tick, node, times).await,
        }
    }

    /// Settles the claims `cutoffs` select: those whose run is stored `ran`, the others
    /// `missed` (their node stopped before storing the run); returns the missed ticks with the
    /// node that claimed each.
    pub async fn settle_claims(&self, cutoffs: SettleCutoffs) -> Result<Vec<MissedTick>> {
        let ns = (
            to_ns(cutoffs.claimed_before)?,
            to_ns(cutoffs.silent_claimed_before)?,
            to_ns(cutoffs.silent_since)?,
        );
        match self {
            Store::Sqlite(p) => super::sqlite::c::settle(p, ns).await,
            Store::Postgres(p) => super::postgres::c::settle(p, ns).await,
        }
    }

    /// Deletes claims made before `before`; how many.
    pub async fn prune_claims(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = to_ns(before)?;
        match self {
            Store::Sqlite(p) => super::sqlite::c::prune_claims(p, before).await,
            Store::Postgres(p) => super::postgres::c::prune_claims(p, before).await,
        }
    }
}

pub(super) fn node_from_row<R: sqlx::Row>(row: &R) -> Result<NodeInfo>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(NodeInfo {
        node_id: row.try_get("node_id")?,
        location: row.try_get("location")?,
        version: row.try_get("version")?,
        hostname: row.try_get("hostname")?,
        journeys_sha256: row.try_get("journeys_sha256")?,
        started_at: from_ns(row.try_get("started_at_ns")?),
        heartbeat_at: from_ns(row.try_get("heartbeat_at_ns")?),
    })
}

macro_rules! dialect {
    ($db:ty) => {
        use sqlx::{Pool, Row};

        use crate::store::cluster::{Lease, MissedTick, NodeInfo, Tick, node_from_row};
        use crate::store::{Result, from_ns};

        type Db = $db;

        pub(in crate::store) async fn heartbeat(
            pool: &Pool<Db>,
            n: &NodeInfo,
            (started, beat): (i64, i64),
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO nodes (node_id, location, version, hostname, journeys_sha256, \
                 started_at_ns, heartbeat_at_ns) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (node_id) DO UPDATE SET location = excluded.location, \
                 version = excluded.version, hostname = excluded.hostname, \
                 journeys_sha256 = excluded.journeys_sha256, \
                 started_at_ns = excluded.started_at_ns, heartbeat_at_ns = excluded.heartbeat_at_ns",
            )
            .bind(&n.node_id)
            .bind(&n.location)
            .bind(&n.version)
            .bind(&n.hostname)
            .bind(&n.journeys_sha256)
            .bind(started)
            .bind(beat)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn nodes(pool: &Pool<Db>) -> Result<Vec<NodeInfo>> {
            let rows = sqlx::query(
                "SELECT node_id, location, version, hostname, journeys_sha256, started_at_ns, \
                 heartbeat_at_ns FROM nodes ORDER BY heartbeat_at_ns DESC, node_id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(node_from_row).collect()
        }

        pub(in crate::store) async fn prune_nodes(pool: &Pool<Db>, before: i64) -> Result<u64> {
            let done = sqlx::query("DELETE FROM nodes WHERE heartbeat_at_ns < $1")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        pub(in crate::store) async fn acquire(
            pool: &Pool<Db>,
            name: &str,
            holder: &str,
            now: i64,
            until: i64,
        ) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO leases (name, holder, expires_at_ns) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at_ns = excluded.expires_at_ns \
                 WHERE leases.holder = excluded.holder OR leases.expires_at_ns <= $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn release(
            pool: &Pool<Db>,
            name: &str,
            holder: &str,
        ) -> Result<()> {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(in crate::store) async fn lease(
            pool: &Pool<Db>,
            name: &str,
            now: i64,
        ) -> Result<Option<Lease>> {
            let row = sqlx::query(
                "SELECT holder, expires_at_ns FROM leases WHERE name = $1 AND expires_at_ns > $2",
            )
            .bind(name)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(Lease {
                    holder: r.try_get("holder")?,
                    expires_at: from_ns(r.try_get("expires_at_ns")?),
                })
            })
            .transpose()
        }

        pub(in crate::store) async fn claim(
            pool: &Pool<Db>,
            tick: Tick<'_>,
            node: &str,
            (planned, now): (i64, i64),
        ) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO run_claims (journey, location, planned_at_ns, node_id, claimed_at_ns) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(tick.journey)
            .bind(tick.location)
            .bind(planned)
            .bind(node)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
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
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE run_claims SET outcome = 'missed' WHERE {DUE} \
                 RETURNING journey, location, planned_at_ns, node_id"
            )))
            .bind(before)
            .bind(silent_before)
            .bind(silent_since)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut missed = rows
                .iter()
                .map(|r| {
                    Ok(MissedTick {
                        journey: r.try_get("journey")?,
                        location: r.try_get("location")?,
                        planned_at: from_ns(r.try_get("planned_at_ns")?),
                        node_id: r.try_get("node_id")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            missed.sort_by(|a, b| (a.planned_at, &a.journey).cmp(&(b.planned_at, &b.journey)));
            Ok(missed)
        }

        pub(in crate::store) async fn prune_claims(pool: &Pool<Db>, before: i64) -> Result<u64> {
            let done = sqlx::query("DELETE FROM run_claims WHERE claimed_at_ns < $1")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }
    };
}
pub(super) use dialect;
