-- Feedback digests (src/digest): one row per owner and period [from_ns, to_ns), so that a
-- digest is computed and sent once however often the schedule fires. `body` is the whole
-- Digest as JSON text; sent_at_ns stays NULL until it went out. Instants are epoch
-- nanoseconds. The figures come from runs and step_results through runs_by_journey and the
-- step_results primary key (run_id first): no new index is needed there.
-- Keep in step with the other dialect's 0004_digests.sql.

CREATE TABLE digests (
    -- AUTOINCREMENT: an id is never reused, even after a delete, so it names one digest for good.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    owner         TEXT    NOT NULL,
    from_ns       INTEGER NOT NULL,
    to_ns         INTEGER NOT NULL,
    created_at_ns INTEGER NOT NULL,
    sent_at_ns    INTEGER,
    body          TEXT    NOT NULL,
    -- Its index (owner, from_ns, to_ns) also serves listing one owner's digests by period.
    UNIQUE (owner, from_ns, to_ns)
);

-- One row per digest and channel once its delivery ended: 'delivered', or 'failed' (a
-- permanent error, or still failing after alerting.give_up_after). A digest is done
-- (digests.sent_at_ns set) when every channel of its owner has a row, so a restart resends
-- only to the channels that have none.
CREATE TABLE digest_deliveries (
    digest_id  INTEGER NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    channel    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    at_ns      INTEGER NOT NULL,
    error      TEXT,
    PRIMARY KEY (digest_id, channel)
);
