-- Waymark storage, SQLite dialect. Instants are epoch nanoseconds (INTEGER, exact round trip
-- of chrono's UTC instants); durations are milliseconds (REAL); rollup hours are epoch seconds
-- of the hour's start. Keep in step with migrations/postgres/0001_initial.sql.

CREATE TABLE journeys (
    name           TEXT    NOT NULL,
    content_sha256 TEXT    NOT NULL,
    definition     TEXT,
    first_seen_ns  INTEGER NOT NULL,
    PRIMARY KEY (name, content_sha256)
);

CREATE TABLE runs (
    run_id            BLOB    NOT NULL PRIMARY KEY,
    journey           TEXT    NOT NULL,
    location          TEXT    NOT NULL,
    journey_sha256    TEXT    NOT NULL,
    planned_at_ns     INTEGER NOT NULL,
    started_at_ns     INTEGER NOT NULL,
    finished_at_ns    INTEGER NOT NULL,
    duration_ms       REAL    NOT NULL,
    outcome           TEXT    NOT NULL,
    trace_id          TEXT    NOT NULL,
    scheduling_lag_ms REAL    NOT NULL
);
CREATE INDEX runs_by_journey ON runs (journey, started_at_ns);
CREATE INDEX runs_by_start ON runs (started_at_ns);

CREATE TABLE step_results (
    run_id          BLOB    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    step_index      INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    dependency      TEXT,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    offset_ms       REAL    NOT NULL,
    failure_class   TEXT,
    failure_message TEXT,
    dns_ms          REAL,
    connect_ms      REAL,
    tls_ms          REAL,
    handshake_ms    REAL,
    ttfb_ms         REAL,
    download_ms     REAL,
    total_ms        REAL,
    conditions      TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    PRIMARY KEY (run_id, step_index)
);

-- One row per journey × step × location × hour; step '' is the whole run.
CREATE TABLE rollups (
    journey  TEXT    NOT NULL,
    step     TEXT    NOT NULL,
    location TEXT    NOT NULL,
    hour_s   INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    sum_ms   REAL    NOT NULL,
    min_ms   REAL,
    max_ms   REAL,
    sketch   TEXT    NOT NULL,
    PRIMARY KEY (journey, step, location, hour_s)
);
CREATE INDEX rollups_by_hour ON rollups (hour_s);
