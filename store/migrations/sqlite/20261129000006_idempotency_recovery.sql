-- Idempotency keys survive crashes. A claim names the process that holds
-- it, so a claim whose process is gone can be taken over; and every event
-- carries its request's key in its metadata, so what a dead process
-- committed is found in the log.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
CREATE INDEX events_idempotency_key ON events (json_extract(metadata, '$.idempotency_key'))
    WHERE json_extract(metadata, '$.idempotency_key') IS NOT NULL;
