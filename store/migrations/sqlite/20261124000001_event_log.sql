-- The event log. SQLite has one writer at a time and assigns `position`
-- under the write lock, so positions become visible in commit order.
CREATE TABLE events
(
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL CHECK (sequence >= 0),
    event_type     TEXT    NOT NULL,
    event_version  TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    event_id       TEXT    NOT NULL UNIQUE,
    correlation_id TEXT,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_correlation ON events (correlation_id, position);

CREATE TABLE snapshots
(
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

CREATE TABLE subscriptions
(
    name               TEXT PRIMARY KEY,
    position           INTEGER NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'parked')),
    parked_at_position INTEGER,
    last_error         TEXT,
    updated_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
