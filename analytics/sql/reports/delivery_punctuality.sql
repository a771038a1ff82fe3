-- Delivery punctuality by slot (its time of day, UTC): deliveries promised
-- in the slot; delivered on time (within the slot), early, late, or not
-- (yet) delivered; failed attempts; how late the late ones were on average
-- (whole minutes past the slot's end); the on-time share of those
-- delivered, in basis points.
-- Window: the slot's start in [from, to). Duplicate rows (a batch sent
-- again) change nothing: flags, any, max, and failed attempts counted by
-- distinct position.
SELECT
    slot,
    count() AS deliveries,
    countIf(done = 1) AS delivered,
    countIf(done = 1 AND completed_at >= s_start AND completed_at <= s_end) AS on_time,
    countIf(done = 1 AND completed_at < s_start) AS early,
    countIf(done = 1 AND completed_at > s_end) AS late,
    countIf(done = 0) AS undelivered,
    sum(attempts_failed) AS failed_attempts,
    intDiv(sumIf(toInt64(toUInt32(completed_at)) - toInt64(toUInt32(s_end)), done = 1 AND completed_at > s_end), greatest(late, 1) * 60) AS avg_minutes_late,
    intDiv(on_time * 10000, greatest(delivered, 1)) AS on_time_bp
FROM
(
    SELECT
        delivery_id,
        any(order_id) AS order_id,
        any(slot_start) AS s_start,
        any(slot_end) AS s_end,
        concat(substring(toString(s_start), 12, 5), '-', substring(toString(s_end), 12, 5)) AS slot,
        countIf(kind = 'completed') > 0 AS done,
        maxIf(occurred_at, kind = 'completed') AS completed_at,
        uniqExactIf(position, kind = 'attempt_failed') AS attempts_failed
    FROM {db}.deliveries
    WHERE slot_start >= {from} AND slot_start < {to}
    GROUP BY delivery_id
) AS l
ANY LEFT JOIN
(
    SELECT order_id, any(warehouse_id) AS warehouse_id
    FROM {db}.order_lines
    WHERE kind = 'ordered'
    GROUP BY order_id
) AS r USING (order_id)
WHERE {warehouse} = '' OR warehouse_id = {warehouse}
GROUP BY slot
ORDER BY slot
