//! Opening a store that must already exist, for commands that only read (`waymark digest`):
//! nothing is created, migrated or written, and a database that cannot hold the answer is an
//! error saying why, rather than an empty answer.
//!
//! - SQLite opens read-only without `create_if_missing`: a wrong path never leaves a new
//!   `waymark.db` behind.
//! - The schema must be Waymark's and current (every embedded migration applied): migrating is
//!   `waymark migrate`'s or `waymark serve`'s job, not a reader's.
//! - A store without a single run is "empty": whatever a reader computed from it would only say
//!   "never ran", which is never what was asked.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::{Result, Store, StoreError, migrator, postgres};

/// Why an existing store cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("no database at `{0}` (set database_url or WAYMARK_DATABASE_URL to the service's)")]
    Missing(String),
    #[error("`{0}` is not a Waymark database (no migrations were ever applied to it)")]
    NotWaymark(String),
    #[error(
        "`{url}` has {applied} of this version's {known} migrations: run `waymark migrate` first"
    )]
    Outdated {
        url: String,
        applied: usize,
        known: usize,
    },
    #[error("`{0}` holds no runs yet: nothing to read")]
    Empty(String),
}

impl Store {
    /// Opens the store at `url` for reading only; see the module documentation. `shown` is the
    /// URL as messages may show it (without a password).
    pub async fn open_existing(url: &str, shown: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(false)
                .read_only(true);
            let file = options.get_filename();
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            if memory || !file.exists() {
                return Err(Unreadable::Missing(shown.to_string()).into());
            }
            Store::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        if let Err(e) = store.check_readable(shown).await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    async fn check_readable(&self, shown: &str) -> Result<()> {
        let applied = dispatch!(self, queries::applied_migrations()).ok();
        let known = migrator(self.migrations()).iter().count();
        let any_run = match applied {
            Some(_) => dispatch!(self, queries::first_run())?.is_some(),
            None => false,
        };
        let url = shown.to_string();
        let applied = match applied {
            None | Some(0) => return Err(Unreadable::NotWaymark(url).into()),
            Some(n) => usize::try_from(n).unwrap_or(0),
        };
        if applied < known {
            return Err(Unreadable::Outdated {
                url,
                applied,
                known,
            }
            .into());
        }
        if !any_run {
            return Err(Unreadable::Empty(url).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of opening `url`, which must fail.
    async fn refused(url: &str) -> StoreError {
        match Store::open_existing(url, url).await {
            Ok(_) => panic!("`{url}` opened"),
            Err(e) => e,
        }
    }

    /// Issue #19: `waymark digest` without a database created `waymark.db` and said "never ran".
    #[tokio::test]
    async fn a_missing_database_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waymark.db");
        let url = format!("sqlite://{}", path.display());
        let e = refused(&url).await;
        assert!(
            matches!(e, StoreError::Unreadable(Unreadable::Missing(_))),
            "{e}"
        );
        assert!(!path.exists(), "nothing was created");
        refused("sqlite::memory:").await;
    }

    #[tokio::test]
    async fn foreign_and_empty_databases_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"").unwrap();
        let e = refused(&format!("sqlite://{}", other.display())).await;
        assert!(e.to_string().contains("is not a Waymark database"), "{e}");

        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        Store::connect(&url).await.unwrap().close().await;
        let e = refused(&url).await;
        assert!(e.to_string().contains("holds no runs yet"), "{e}");
    }
}
