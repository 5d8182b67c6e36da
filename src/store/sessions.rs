//! Dashboard sessions (see `crate::api::auth`): created at login, looked up by the SHA-256 of
//! the cookie's token, deleted at logout, pruned once expired.

use chrono::{DateTime, Utc};

use super::{Result, Store, from_ns, to_ns};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Dashboard sessions.
///
/// Borrowed from the store by [`Store::sessions`], so callers see one area at a time.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a>(pub(super) &'a Store);

impl Sessions<'_> {
    pub async fn create_session(self, token_sha256: &str, s: &Session) -> Result<()> {
        let row = (token_sha256, s, to_ns(s.created_at)?, to_ns(s.expires_at)?);
        dispatch!(self.0, sessions::create(row))
    }

    /// The session with this token hash, if it exists and has not expired at `now`.
    pub async fn session(self, token_sha256: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        let now = to_ns(now)?;
        dispatch!(self.0, sessions::get(token_sha256, now))
    }

    pub async fn delete_session(self, token_sha256: &str) -> Result<()> {
        dispatch!(self.0, sessions::delete(token_sha256))
    }
}

/// A `sessions` row.
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    username: String,
    csrf_token: String,
    created_at_ns: i64,
    expires_at_ns: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            username: row.username,
            csrf_token: row.csrf_token,
            created_at: from_ns(row.created_at_ns),
            expires_at: from_ns(row.expires_at_ns),
        }
    }
}

macro_rules! dialect {
    () => {
        use crate::store::sessions::{Session, SessionRow};

        #[rustfmt::skip]
        queries! {
            fn create((hash, s, created, expires): (&str, &Session, i64, i64)) -> () = execute:
                "INSERT INTO sessions (token_sha256, username, csrf_token, created_at_ns, \
         expires_at_ns) VALUES ($1, $2, $3, $4, $5)",
                hash, &s.username, &s.csrf_token, created, expires;

            fn get(hash: &str, now: i64) -> Option<Session> = optional SessionRow:
                "SELECT * FROM sessions WHERE token_sha256 = $1 AND expires_at_ns > $2";

            fn delete(hash: &str) -> () = execute: "DELETE FROM sessions WHERE token_sha256 = $1";
        }
    };
}
pub(super) use dialect;
