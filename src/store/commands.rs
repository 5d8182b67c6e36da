//! Commands relayed through the database: a node that does not lead writes an acknowledge or
//! resolve here, the leader takes it (once: `taken_by` is set by one conditional update),
//! applies it and writes the answer, which the asking node reads back. The rows mean nothing
//! to the store; `alert::relay` gives them their meaning.

use chrono::{DateTime, Utc};

use super::{Result, Store, to_ns};

/// A command waiting for (or taken by) the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommand {
    pub id: i64,
    pub action: String,
    pub incident_id: i64,
    pub by: String,
    /// The node it was asked on.
    pub asked_on: String,
}

/// The leader's answer: an outcome word and, for some, a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAnswer {
    pub outcome: String,
    pub detail: Option<String>,
}

/// Where an asked command stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandProgress {
    Waiting,
    Taken,
    Answered(CommandAnswer),
    /// Withdrawn (or pruned): there is no such command.
    Gone,
}

impl Store {
    /// Writes a command for the leader; its id.
    pub async fn ask_command(
        &self,
        action: &str,
        incident_id: i64,
        by: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let asked = (action, incident_id, by, node, to_ns(now)?);
        match self {
            Store::Sqlite(p) => super::sqlite::k::ask(p, asked).await,
            Store::Postgres(p) => super::postgres::k::ask(p, asked).await,
        }
    }

    /// Takes up to `limit` commands nobody has taken, oldest first, for `node`.
    pub async fn take_commands(&self, node: &str, limit: u32) -> Result<Vec<StoredCommand>> {
        match self {
            Store::Sqlite(p) => super::sqlite::k::take(p, node, limit.into()).await,
            Store::Postgres(p) => super::postgres::k::take(p, node, limit.into()).await,
        }
    }

    pub async fn answer_command(
        &self,
        id: i64,
        answer: &CommandAnswer,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = to_ns(now)?;
        match self {
            Store::Sqlite(p) => super::sqlite::k::answer(p, id, answer, now).await,
            Store::Postgres(p) => super::postgres::k::answer(p, id, answer, now).await,
        }
    }

    pub async fn command_progress(&self, id: i64) -> Result<CommandProgress> {
        match self {
            Store::Sqlite(p) => super::sqlite::k::progress(p, id).await,
            Store::Postgres(p) => super::postgres::k::progress(p, id).await,
        }
    }

    /// Deletes the command if no leader has taken it yet; whether it did.
    pub async fn withdraw_command(&self, id: i64) -> Result<bool> {
        match self {
            Store::Sqlite(p) => super::sqlite::k::withdraw(p, id).await,
            Store::Postgres(p) => super::postgres::k::withdraw(p, id).await,
        }
    }

    /// Deletes commands asked before `before`; how many.
    pub async fn prune_commands(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = to_ns(before)?;
        match self {
            Store::Sqlite(p) => super::sqlite::k::prune(p, before).await,
            Store::Postgres(p) => super::postgres::k::prune(p, before).await,
        }
    }
}

macro_rules! dialect {
    ($db:ty) => {
        use sqlx::{Pool, Row};

        use crate::store::Result;
        use crate::store::commands::{CommandAnswer, CommandProgress, StoredCommand};

        type Db = $db;

        pub(in crate::store) async fn ask(
            pool: &Pool<Db>,
            (action, incident, by, node, now): (&str, i64, &str, &str, i64),
        ) -> Result<i64> {
            let row = sqlx::query(
                "INSERT INTO commands (action, incident_id, by_whom, asked_on, asked_at_ns) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(action)
            .bind(incident)
            .bind(by)
            .bind(node)
            .bind(now)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("id")?)
        }

        pub(in crate::store) async fn take(
            pool: &Pool<Db>,
            node: &str,
            limit: i64,
        ) -> Result<Vec<StoredCommand>> {
            // A concurrent taker (an old leader not yet aware it lost the lease) re-checks
            // `taken_by IS NULL` on the rows it waited for, so each command is taken once.
            let rows = sqlx::query(
                "UPDATE commands SET taken_by = $1 WHERE taken_by IS NULL AND id IN \
                 (SELECT id FROM commands WHERE taken_by IS NULL ORDER BY id LIMIT $2) \
                 RETURNING id, action, incident_id, by_whom, asked_on",
            )
            .bind(node)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut taken = rows
                .iter()
                .map(|r| {
                    Ok(StoredCommand {
                        id: r.try_get("id")?,
                        action: r.try_get("action")?,
                        incident_id: r.try_get("incident_id")?,
                        by: r.try_get("by_whom")?,
                        asked_on: r.try_get("asked_on")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            taken.sort_by_key(|c| c.id);
            Ok(taken)
        }

        pub(in crate::store) async fn answer(
            pool: &Pool<Db>,
            id: i64,
            answer: &CommandAnswer,
            now: i64,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE commands SET outcome = $1, detail = $2, answered_at_ns = $3 WHERE id = $4",
            )
            .bind(&answer.outcome)
            .bind(&answer.detail)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn progress(
            pool: &Pool<Db>,
            id: i64,
        ) -> Result<CommandProgress> {
            let row = sqlx::query("SELECT taken_by, outcome, detail FROM commands WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else {
                return Ok(CommandProgress::Gone);
            };
            let taken: Option<String> = row.try_get("taken_by")?;
            let outcome: Option<String> = row.try_get("outcome")?;
            Ok(match (taken, outcome) {
                (_, Some(outcome)) => CommandProgress::Answered(CommandAnswer {
                    outcome,
                    detail: row.try_get("detail")?,
                }),
                (Some(_), None) => CommandProgress::Taken,
                (None, None) => CommandProgress::Waiting,
            })
        }

        pub(in crate::store) async fn withdraw(pool: &Pool<Db>, id: i64) -> Result<bool> {
            let done = sqlx::query("DELETE FROM commands WHERE id = $1 AND taken_by IS NULL")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn prune(pool: &Pool<Db>, before: i64) -> Result<u64> {
            let done = sqlx::query("DELETE FROM commands WHERE asked_at_ns < $1")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }
    };
}
pub(super) use dialect;
