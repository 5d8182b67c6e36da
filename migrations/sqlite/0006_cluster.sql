-- Several nodes sharing one database (docs/deployment.md#several-nodes). Instants are epoch
-- nanoseconds. Keep in step with the other dialect's 0006_cluster.sql.

-- Every node's heartbeat: who runs, where, which version, with which journeys.
CREATE TABLE nodes (
    node_id         TEXT   NOT NULL PRIMARY KEY,
    location        TEXT   NOT NULL,
    version         TEXT   NOT NULL,
    hostname        TEXT   NOT NULL,
    -- SHA-256 over the (name, content hash) of every journey the node schedules: nodes that
    -- disagree run different journey files (version skew).
    journeys_sha256 TEXT   NOT NULL,
    started_at_ns   BIGINT NOT NULL,
    heartbeat_at_ns BIGINT NOT NULL
);

-- Time-bound leases: the holder of `leader` runs the singleton duties. A lease is taken when
-- free or expired, renewed by its holder, and lost when not renewed in time.
CREATE TABLE leases (
    name          TEXT   NOT NULL PRIMARY KEY,
    holder        TEXT   NOT NULL,
    expires_at_ns BIGINT NOT NULL
);

-- One row per (journey, location, scheduled instant) that a node took: the primary key makes
-- the tick run once however many nodes of that location planned it. `outcome` is settled by
-- the leader once the run should be stored: `ran`, or `missed` when its node died mid-run.
CREATE TABLE run_claims (
    journey       TEXT   NOT NULL,
    location      TEXT   NOT NULL,
    planned_at_ns BIGINT NOT NULL,
    node_id       TEXT   NOT NULL,
    claimed_at_ns BIGINT NOT NULL,
    outcome       TEXT,
    PRIMARY KEY (journey, location, planned_at_ns)
);
CREATE INDEX run_claims_by_claimed_at ON run_claims (claimed_at_ns);
CREATE INDEX run_claims_unsettled ON run_claims (claimed_at_ns) WHERE outcome IS NULL;
-- Finds the run of a claimed tick.
CREATE INDEX runs_by_tick ON runs (journey, location, planned_at_ns);
