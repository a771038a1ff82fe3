-- A log reader must wait for every transaction below its horizon that can
-- still add an event, and only for those. fl_next_position() marks such a
-- transaction: before it takes a position it holds a shared advisory lock
-- keyed by its own xid (low 31 bits) until it ends. A reader asks whether a
-- running xid is an appender by trying that key: one lock-table probe,
-- instead of reading pg_locks (which locks every partition of the lock
-- table and slowed every command). Class 1181499728 is 'FlAP'.
-- Appends in flight took their positions unmarked: wait for them (SHARE
-- conflicts with their ROW EXCLUSIVE) and hold new ones until this commits,
-- so no unmarked position is ever in flight beside a reader that trusts
-- the marks.
LOCK TABLE events IN SHARE MODE;

CREATE OR REPLACE FUNCTION fl_next_position() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p bigint;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(
        1181499728, (pg_current_xact_id()::text::bigint & 2147483647)::int);
    p := nextval('events_position_seq');
    PERFORM set_config('freshledger.position', p::text, true);
    RETURN p;
END
$$;
