-- The event log. postgres-es' own columns first (its INSERT and SELECTs name
-- them), then ours, which Postgres fills by default and postgres-es ignores.

CREATE SEQUENCE events_position_seq AS bigint;

-- Hands out global positions. It first makes sure the inserting transaction
-- has its xid, so any transaction holding a position was already assigned an
-- xid when it took it: the log reader's visibility horizon relies on this
-- (ARCHITECTURE.md, "One global order").
CREATE FUNCTION fl_next_position() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('events_position_seq');
END
$$;

CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    position       bigint                       NOT NULL DEFAULT fl_next_position(),
    recorded_at    timestamptz                  NOT NULL DEFAULT clock_timestamp(),
    event_id       uuid NOT NULL GENERATED ALWAYS AS ((metadata ->> 'event_id')::uuid) STORED,
    correlation_id uuid GENERATED ALWAYS AS ((metadata ->> 'correlation_id')::uuid) STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
ALTER SEQUENCE events_position_seq OWNED BY events.position;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_correlation ON events (correlation_id, position);

-- postgres-es' snapshot table, unchanged.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Durable checkpoints of named subscriptions.
CREATE TABLE subscriptions
(
    name               text PRIMARY KEY,
    position           bigint      NOT NULL DEFAULT 0,
    status             text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'parked')),
    parked_at_position bigint,
    last_error         text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
