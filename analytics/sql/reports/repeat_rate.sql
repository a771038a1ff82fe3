-- Repeat rate: of the customers whose first order (not cancelled
-- entirely) fell in a month, how many placed another within 30, 60 and 90
-- days of it (counts, and shares in basis points).
-- Window: cohorts whose month starts in [from, to).
SELECT
    cohort,
    count() AS customers,
    countIf(gap <= 30 * 86400) AS repeat_30d,
    countIf(gap <= 60 * 86400) AS repeat_60d,
    countIf(gap <= 90 * 86400) AS repeat_90d,
    intDiv(repeat_30d * 10000, customers) AS repeat_30d_bp,
    intDiv(repeat_60d * 10000, customers) AS repeat_60d_bp,
    intDiv(repeat_90d * 10000, customers) AS repeat_90d_bp
FROM
(
    SELECT
        customer_id,
        toStartOfMonth(min(placed_at)) AS cohort,
        arraySort(groupArray(toInt64(toUInt32(placed_at)))) AS times,
        if(length(times) > 1, times[2] - times[1], toInt64(9223372036854775807)) AS gap
    FROM {db}.order_states
    WHERE live_lines > 0 AND ({warehouse} = '' OR warehouse_id = {warehouse})
    GROUP BY customer_id
)
WHERE cohort >= toDate({from}) AND cohort < toDate({to})
GROUP BY cohort
ORDER BY cohort
