-- Acknowledge and resolve asked on a node that does not lead: the asking node writes the
-- command, the leader (which alone holds the incident state machine) takes it, applies it and
-- writes the answer, which the asking node reads back. Keep in step with the other dialect's
-- 0008_commands.sql.

CREATE TABLE commands (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    action         TEXT   NOT NULL, -- acknowledge | resolve
    incident_id    BIGINT NOT NULL,
    by_whom        TEXT   NOT NULL,
    asked_on       TEXT   NOT NULL, -- node_id
    asked_at_ns    BIGINT NOT NULL,
    taken_by       TEXT,            -- the leader's node_id, once taken
    answered_at_ns BIGINT,
    outcome        TEXT,            -- ok | not_found | conflict | unavailable
    detail         TEXT             -- conflict: the incident's state; unavailable: why
);
CREATE INDEX commands_untaken ON commands (id) WHERE taken_by IS NULL;
CREATE INDEX commands_by_asked_at ON commands (asked_at_ns);
