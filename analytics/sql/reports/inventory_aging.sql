-- Inventory aging: stock on hand per warehouse at the moment {to} (default:
-- now), bucketed by whole days to expiry and days since receipt (UTC
-- calendar days); batches, quantity on hand (grams or units) and its value
-- at procurement cost (minor units).
SELECT
    batch_warehouse AS warehouse_id,
    multiIf(days_to_expiry < 0, 'expired', days_to_expiry <= 1, '0-1 days', days_to_expiry <= 3, '2-3 days', days_to_expiry <= 7, '4-7 days', '8+ days') AS to_expiry,
    multiIf(days_since_receipt <= 1, '0-1 days', days_since_receipt <= 3, '2-3 days', days_since_receipt <= 7, '4-7 days', days_since_receipt <= 14, '8-14 days', '15+ days') AS since_receipt,
    batch_unit AS unit,
    batch_currency AS currency,
    count() AS batches,
    sum(on_hand) AS on_hand,
    sum(value_minor) AS value_minor
FROM
(
    SELECT
        batch_id,
        any(warehouse_id) AS batch_warehouse,
        any(unit) AS batch_unit,
        any(currency) AS batch_currency,
        sum(on_hand_delta) AS on_hand,
        intDiv(on_hand * any(batch_cost_minor), greatest(any(batch_quantity), 1)) AS value_minor,
        toInt64(toRelativeDayNum(any(expires_at))) - toInt64(toRelativeDayNum({to})) AS days_to_expiry,
        toInt64(toRelativeDayNum({to})) - toInt64(toRelativeDayNum(any(received_at))) AS days_since_receipt
    FROM {db}.stock_movements FINAL
    WHERE occurred_at <= {to} AND ({warehouse} = '' OR warehouse_id = {warehouse})
    GROUP BY batch_id
    HAVING on_hand > 0
)
GROUP BY warehouse_id, to_expiry, since_receipt, unit, currency
ORDER BY warehouse_id, min(days_to_expiry), min(days_since_receipt), unit
