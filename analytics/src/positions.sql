-- The analytics projector's positions, owned by the `analytics` crate, in
-- the store's database (where a compare-and-set can guard them; ClickHouse
-- has no transactions). Portable SQL (TEXT and BIGINT only).
--
-- One row per ClickHouse table (`database.table`): every event up to
-- `position` is in that table (ClickHouse acknowledged the insert). A
-- replay marks the tables it is about to swap `swapping = 1`, which stops
-- the live projector from moving them, renames its tables in, then sets
-- the position it replayed to and clears the mark.
CREATE TABLE IF NOT EXISTS analytics_positions (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    swapping BIGINT NOT NULL,
    replayed_to BIGINT,
    replayed_at TEXT,
    updated_at TEXT NOT NULL
);
