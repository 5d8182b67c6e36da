//! SQLite: one file, WAL, a busy timeout, foreign keys on, `BEGIN IMMEDIATE` for writes so
//! that a write transaction never fails half-way on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub(super) const MIGRATIONS: &[super::EmbeddedMigration] = migrations!("sqlite");

pub(super) async fn connect(url: &str) -> super::Result<SqlitePool> {
    let memory = super::Store::is_in_memory(url);
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed (acknowledged) batch survives a power cut, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new();
    let pool = if memory {
        // Each in-memory connection is its own database, and closing it throws the data
        // away: one connection, never retired for idleness or age.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(4)
    };
    Ok(pool.connect_with(options).await?)
}

dialect_modules!(sqlx::Sqlite, begin = "BEGIN IMMEDIATE", lock = "");
