//! The shop's SQLite database and the one door every query goes through.
//!
//! The database lives in memory and belongs to one [`super::DemoTarget`]: a pool of a single
//! connection that never expires, because every connection to `sqlite::memory:` is a database
//! of its own, and closing the last one throws the data away.
//!
//! [`Db::sql`] is that door: each statement runs inside a CLIENT span named after its operation
//! and table (`SELECT items`), child of the request's server span, carrying the parameterized
//! text (never the bound values). Only the schema script at start-up bypasses it: it runs
//! before any request, so it belongs to no trace.

use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Encode, Executor, FromRow, Sqlite, SqlitePool, Type};

/// Tables and the seeded catalogue. Item ids are part of the journeys' contract
/// (`shop-order-feed` orders item 3).
const SCHEMA: &str = "
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE recommendations (
    item_id INTEGER NOT NULL REFERENCES items (id),
    recommended_id INTEGER NOT NULL REFERENCES items (id),
    PRIMARY KEY (item_id, recommended_id)
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL
);
CREATE TABLE carts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL
);
CREATE TABLE cart_lines (
    cart_id INTEGER NOT NULL REFERENCES carts (id),
    item_id INTEGER NOT NULL REFERENCES items (id),
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (cart_id, item_id)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cart_id INTEGER NOT NULL REFERENCES carts (id),
    status TEXT NOT NULL CHECK (status IN ('confirmed', 'shipped')),
    charge_id TEXT NOT NULL
);
INSERT INTO items (id, name, price_cents) VALUES
    (1, 'walking boots', 8900),
    (2, 'rain jacket', 12900),
    (3, 'trail map', 900),
    (4, 'water bottle', 1500);
INSERT INTO recommendations (item_id, recommended_id) VALUES
    (1, 3), (1, 4), (2, 1), (3, 4), (4, 3);
";

/// The shop's database and the tracer its query spans go to.
pub(super) struct Db {
    pool: SqlitePool,
    tracer: SdkTracer,
}

impl Db {
    /// A fresh database with the schema and catalogue.
    pub async fn open(tracer: SdkTracer) -> Result<Db, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Db { pool, tracer })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A statement whose span will be a child of `parent`'s span.
    pub fn sql(&self, parent: &Context, text: &'static str) -> Statement<'_> {
        Statement {
            tracer: &self.tracer,
            parent: parent.clone(),
            text,
            query: sqlx::query(text),
            cost: Duration::ZERO,
        }
    }
}

/// One statement on its way to the database, see [`Db::sql`].
pub(super) struct Statement<'a> {
    tracer: &'a SdkTracer,
    parent: Context,
    text: &'static str,
    query: Query<'static, Sqlite, SqliteArguments>,
    cost: Duration,
}

impl Statement<'_> {
    pub fn bind<'t, T: Encode<'t, Sqlite> + Type<Sqlite>>(mut self, value: T) -> Self {
        self.query = self.query.bind(value);
        self
    }

    /// Makes the statement take `cost` longer, inside its span. In memory SQLite answers in
    /// microseconds; the fault injection needs queries that cost what they would on a real,
    /// loaded database server, so that a trace shows them.
    pub fn cost(mut self, cost: Duration) -> Self {
        self.cost = cost;
        self
    }

    pub async fn fetch_all<'c, O, E>(self, on: E) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, SqliteRow>,
        E: Executor<'c, Database = Sqlite>,
    {
        self.fetch(
            |query| query.fetch_all(on),
            |rows| rows.iter().map(O::from_row).collect::<Result<Vec<O>, _>>(),
            |rows| rows.len() as i64,
        )
        .await
    }

    pub async fn fetch_optional<'c, O, E>(self, on: E) -> Result<Option<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, SqliteRow>,
        E: Executor<'c, Database = Sqlite>,
    {
        self.fetch(
            |query| query.fetch_optional(on),
            |row| row.as_ref().map(O::from_row).transpose(),
            |row| i64::from(row.is_some()),
        )
        .await
    }

    /// Runs the statement with `run`, decodes what came back with `decode`, and records on the
    /// span how many rows that was (`count`), for the fetches of every shape.
    async fn fetch<R, T, F>(
        self,
        run: impl FnOnce(Query<'static, Sqlite, SqliteArguments>) -> F,
        decode: impl FnOnce(R) -> Result<T, sqlx::Error>,
        count: impl FnOnce(&T) -> i64,
    ) -> Result<T, sqlx::Error>
    where
        F: Future<Output = Result<R, sqlx::Error>>,
    {
        let (mut span, query) = self.start().await;
        let result = run(query).await.and_then(decode);
        if let Ok(found) = &result {
            span.set_attribute(KeyValue::new("db.response.returned_rows", count(found)));
        }
        finish(span, result)
    }

    /// Runs a statement that returns no rows; the number of rows it changed.
    pub async fn execute<'c, E>(self, on: E) -> Result<u64, sqlx::Error>
    where
        E: Executor<'c, Database = Sqlite>,
    {
        let (span, query) = self.start().await;
        let result = query.execute(on).await.map(|done| done.rows_affected());
        finish(span, result)
    }

    async fn start(
        self,
    ) -> (
        opentelemetry_sdk::trace::Span,
        Query<'static, Sqlite, SqliteArguments>,
    ) {
        let (operation, table) = target(self.text);
        let span = self
            .tracer
            .span_builder(format!("{operation} {table}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "sqlite"),
                KeyValue::new("db.operation.name", operation),
                KeyValue::new("db.collection.name", table),
                KeyValue::new("db.query.text", squeeze(self.text)),
            ])
            .start_with_context(self.tracer, &self.parent);
        if !self.cost.is_zero() {
            tokio::time::sleep(self.cost).await;
        }
        (span, self.query)
    }
}

fn finish<T>(
    mut span: opentelemetry_sdk::trace::Span,
    result: Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    if let Err(e) = &result {
        let kind = match e {
            sqlx::Error::Database(_) => "database",
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "pool",
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
            _ => "other",
        };
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
    result
}

/// The operation and the first table a statement names: `("SELECT", "items")` for
/// `SELECT id FROM items WHERE ...`, as the span name convention `{operation} {table}` wants.
pub(super) fn target(sql: &str) -> (&str, &str) {
    let mut words = sql.split_whitespace();
    let operation = words.next().unwrap_or("SQL");
    let mut previous = operation;
    for word in words {
        if ["FROM", "INTO", "UPDATE"]
            .iter()
            .any(|k| previous.eq_ignore_ascii_case(k))
        {
            let table = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            return (operation, table);
        }
        previous = word;
    }
    (operation, "")
}

/// The statement on one line: the constants are indented for reading in the source.
fn squeeze(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
