//! PostgreSQL: a small pool; rollup rows are locked (`FOR UPDATE`) while a batch merges into
//! them, so concurrent writers never lose counts.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub(super) const MIGRATIONS: &[super::EmbeddedMigration] = migrations!("postgres");

pub(super) async fn connect(url: &str) -> super::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

dialect_modules!(sqlx::Postgres, begin = "BEGIN", lock = " FOR UPDATE");
