-- Incidents (src/alert): one row per incident, its timeline, the notification outbox and the
-- delivery attempts. `incidents.body` and `notifications.payload` hold the whole Incident /
-- Notification as JSON text and are what is read back; the other columns exist for filtering
-- and ordering. `notifications.seq` is the queue order. Instants are epoch nanoseconds.
-- Keep in step with the other dialect's 0003_incidents.sql.

CREATE TABLE incidents (
    id             INTEGER PRIMARY KEY,
    journey        TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    dedup_key      TEXT    NOT NULL UNIQUE,
    started_at_ns  INTEGER NOT NULL,
    opened_at_ns   INTEGER NOT NULL,
    resolved_at_ns INTEGER,
    -- The latest instant of the last change saved (the store reads no clock).
    updated_at_ns  INTEGER NOT NULL,
    body           TEXT    NOT NULL
);
CREATE INDEX incidents_by_opened ON incidents (opened_at_ns);
CREATE INDEX incidents_by_journey ON incidents (journey, opened_at_ns);
CREATE INDEX incidents_by_state ON incidents (state);

CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at_ns       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);

CREATE TABLE notifications (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT    NOT NULL UNIQUE,
    incident_id        INTEGER NOT NULL REFERENCES incidents (id),
    channel            TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    status             TEXT    NOT NULL
        CHECK (status IN ('pending', 'delivered', 'failed', 'muted')),
    created_at_ns      INTEGER NOT NULL,
    next_attempt_at_ns INTEGER,
    attempts           INTEGER NOT NULL,
    last_error         TEXT,
    delivered_at_ns    INTEGER,
    payload            TEXT    NOT NULL
);
CREATE INDEX notifications_by_status ON notifications (status, seq);
CREATE INDEX notifications_by_incident ON notifications (incident_id, seq);

CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    at_ns           INTEGER NOT NULL,
    duration_ms     REAL    NOT NULL,
    status_code     INTEGER,
    outcome         TEXT    NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_by_notification ON delivery_attempts (notification_id, id);
