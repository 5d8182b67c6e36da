-- The order in which runs were stored, whichever node stored them: the leader's analysis reads
-- it from its cursor on, so every run of every node is analysed once, by one node. Keep in
-- step with the other dialect's 0007_run_feed.sql.

CREATE TABLE run_feed (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         BLOB   NOT NULL,
    recorded_at_ns BIGINT NOT NULL
);
CREATE INDEX run_feed_by_recorded_at ON run_feed (recorded_at_ns);

-- Named positions in feeds: `analysis` is the last run_feed seq the leader analysed.
CREATE TABLE cursors (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
