-- Anomaly episodes (src/baseline): one row per episode of one detector on one series
-- (journey × step × location). Open while end_ns is NULL. Instants are epoch nanoseconds.
-- Keep in step with the other dialect's 0002_anomaly_episodes.sql.

CREATE TABLE anomaly_episodes (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journey        TEXT    NOT NULL,
    step           TEXT    NOT NULL,
    location       TEXT    NOT NULL,
    detector       TEXT    NOT NULL,
    sensitivity    TEXT    NOT NULL,
    start_ns       BIGINT  NOT NULL,
    detected_ns    BIGINT  NOT NULL,
    end_ns         BIGINT,
    peak_score     DOUBLE PRECISION NOT NULL,
    peak_value     DOUBLE PRECISION NOT NULL,
    baseline       DOUBLE PRECISION NOT NULL,
    anomalous_runs BIGINT  NOT NULL
);
CREATE INDEX anomaly_episodes_by_start ON anomaly_episodes (start_ns);
CREATE INDEX anomaly_episodes_by_journey ON anomaly_episodes (journey, start_ns);
CREATE INDEX anomaly_episodes_open ON anomaly_episodes (end_ns);
