-- Spoilage loss by week (starting Monday), warehouse, SKU, supplier and
-- reason: the quantity written off and its cost (the batch's procurement
-- cost of it, minor units); sales_minor: the SKU's sales in that warehouse
-- and week (by placement); shrink_bp: the loss as a share of those sales,
-- in basis points (100 = 1 %), NULL without sales.
-- Window: the write-off's time in [from, to).
SELECT
    week,
    warehouse_id,
    sku,
    supplier_id,
    reason,
    unit,
    currency,
    written_off_quantity,
    loss_minor,
    sales_minor,
    if(sales_minor > 0, intDiv(loss_minor * 10000, greatest(sales_minor, 1)), NULL) AS shrink_bp
FROM
(
    SELECT
        toMonday(occurred_at) AS week,
        warehouse_id,
        sku,
        supplier_id,
        reason,
        unit,
        currency,
        sum(quantity) AS written_off_quantity,
        sum(cost_minor) AS loss_minor
    FROM {db}.stock_movements FINAL
    WHERE kind = 'written_off' AND occurred_at >= {from} AND occurred_at < {to}
        AND ({warehouse} = '' OR warehouse_id = {warehouse})
    GROUP BY week, warehouse_id, sku, supplier_id, reason, unit, currency
) AS l
ANY LEFT JOIN
(
    SELECT toMonday(placed_at) AS week, warehouse_id, sku, sum(sold_minor) AS sales_minor
    FROM {db}.order_line_states
    GROUP BY week, warehouse_id, sku
) AS r USING (week, warehouse_id, sku)
ORDER BY week, warehouse_id, sku, supplier_id, reason
