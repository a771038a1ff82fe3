CREATE TABLE products
(
    sku        TEXT PRIMARY KEY,
    product    TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE idempotency_keys
(
    key           TEXT PRIMARY KEY,
    request_hash  TEXT    NOT NULL,
    status        INTEGER,
    response_body TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
