-- Reference data: the product catalogue orders are priced from. Not
-- event-sourced (ARCHITECTURE.md, "Catalogue decision").
CREATE TABLE products
(
    sku        text PRIMARY KEY,
    product    json        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The command API's Idempotency-Key records: one row per key, claimed
-- before the command runs, completed with the response it gave.
CREATE TABLE idempotency_keys
(
    key           text PRIMARY KEY,
    request_hash  text        NOT NULL,
    status        smallint,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
