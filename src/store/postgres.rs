//! PostgreSQL: a small pool; rollup rows are locked (`FOR UPDATE`) while a batch merges into
//! them, so concurrent writers never lose counts.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "anomaly episodes",
        include_str!("../../migrations/postgres/0002_anomaly_episodes.sql"),
    ),
    (
        3,
        "incidents",
        include_str!("../../migrations/postgres/0003_incidents.sql"),
    ),
    (
        4,
        "digests",
        include_str!("../../migrations/postgres/0004_digests.sql"),
    ),
    (
        5,
        "sessions",
        include_str!("../../migrations/postgres/0005_sessions.sql"),
    ),
    (
        6,
        "cluster",
        include_str!("../../migrations/postgres/0006_cluster.sql"),
    ),
    (
        7,
        "run feed",
        include_str!("../../migrations/postgres/0007_run_feed.sql"),
    ),
    (
        8,
        "commands",
        include_str!("../../migrations/postgres/0008_commands.sql"),
    ),
];

pub(super) async fn connect(url: &str) -> super::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

pub(super) mod q {
    super::super::queries::dialect!(sqlx::Postgres, begin = "BEGIN", lock = " FOR UPDATE");
}

pub(super) mod e {
    super::super::episodes::dialect!(sqlx::Postgres);
}

pub(super) mod a {
    super::super::alerts::dialect!(sqlx::Postgres, begin = "BEGIN");
}

pub(super) mod d {
    super::super::digest::dialect!(sqlx::Postgres);
}

pub(super) mod s {
    super::super::status::dialect!(sqlx::Postgres);
}

pub(super) mod u {
    super::super::sessions::dialect!(sqlx::Postgres);
}

pub(super) mod c {
    super::super::cluster::dialect!(sqlx::Postgres);
}

pub(super) mod k {
    super::super::commands::dialect!(sqlx::Postgres);
}

pub(super) mod f {
    super::super::feed::dialect!(sqlx::Postgres);
}
