-- Waymark storage, PostgreSQL dialect. Instants are epoch nanoseconds (BIGINT, exact round trip
-- of chrono's UTC instants); durations are milliseconds (DOUBLE PRECISION); rollup hours are epoch seconds
-- of the hour's start. Keep in step with migrations/sqlite/0001_initial.sql.

CREATE TABLE journeys (
    name           TEXT    NOT NULL,
    content_sha256 TEXT    NOT NULL,
    definition     TEXT,
    first_seen_ns  BIGINT  NOT NULL,
    PRIMARY KEY (name, content_sha256)
);

CREATE TABLE runs (
    run_id            UUID    NOT NULL PRIMARY KEY,
    journey           TEXT    NOT NULL,
    location          TEXT    NOT NULL,
    journey_sha256    TEXT    NOT NULL,
    planned_at_ns     BIGINT  NOT NULL,
    started_at_ns     BIGINT  NOT NULL,
    finished_at_ns    BIGINT  NOT NULL,
    duration_ms       DOUBLE PRECISION NOT NULL,
    outcome           TEXT    NOT NULL,
    trace_id          TEXT    NOT NULL,
    scheduling_lag_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX runs_by_journey ON runs (journey, started_at_ns);
CREATE INDEX runs_by_start ON runs (started_at_ns);

CREATE TABLE step_results (
    run_id          UUID    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    step_index      BIGINT  NOT NULL,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    dependency      TEXT,
    status          TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL,
    offset_ms       DOUBLE PRECISION NOT NULL,
    failure_class   TEXT,
    failure_message TEXT,
    dns_ms          DOUBLE PRECISION,
    connect_ms      DOUBLE PRECISION,
    tls_ms          DOUBLE PRECISION,
    handshake_ms    DOUBLE PRECISION,
    ttfb_ms         DOUBLE PRECISION,
    download_ms     DOUBLE PRECISION,
    total_ms        DOUBLE PRECISION,
    conditions      JSONB   NOT NULL,
    detail          JSONB   NOT NULL,
    PRIMARY KEY (run_id, step_index)
);

-- One row per journey × step × location × hour; step '' is the whole run.
CREATE TABLE rollups (
    journey  TEXT    NOT NULL,
    step     TEXT    NOT NULL,
    location TEXT    NOT NULL,
    hour_s   BIGINT  NOT NULL,
    count    BIGINT  NOT NULL,
    failures BIGINT  NOT NULL,
    sum_ms   DOUBLE PRECISION NOT NULL,
    min_ms   DOUBLE PRECISION,
    max_ms   DOUBLE PRECISION,
    sketch   TEXT    NOT NULL,
    PRIMARY KEY (journey, step, location, hour_s)
);
CREATE INDEX rollups_by_hour ON rollups (hour_s);
