-- ClickHouse tables of the `analytics` crate, projected from the event log.
-- `{db}` is the database, `{suffix}` empty for the live tables and `_next`
-- while a replay builds their successors. Statements are separated by `;`
-- at the end of a line. Written for ClickHouse 18.16 and current releases
-- alike (checked against both by the test command).
--
-- Idempotence: every row carries the global position of the event it came
-- from (and, where one event makes several rows, its line within the
-- event), both part of the sorting key, so a batch sent again after a crash
-- writes rows equal to ones already there: ReplacingMergeTree keeps one of
-- each at merge time, and until then every report is immune to the copy:
-- sums read with FINAL, and the rest use aggregates a copy cannot change
-- (any, max, argMax by position, distinct positions).

-- Every event: the flattened envelope and the JSON body. Ordered for
-- per-stream scans; partitioned by month for time scans.
CREATE TABLE IF NOT EXISTS {db}.events{suffix} (
    position UInt64,
    event_id UUID,
    stream_type String,
    stream_id String,
    stream_version UInt64,
    event_type String,
    event_version String,
    occurred_at DateTime('UTC'),
    recorded_at DateTime('UTC'),
    correlation_id UUID,
    causation_id Nullable(UUID),
    actor String,
    actor_role String,
    payload String
) ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (stream_type, stream_id, stream_version, position);

-- Order lines: one row per line per order event that concerns lines.
-- kind: ordered (OrderPlaced: quantity and price as ordered), packed
-- (OrderPacked: quantity packed and price billed), cancelled
-- (OrderLineCancelled, or every line of an OrderCancelled), delivered (every
-- line of an OrderDelivered). A line's state is the sum of its rows
-- (see reports/sales.sql). Quantities in grams (unit = 'g') or whole units
-- (unit = 'unit'); money in minor units of `currency`.
CREATE TABLE IF NOT EXISTS {db}.order_lines{suffix} (
    position UInt64,
    line UInt16,
    kind String,
    order_id UUID,
    customer_id UUID,
    warehouse_id String,
    sku String,
    unit String,
    quantity UInt64,
    amount_minor Int64,
    currency String,
    payment_method String,
    reason String,
    placed_at DateTime('UTC'),
    occurred_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(placed_at)
ORDER BY (warehouse_id, sku, placed_at, order_id, position, line);

-- Stock movements: one row per inventory batch event, with the batch's
-- facts (SKU, warehouse, supplier, cold chain, receipt, expiry, cost).
-- on_hand_delta / reserved_delta: how the event moved the batch's stock on
-- hand and its reservations; cost_minor: a write-off's cost.
-- kind: received, reserved, released, picked, adjusted, written_off,
-- expiry_warning, expired.
CREATE TABLE IF NOT EXISTS {db}.stock_movements{suffix} (
    position UInt64,
    kind String,
    batch_id UUID,
    sku String,
    warehouse_id String,
    supplier_id String,
    cold_chain String,
    unit String,
    received_at DateTime('UTC'),
    expires_at DateTime('UTC'),
    batch_quantity UInt64,
    batch_cost_minor Int64,
    quantity UInt64,
    on_hand_delta Int64,
    reserved_delta Int64,
    order_id Nullable(UUID),
    reason String,
    cost_minor Int64,
    currency String,
    occurred_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(received_at)
ORDER BY (warehouse_id, sku, batch_id, position);

-- Payments: one row per payment event. kind: initiated, authorized,
-- captured, failed, refunded, voided, cash_collected.
CREATE TABLE IF NOT EXISTS {db}.payments{suffix} (
    position UInt64,
    kind String,
    payment_id UUID,
    order_id UUID,
    method String,
    gateway String,
    amount_minor Int64,
    currency String,
    reference String,
    rider_id String,
    failure_code String,
    occurred_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (order_id, payment_id, position);

-- Deliveries: one row per delivery event, with the delivery's slot (the
-- promise) and cold chain. kind: created, assigned, picked_up, location,
-- completed, attempt_failed.
CREATE TABLE IF NOT EXISTS {db}.deliveries{suffix} (
    position UInt64,
    kind String,
    delivery_id UUID,
    order_id UUID,
    slot_start DateTime('UTC'),
    slot_end DateTime('UTC'),
    cold_chain UInt8,
    rider_id String,
    proof String,
    reason String,
    lat_micro Int32,
    lon_micro Int32,
    occurred_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(slot_start)
ORDER BY (delivery_id, position);

-- The catalogue as reference data (not in the log): a product's name,
-- primary category and unit, refreshed from the catalogue; the newest
-- refresh of each SKU wins.
CREATE TABLE IF NOT EXISTS {db}.products{suffix} (
    sku String,
    name String,
    category String,
    unit String,
    refreshed UInt64
) ENGINE = ReplacingMergeTree(refreshed)
ORDER BY sku;
