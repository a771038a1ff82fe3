-- Cohort retention: customers grouped by the month of their first order
-- (not cancelled entirely); for each month since (0: the cohort's own),
-- how many of them ordered, and that as a share of the cohort in basis
-- points.
-- Window: cohorts whose month starts in [from, to).
SELECT
    cohort,
    months_since,
    cohort_size,
    active,
    intDiv(active * 10000, greatest(cohort_size, 1)) AS retention_bp
FROM
(
    SELECT
        cohort,
        toInt64(toRelativeMonthNum(month)) - toInt64(toRelativeMonthNum(cohort)) AS months_since,
        uniqExact(customer_id) AS active
    FROM
    (
        SELECT customer_id, toStartOfMonth(placed_at) AS month
        FROM {db}.order_states
        WHERE live_lines > 0 AND ({warehouse} = '' OR warehouse_id = {warehouse})
    ) AS o
    ANY LEFT JOIN
    (
        SELECT customer_id, toStartOfMonth(min(placed_at)) AS cohort
        FROM {db}.order_states
        WHERE live_lines > 0
        GROUP BY customer_id
    ) AS f USING (customer_id)
    GROUP BY cohort, months_since
) AS l
ANY LEFT JOIN
(
    SELECT cohort, count() AS cohort_size
    FROM
    (
        SELECT customer_id, toStartOfMonth(min(placed_at)) AS cohort
        FROM {db}.order_states
        WHERE live_lines > 0
        GROUP BY customer_id
    )
    GROUP BY cohort
) AS r USING (cohort)
WHERE cohort >= toDate({from}) AND cohort < toDate({to})
ORDER BY cohort, months_since
