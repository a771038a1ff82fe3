-- Reference data batches and orders must name: the registries of
-- warehouses (address, storage zones) and suppliers (name, contact). Not
-- event-sourced, like products (ARCHITECTURE.md, "Catalogue decision").
CREATE TABLE warehouses
(
    id         text PRIMARY KEY,
    warehouse  json        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE suppliers
(
    id         text PRIMARY KEY,
    supplier   json        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
