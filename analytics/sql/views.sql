-- Views of the `analytics` crate over its tables, shared by the reports.
-- `{db}` is the database. Replaced when the projector starts and after a
-- replay (so a new definition takes effect); created if missing before a
-- report runs. A view is a stored query: it reads whatever table holds the
-- name, so a replay's swap needs no new view.

-- One row per order line: its state, from its rows in order_lines. Every
-- aggregate here gives the same answer when a row is there twice (a batch
-- sent again, before ClickHouse merged the copies away): any, max, and the
-- value of the latest row of a kind (argMax by position). So no FINAL,
-- which costs three times as much on large tables.
-- sold_*: what was packed (where packed) or ordered, 0 once cancelled;
-- cancelled_minor: as ordered, once cancelled; delivered_minor: sold and
-- delivered.
CREATE VIEW IF NOT EXISTS {db}.order_line_states AS
SELECT
    order_id,
    sku,
    any(customer_id) AS customer_id,
    any(warehouse_id) AS warehouse_id,
    any(unit) AS unit,
    any(currency) AS currency,
    any(payment_method) AS payment_method,
    min(placed_at) AS placed_at,
    argMaxIf(quantity, position, kind = 'ordered') AS ordered_quantity,
    argMaxIf(amount_minor, position, kind = 'ordered') AS ordered_minor,
    max(kind = 'packed') AS packed,
    argMaxIf(quantity, position, kind = 'packed') AS packed_quantity,
    argMaxIf(amount_minor, position, kind = 'packed') AS packed_minor,
    max(kind = 'cancelled') AS cancelled,
    max(kind = 'delivered') AS delivered,
    if(cancelled, 0, if(packed, packed_quantity, ordered_quantity)) AS sold_quantity,
    if(cancelled, 0, if(packed, packed_minor, ordered_minor)) AS sold_minor,
    if(cancelled, ordered_minor, 0) AS cancelled_minor,
    if(delivered, sold_minor, 0) AS delivered_minor
FROM {db}.order_lines
GROUP BY order_id, sku;

-- One row per order. live_lines: lines not cancelled (an order with none
-- was cancelled entirely).
CREATE VIEW IF NOT EXISTS {db}.order_states AS
SELECT
    order_id,
    any(customer_id) AS customer_id,
    any(warehouse_id) AS warehouse_id,
    any(currency) AS currency,
    min(placed_at) AS placed_at,
    count() AS lines,
    countIf(cancelled = 0) AS live_lines,
    sum(sold_minor) AS sold_minor,
    max(delivered) AS delivered
FROM {db}.order_line_states
GROUP BY order_id;
