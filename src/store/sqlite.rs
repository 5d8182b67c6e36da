//! SQLite: one file, WAL, a busy timeout, foreign keys on, `BEGIN IMMEDIATE` for writes so
//! that a write transaction never fails half-way on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "anomaly episodes",
        include_str!("../../migrations/sqlite/0002_anomaly_episodes.sql"),
    ),
    (
        3,
        "incidents",
        include_str!("../../migrations/sqlite/0003_incidents.sql"),
    ),
    (
        4,
        "digests",
        include_str!("../../migrations/sqlite/0004_digests.sql"),
    ),
    (
        5,
        "sessions",
        include_str!("../../migrations/sqlite/0005_sessions.sql"),
    ),
    (
        6,
        "cluster",
        include_str!("../../migrations/sqlite/0006_cluster.sql"),
    ),
    (
        7,
        "run feed",
        include_str!("../../migrations/sqlite/0007_run_feed.sql"),
    ),
    (
        8,
        "commands",
        include_str!("../../migrations/sqlite/0008_commands.sql"),
    ),
];

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

pub(super) mod q {
    super::super::queries::dialect!(sqlx::Sqlite, begin = "BEGIN IMMEDIATE", lock = "");
}

pub(super) mod e {
    super::super::episodes::dialect!(sqlx::Sqlite);
}

pub(super) mod a {
    super::super::alerts::dialect!(sqlx::Sqlite, begin = "BEGIN IMMEDIATE");
}

pub(super) mod d {
    super::super::digest::dialect!(sqlx::Sqlite);
}

pub(super) mod s {
    super::super::status::dialect!(sqlx::Sqlite);
}

pub(super) mod u {
    super::super::sessions::dialect!(sqlx::Sqlite);
}

pub(super) mod c {
    super::super::cluster::dialect!(sqlx::Sqlite);
}

pub(super) mod k {
    super::super::commands::dialect!(sqlx::Sqlite);
}

pub(super) mod f {
    super::super::feed::dialect!(sqlx::Sqlite);
}
