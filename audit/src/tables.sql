-- The audit chain, owned by the audit crate (portable SQL: both backends).
--
-- One row per event of the log: its link in the hash chain (`hash`, made
-- from the link at `previous`), and what auditors search by. Written by
-- the chain keeper in position order, in one transaction per batch with
-- any checkpoint it signs; never updated.
CREATE TABLE IF NOT EXISTS audit_events (
    position       BIGINT PRIMARY KEY,
    previous       BIGINT NOT NULL,
    hash           TEXT   NOT NULL,
    stream_type    TEXT   NOT NULL,
    stream_id      TEXT   NOT NULL,
    event_type     TEXT   NOT NULL,
    actor          TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    -- RFC 3339 UTC with six fractional digits: sorts as time.
    occurred_at    TEXT   NOT NULL,
    recorded_at    TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, position);
CREATE INDEX IF NOT EXISTS audit_events_type ON audit_events (event_type, position);
CREATE INDEX IF NOT EXISTS audit_events_occurred ON audit_events (occurred_at, position);
CREATE INDEX IF NOT EXISTS audit_events_recorded ON audit_events (recorded_at, position);

-- Signed checkpoints: the chain's head at `position`.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    position   BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    signed_at  TEXT NOT NULL,
    public_key TEXT,
    signature  TEXT
);
