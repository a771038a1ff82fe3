-- Idempotency keys survive crashes. A claim names the process that holds
-- it (its connections' application_name), so a claim whose process is gone
-- can be taken over; and every event carries its request's key in its
-- metadata, so what a dead process committed is found in the log.
ALTER TABLE idempotency_keys ADD COLUMN owner text;
CREATE INDEX events_idempotency_key ON events ((metadata ->> 'idempotency_key'))
    WHERE (metadata ->> 'idempotency_key') IS NOT NULL;
