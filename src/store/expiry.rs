//! Rows that expire by one instant column (node heartbeats, run claims, commands, the run feed,
//! sessions): one statement each, run by one dialect function behind one method,
//! [`Store::prune`], so no area keeps its own copy of the pruning.

use chrono::{DateTime, Utc};

use super::{Result, Store, to_ns};

/// A table whose old rows are deleted by the instant in one column.
#[derive(Debug, Clone, Copy)]
pub enum Expiring {
    /// Nodes not heard from since the instant.
    Nodes,
    /// Claims on runs made before it.
    Claims,
    /// Commands asked before it.
    Commands,
    /// Feed entries recorded before it.
    Feed,
    /// Sessions expired at it.
    Sessions,
}

impl Expiring {
    /// The statement that deletes the expired rows, `$1` the instant in nanoseconds.
    fn statement(self) -> &'static str {
        match self {
            Expiring::Nodes => "DELETE FROM nodes WHERE heartbeat_at_ns < $1",
            Expiring::Claims => "DELETE FROM run_claims WHERE claimed_at_ns < $1",
            Expiring::Commands => "DELETE FROM commands WHERE asked_at_ns < $1",
            Expiring::Feed => "DELETE FROM run_feed WHERE recorded_at_ns < $1",
            Expiring::Sessions => "DELETE FROM sessions WHERE expires_at_ns <= $1",
        }
    }
}

impl Store {
    /// Deletes the rows of `what` expired as of `at` (see each [`Expiring`] for which);
    /// how many.
    pub async fn prune(&self, what: Expiring, at: DateTime<Utc>) -> Result<u64> {
        let at = to_ns(at)?;
        dispatch!(self, expiry::delete(what.statement(), at))
    }
}

macro_rules! dialect {
    () => {
#[rustfmt::skip]
        queries! {
            fn delete(statement: &'static str, at: i64) -> u64 = execute: statement, at;
        }
    };
}
pub(super) use dialect;
