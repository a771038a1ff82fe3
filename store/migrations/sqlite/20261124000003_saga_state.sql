-- The order saga's own state, one row per order: what it has done and
-- decided, written in the same transaction as its subscription's checkpoint.
-- `position` is the last event of the log the saga applied for the order, so
-- a redelivered (or replayed) event is recognised and never acts twice.
CREATE TABLE saga_orders (
    order_id   TEXT PRIMARY KEY,
    phase      TEXT NOT NULL,
    state      TEXT NOT NULL,
    position   BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX ix_saga_orders_phase ON saga_orders (phase);
