CREATE TABLE warehouses
(
    id         TEXT PRIMARY KEY,
    warehouse  TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE suppliers
(
    id         TEXT PRIMARY KEY,
    supplier   TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
