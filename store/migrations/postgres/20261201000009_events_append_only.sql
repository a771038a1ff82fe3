-- The log is append-only: an event, once recorded, is never changed or
-- removed (a mistake is corrected by a new event). The audit chain would
-- show such an edit; this refuses it outright for every role but one that
-- can drop the trigger, which the application's role never needs to be
-- (README.md, "Least privilege on Postgres").
CREATE FUNCTION fl_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are never changed or removed (% on events refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the log is append-only: record a correcting event instead';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION fl_refuse_event_change();

CREATE TRIGGER events_never_truncated
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION fl_refuse_event_change();
