-- Sales by day, warehouse and SKU (with the product's primary category).
-- orders: orders with the SKU; quantities in the SKU's unit (grams or
-- units): as ordered, and as sold (packed where packed, cancelled lines
-- excluded); money in minor units: sold, cancelled (as ordered), and sold
-- on orders delivered so far.
-- Window: the order's placement time in [from, to).
SELECT
    toDate(placed_at) AS day,
    warehouse_id,
    sku,
    category,
    unit,
    currency,
    uniqExact(order_id) AS orders,
    sum(ordered_quantity) AS ordered_quantity,
    sum(sold_quantity) AS sold_quantity,
    sum(sold_minor) AS sold_minor,
    sum(cancelled_minor) AS cancelled_minor,
    sum(delivered_minor) AS delivered_minor
FROM {db}.order_line_states
ANY LEFT JOIN (SELECT sku, category FROM {db}.products FINAL) AS r USING (sku)
WHERE placed_at >= {from} AND placed_at < {to}
    AND ({warehouse} = '' OR warehouse_id = {warehouse})
GROUP BY day, warehouse_id, sku, category, unit, currency
ORDER BY day, warehouse_id, sku
