-- The log is append-only: an event, once recorded, is never changed or
-- removed (a mistake is corrected by a new event). The audit chain would
-- show such an edit; this refuses it outright.
CREATE TRIGGER events_never_updated
BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are never changed or removed (UPDATE on events refused): the log is append-only');
END;

CREATE TRIGGER events_never_deleted
BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are never changed or removed (DELETE on events refused): the log is append-only');
END;
