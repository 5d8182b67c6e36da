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

/// Commands relayed to the leader.
///
/// Borrowed from the store by [`Store::commands`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Commands<'a>(pub(super) &'a Store);

impl Commands<'_> {
    /// Writes a command for the leader; its id.
    pub async fn ask_command(
        self,
        action: &str,
        incident_id: i64,
        by: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let asked = (action, incident_id, by, node, to_ns(now)?);
        dispatch!(self.0, commands::ask(asked))
    }

    /// Takes up to `limit` commands nobody has taken, oldest first, for `node`.
    pub async fn take_commands(self, node: &str, limit: u32) -> Result<Vec<StoredCommand>> {
        let mut taken = dispatch!(self.0, commands::take(node, limit.into()))?;
        taken.sort_by_key(|c| c.id);
        Ok(taken)
    }

    pub async fn answer_command(
        self,
        id: i64,
        answer: &CommandAnswer,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = to_ns(now)?;
        dispatch!(self.0, commands::answer(id, answer, now))
    }

    pub async fn command_progress(self, id: i64) -> Result<CommandProgress> {
        Ok(dispatch!(self.0, commands::progress(id))?.into())
    }

    /// Deletes the command if no leader has taken it yet; whether it did.
    pub async fn withdraw_command(self, id: i64) -> Result<bool> {
        dispatch!(self.0, commands::withdraw(id))
    }
}

/// A `commands` row as taken.
#[derive(sqlx::FromRow)]
pub(super) struct TakenRow {
    id: i64,
    action: String,
    incident_id: i64,
    by_whom: String,
    asked_on: String,
}

impl From<TakenRow> for StoredCommand {
    fn from(row: TakenRow) -> Self {
        StoredCommand {
            id: row.id,
            action: row.action,
            incident_id: row.incident_id,
            by: row.by_whom,
            asked_on: row.asked_on,
        }
    }
}

/// Where a `commands` row stands.
#[derive(sqlx::FromRow)]
pub(super) struct ProgressRow {
    taken_by: Option<String>,
    outcome: Option<String>,
    detail: Option<String>,
}

impl From<Option<ProgressRow>> for CommandProgress {
    fn from(row: Option<ProgressRow>) -> Self {
        let Some(row) = row else {
            return CommandProgress::Gone;
        };
        match (row.taken_by, row.outcome) {
            (_, Some(outcome)) => CommandProgress::Answered(CommandAnswer {
                outcome,
                detail: row.detail,
            }),
            (Some(_), None) => CommandProgress::Taken,
            (None, None) => CommandProgress::Waiting,
        }
    }
}

macro_rules! dialect {
    () => {
        use crate::store::commands::{CommandAnswer, ProgressRow, StoredCommand, TakenRow};

        #[rustfmt::skip]
        queries! {
            fn ask((action, incident, by, node, now): (&str, i64, &str, &str, i64)) -> i64 =
                scalar:
                "INSERT INTO commands (action, incident_id, by_whom, asked_on, asked_at_ns) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                action, incident, by, node, now;

            // A concurrent taker (an old leader not yet aware it lost the lease) re-checks
            // `taken_by IS NULL` on the rows it waited for, so each command is taken once.
            fn take(node: &str, limit: i64) -> Vec<StoredCommand> = all TakenRow:
                "UPDATE commands SET taken_by = $1 WHERE taken_by IS NULL AND id IN \
         (SELECT id FROM commands WHERE taken_by IS NULL ORDER BY id LIMIT $2) \
         RETURNING id, action, incident_id, by_whom, asked_on";

            fn answer(id: i64, answer: &CommandAnswer, now: i64) -> () = execute:
                "UPDATE commands SET outcome = $1, detail = $2, answered_at_ns = $3 WHERE id = $4",
                &answer.outcome, &answer.detail, now, id;

            fn progress(id: i64) -> Option<ProgressRow> = optional ProgressRow:
                "SELECT taken_by, outcome, detail FROM commands WHERE id = $1";

            fn withdraw(id: i64) -> bool = execute:
                "DELETE FROM commands WHERE id = $1 AND taken_by IS NULL";
        }
    };
}
pub(super) use dialect;
