-- Dashboard sessions (src/api/auth.rs). The cookie holds a random token; only its SHA-256 is
-- stored, so a copy of the database opens no session. csrf_token is the synchronizer token
-- that every state-changing form of the session must send back. Instants are epoch
-- nanoseconds. Keep in step with the other dialect's 0005_sessions.sql.

CREATE TABLE sessions (
    token_sha256  TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    csrf_token    TEXT    NOT NULL,
    created_at_ns BIGINT NOT NULL,
    expires_at_ns BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at_ns);
