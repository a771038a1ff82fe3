-- Customers per week (starting Monday) of placement: orders (not cancelled
-- entirely), customers ordering, new ones (their first such order ever is
-- in the week) and returning ones; basket size: lines and money sold, and
-- the average order's value (minor units, rounded down).
-- Window: placement time in [from, to); a customer's first order is
-- looked for in all of history.
SELECT
    week,
    count() AS orders,
    uniqExact(customer_id) AS customers,
    uniqExactIf(customer_id, first_week = week) AS new_customers,
    uniqExactIf(customer_id, first_week < week) AS returning_customers,
    sum(live_lines) AS lines,
    sum(sold_minor) AS sold_minor,
    intDiv(sold_minor, orders) AS avg_basket_minor,
    any(currency) AS currency
FROM
(
    SELECT toMonday(placed_at) AS week, customer_id, live_lines, sold_minor, currency
    FROM {db}.order_states
    WHERE live_lines > 0 AND placed_at >= {from} AND placed_at < {to}
        AND ({warehouse} = '' OR warehouse_id = {warehouse})
) AS l
ANY LEFT JOIN
(
    SELECT customer_id, toMonday(min(placed_at)) AS first_week
    FROM {db}.order_states
    WHERE live_lines > 0
    GROUP BY customer_id
) AS r USING (customer_id)
GROUP BY week
ORDER BY week
