//! Durable storage of runs, journey versions and hourly rollups, in SQLite or PostgreSQL.
//!
//! Only this module writes SQL. [`Store`] is a closed enum over the two pools. Each area's
//! queries are written once, as a `dialect!` macro in the area's file (`queries`, `episodes`,
//! `alerts`, `digest`, `status`, `cluster`, `commands`, `feed`, `sessions`), and
//! `dialect_modules!` instantiates all of them per dialect in `sqlite` and `postgres` (which
//! also hold what really differs: connection options, how a write transaction starts, row
//! locks). `dispatch!` runs the instance for the pool at hand, so no method matches on the
//! pool itself. Migrations are embedded in the binary and applied at [`Store::connect`].
//!
//! Representation: instants are epoch nanoseconds (exact round trip of a [`RunResult`]),
//! durations milliseconds as floats, rollup hours the epoch second of the hour's start, enums
//! their snake_case names (`text`). The store reads no clock: every instant comes in through
//! the API.
//!
//! Writes from the scheduler go through [`StoreWriter`], which batches them.

#![deny(clippy::disallowed_methods)]

/// Runs one query on whichever pool `store` holds: `dispatch!(self, alerts::save(&rows))` is
/// `sqlite::alerts::save(pool, &rows).await` or `postgres::alerts::save(pool, &rows).await`.
/// Naming both instances also makes the compiler check that each dialect has the query.
macro_rules! dispatch {
    ($store:expr, $module:ident :: $query:ident ( $($arg:expr),* $(,)? )) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => {
                $crate::store::sqlite::$module::$query(pool, $($arg),*).await
            }
            $crate::store::Store::Postgres(pool) => {
                $crate::store::postgres::$module::$query(pool, $($arg),*).await
            }
        }
    };
}

/// Defines the dialect functions that are one statement each, inside an area's `dialect!`:
/// `fn name(params) -> Output = kind: SQL, binds;` is
/// `pub(in crate::store) async fn name(pool: &Pool<Db>, params) -> Result<Output>`. The kind
/// says what the statement answers:
///
/// - `all R`: every row, read as `R` and converted to the output's items (`TryFrom`: a `From`,
///   or a check that the stored data is readable);
/// - `optional R`: at most one row, the same way;
/// - `scalar`: the value of the one row; `optional_scalar`: of at most one row;
/// - `execute`: no rows; the output is nothing (`()`), the number of rows changed (`u64`) or
///   whether exactly one was (`bool`: an insert that did not conflict, a delete that found
///   its row).
///
/// The parameters are bound in order as `$1`, `$2`, …; a list after the SQL binds those
/// expressions instead (fields of a parameter, another order).
macro_rules! queries {
    () => {};
    ($(#[$attr:meta])* fn $name:ident($($arg:tt: $ty:ty),* $(,)?) -> $out:ty =
        $kind:ident $($row:ty)? : $sql:expr $(, $bind:expr)* ; $($rest:tt)*) => {
        $(#[$attr])*
        pub(in crate::store) async fn $name(pool: &Pool<Db>, $($arg: $ty),*) -> Result<$out> {
            queries!(@$kind $($row)?; pool; $sql; [$($arg)*] [$($bind),*])
        }
        queries!($($rest)*);
    };
    (@all $row:ty; $pool:ident; $sql:expr; $($binds:tt)*) => {
        crate::store::decoded_all(
            queries!(@bind sqlx::query_as::<Db, $row>($sql), $($binds)*).fetch_all($pool).await?,
        )
    };
    (@optional $row:ty; $pool:ident; $sql:expr; $($binds:tt)*) => {
        crate::store::decoded_one(
            queries!(@bind sqlx::query_as::<Db, $row>($sql), $($binds)*)
                .fetch_optional($pool)
                .await?,
        )
    };
    (@scalar; $pool:ident; $sql:expr; $($binds:tt)*) => {
        Ok(queries!(@bind sqlx::query_scalar($sql), $($binds)*).fetch_one($pool).await?)
    };
    (@optional_scalar; $pool:ident; $sql:expr; $($binds:tt)*) => {
        Ok(queries!(@bind sqlx::query_scalar($sql), $($binds)*).fetch_optional($pool).await?)
    };
    (@execute; $pool:ident; $sql:expr; $($binds:tt)*) => {{
        let done = queries!(@bind sqlx::query($sql), $($binds)*).execute($pool).await?;
        Ok(crate::store::Executed::of(done.rows_affected()))
    }};
    (@bind $query:expr, [$($arg:ident)*] []) => {
        $query$(.bind($arg))*
    };
    (@bind $query:expr, $args:tt [$($bind:expr),+]) => {
        $query$(.bind($bind))+
    };
}

/// Instantiates every area's queries for one dialect, one module per area named after it,
/// each with the dialect as `Db`. Both dialects go through this one list, so they have the
/// same modules and, since each module is one macro's expansion, the same functions.
macro_rules! dialect_modules {
    ($db:ty, begin = $begin:literal, lock = $lock:literal) => {
        dialect_modules!(@ $db;
            queries(begin = $begin, lock = $lock), episodes(), alerts(begin = $begin),
            digest(), status(), cluster(), commands(), feed(), sessions(), expiry(),
        );
    };
    (@ $db:ty; $($area:ident($($args:tt)*),)+) => {
        $(pub(in crate::store) mod $area {
            use sqlx::Pool;

            use crate::store::Result;

            type Db = $db;

            crate::store::$area::dialect!($($args)*);
        })+
    };
}

/// The migrations of one dialect's directory (`migrations/<dir>/`), from the one list of
/// versions both dialects share: a file missing from either directory does not compile, and
/// `tests::both_dialects_have_the_same_migrations` finds one that is not listed.
macro_rules! migrations {
    ($dir:literal) => {
        migrations!(@ $dir;
            1 "initial" "0001_initial",
            2 "anomaly episodes" "0002_anomaly_episodes",
            3 "incidents" "0003_incidents",
            4 "digests" "0004_digests",
            5 "sessions" "0005_sessions",
            6 "cluster" "0006_cluster",
            7 "run feed" "0007_run_feed",
            8 "commands" "0008_commands",
        )
    };
    (@ $dir:literal; $($version:literal $description:literal $file:literal,)+) => {
        &[$(crate::store::EmbeddedMigration {
            version: $version,
            description: $description,
            #[cfg(test)]
            file: concat!($file, ".sql"),
            sql: include_str!(concat!("../../migrations/", $dir, "/", $file, ".sql")),
        }),+]
    };
}
mod alert_rows;
pub mod alerts;
pub mod cluster;
pub mod commands;
pub mod digest;
pub mod episodes;
mod existing;
pub mod feed;
pub use existing::Unreadable;
mod expiry;
mod postgres;
mod queries;
mod run_rows;
pub mod sessions;
mod sqlite;
pub mod status;
mod text;
mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr, SqlitePool};

use crate::baseline::sketch::Sketch;
use crate::run::RunResult;
pub use alerts::Incidents;
pub use cluster::Cluster;
pub use commands::Commands;
pub use digest::Digests;
pub use episodes::{EpisodeFilter, Episodes};
pub use expiry::Expiring;
pub use feed::Feed;
pub use queries::Runs;
pub use sessions::Sessions;
pub use status::Status;
pub use writer::{StoreWriter, WriterConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}` (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("the store writer has stopped")]
    WriterClosed,
    #[error("{runs} runs could not be stored: {error}")]
    WriteFailed { runs: u64, error: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A row that always converts (`From`).
impl From<std::convert::Infallible> for StoreError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<sqlx::Error> for StoreError {
    /// A column that does not decode (an unknown enum word, an out-of-range number, bad JSON)
    /// is stored data that is not readable, not a database failure.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            e => StoreError::Database(e),
        }
    }
}

/// One embedded migration (see `migrations!`).
#[derive(Debug, Clone, Copy)]
struct EmbeddedMigration {
    version: i64,
    description: &'static str,
    /// Its file's name in `migrations/<dialect>/` (for the parity test).
    #[cfg(test)]
    file: &'static str,
    sql: &'static str,
}

impl StoreError {
    /// Whether asking again later may succeed: the database is unreachable, restarting, out of
    /// connections or busy, rather than refusing this statement.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::BeginFailed => true,
            // PostgreSQL: connection exceptions (08…), shutting down or starting up (57P0…),
            // too many connections, serialization failure, deadlock; SQLite: busy, locked.
            sqlx::Error::Database(d) => d.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P0")
                    || matches!(code.as_ref(), "53300" | "40001" | "40P01" | "5" | "6")
            }),
            _ => false,
        }
    }
}

/// A connection pool to the store's database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One run as the scheduler hands it to storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub result: RunResult,
    /// When the schedule wanted the run to start.
    pub planned_at: DateTime<Utc>,
    /// How late the run started compared to `planned_at`.
    pub scheduling_lag: Duration,
    /// `content_sha256` of the journey version that ran (empty if unknown).
    pub journey_sha256: String,
}

/// A run read back from the store: exactly the [`RunRecord`] that was written.
pub type StoredRun = RunRecord;

/// A run without its steps, for listings (the API's and the dashboard's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub run_id: uuid::Uuid,
    pub journey: String,
    pub location: String,
    pub journey_sha256: String,
    pub planned_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub outcome: crate::run::Outcome,
    /// Empty when tracing was off.
    pub trace_id: String,
    /// How late the run started against its plan, in milliseconds on the wire.
    #[serde(rename = "scheduling_lag_ms", with = "lag_ms")]
    #[schema(value_type = f64)]
    pub scheduling_lag: Duration,
}

/// A [`Duration`] as fractional milliseconds, the unit every `_ms` field of the API is in.
mod lag_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::to_ms(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        f64::deserialize(d).map(super::from_ms)
    }
}

/// One version of a journey file, identified by the hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyVersion {
    pub name: String,
    pub content_sha256: String,
    pub definition: Option<String>,
    pub first_seen: DateTime<Utc>,
}

/// One hour of one step (or of whole runs: `step == None`) of a journey at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub journey: String,
    pub step: Option<String>,
    pub location: String,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Runs (or steps that ran: skipped steps are not counted).
    pub count: u64,
    /// Of those, failed or errored.
    pub failures: u64,
    /// Over the latencies observed (whole run duration, or a step's `total`).
    pub sum_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub sketch: Sketch,
}

/// Rows deleted by [`Runs::prune`] (step results go with their runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub rollups: u64,
}

impl Store {
    /// Whether `url` names an in-memory SQLite database: one that lives in its one connection,
    /// so a second pool on the same URL would be another, empty database.
    pub fn is_in_memory(url: &str) -> bool {
        url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
    }

    /// Runs, their steps, journey versions and hourly rollups.
    pub fn runs(&self) -> Runs<'_> {
        Runs(self)
    }

    /// Incidents, their timelines, notifications and delivery attempts (the outbox).
    pub fn incidents(&self) -> Incidents<'_> {
        Incidents(self)
    }

    /// Anomaly episodes.
    pub fn episodes(&self) -> Episodes<'_> {
        Episodes(self)
    }

    /// Digests and what they read from raw runs.
    pub fn digests(&self) -> Digests<'_> {
        Digests(self)
    }

    /// What the status page and the overview read beyond incidents.
    pub fn status(&self) -> Status<'_> {
        Status(self)
    }

    /// Heartbeats, leases and run claims of the nodes sharing the database.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster(self)
    }

    /// Commands relayed to the leader.
    pub fn commands(&self) -> Commands<'_> {
        Commands(self)
    }

    /// The run feed and its cursors.
    pub fn feed(&self) -> Feed<'_> {
        Feed(self)
    }

    /// Dashboard sessions.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(self)
    }

    /// Whether only one node can use this store: a SQLite file is one process's.
    pub fn is_single_node(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Opens (creating a SQLite file if missing) and migrates the database at `url`:
    /// `sqlite://waymark.db`, `sqlite::memory:`, `postgres://user@host/db`.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations not applied yet (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = migrator(self.migrations());
        dispatch!(self, queries::migrate(&migrator))
    }

    /// This dialect's embedded migrations.
    fn migrations(&self) -> &'static [EmbeddedMigration] {
        match self {
            Store::Sqlite(_) => sqlite::MIGRATIONS,
            Store::Postgres(_) => postgres::MIGRATIONS,
        }
    }

    pub async fn close(&self) {
        dispatch!(self, queries::close())
    }

    /// One trivial query: `Ok` when the database answers (readiness probes).
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, queries::ping())
    }

    /// SQLite's `PRAGMA integrity_check` (`"ok"` when the file is sound); PostgreSQL has no
    /// equivalent and answers `"ok"` once it responds.
    pub async fn integrity_check(&self) -> Result<String> {
        match self {
            Store::Sqlite(p) => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(p)
                    .await?;
                Ok(rows.join("\n"))
            }
            Store::Postgres(_) => self.ping().await.map(|()| "ok".to_string()),
        }
    }
}

fn migrator(files: &[EmbeddedMigration]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    AssertSqlSafe(m.sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

// --- conversions shared by both dialects ---------------------------------------------------

fn to_ns(t: DateTime<Utc>) -> Result<i64> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {t} is out of range")))
}

fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn to_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// Inverse of [`to_ms`], exact for any duration under about 100 days.
fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms.max(0.0) * 1e6).round() as u64)
}

/// Every row read back as what it stores (see `queries!`).
fn decoded_all<R, T: TryFrom<R>>(rows: Vec<R>) -> Result<Vec<T>>
where
    StoreError: From<T::Error>,
{
    rows.into_iter().map(|row| Ok(T::try_from(row)?)).collect()
}

/// At most one row read back as what it stores (see `queries!`).
fn decoded_one<R, T: TryFrom<R>>(row: Option<R>) -> Result<Option<T>>
where
    StoreError: From<T::Error>,
{
    Ok(row.map(T::try_from).transpose()?)
}

/// A statement's answer from the rows it changed (see `queries!`).
trait Executed {
    fn of(rows_affected: u64) -> Self;
}

impl Executed for () {
    fn of(_: u64) -> Self {}
}

impl Executed for u64 {
    fn of(rows_affected: u64) -> Self {
        rows_affected
    }
}

impl Executed for bool {
    /// Whether exactly one row changed.
    fn of(rows_affected: u64) -> Self {
        rows_affected == 1
    }
}

fn json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_sqlite_and_unknown_urls() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        assert!(store.runs().journeys().await.unwrap().is_empty());
        store.ping().await.unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        assert!(matches!(
            Store::connect("mysql://localhost/x").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    /// Both dialects embed the same migrations (one shared list), and every file in either
    /// directory is embedded: a migration added to one dialect only fails here.
    #[test]
    fn both_dialects_have_the_same_migrations() {
        let key = |m: &EmbeddedMigration| (m.version, m.description, m.file);
        let sqlite: Vec<_> = sqlite::MIGRATIONS.iter().map(key).collect();
        let postgres: Vec<_> = postgres::MIGRATIONS.iter().map(key).collect();
        assert_eq!(sqlite, postgres);
        for dialect in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect);
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let embedded: Vec<&str> = sqlite.iter().map(|&(_, _, file)| file).collect();
            assert_eq!(on_disk, embedded, "{}", dir.display());
            for &(version, _, file) in &sqlite {
                assert_eq!(file[..4].parse::<i64>().unwrap(), version, "{file}");
            }
        }
    }

    #[test]
    fn millisecond_columns_round_trip_durations_exactly() {
        for nanos in [0u64, 1, 999, 1_234_567, 250_123_457, 86_400_000_000_123] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(from_ms(to_ms(d)), d);
        }
        let t = DateTime::from_timestamp(1_773_482_400 + 1234, 123_456_789).unwrap();
        assert_eq!(from_ns(to_ns(t).unwrap()), t);
        assert_eq!(1_773_482_400 % 3600, 0);
        assert_eq!(run_rows::hour_of(t), 1_773_482_400);
    }
}
