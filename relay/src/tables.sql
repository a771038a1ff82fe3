-- The relay's own table, owned by the `relay` crate. Portable SQL (TEXT and
-- BIGINT only; timestamps as RFC 3339 UTC text). Its checkpoint is the
-- store's subscription `kafka-relay`.
--
-- An event Kafka would not take (too large, refused) is a `poison` row; the
-- later events of its stream wait behind it as `blocked` rows, so one
-- stream's order holds while the rest of the log flows. An operator sets a
-- poison row to `retry` or `skipped`; the relay then publishes the stream's
-- waiting rows in order (`delivered`).
CREATE TABLE IF NOT EXISTS relay_dead_letters (
    global_position BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL,
    stream_type TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    failed_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS relay_dead_letters_pending ON relay_dead_letters (status, stream_type, stream_id);
