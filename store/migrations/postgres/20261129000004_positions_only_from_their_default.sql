-- A position is safe only when it comes from fl_next_position(), which gives
-- the inserting transaction its xid *before* it takes the position (the log
-- reader's visibility horizon relies on it; ARCHITECTURE.md, "One global
-- order"). An INSERT that takes a position straight from the sequence, or
-- names one, could commit below a reader's horizon and be skipped for good:
-- refuse it. fl_next_position() leaves the position it handed out in a
-- transaction-local setting; each row must carry exactly that one.

CREATE OR REPLACE FUNCTION fl_next_position() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p bigint;
BEGIN
    PERFORM pg_current_xact_id();
    p := nextval('events_position_seq');
    PERFORM set_config('freshledger.position', p::text, true);
    RETURN p;
END
$$;

CREATE FUNCTION fl_refuse_foreign_position() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS DISTINCT FROM
       NULLIF(current_setting('freshledger.position', true), '')::bigint THEN
        RAISE EXCEPTION 'events.position % was not taken by fl_next_position()', NEW.position
            USING ERRCODE = 'check_violation',
                  HINT = 'leave position to its column default';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_position_from_default
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION fl_refuse_foreign_position();
