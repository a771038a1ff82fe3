//! Query and Subscription roots.

use std::time::Duration;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, EmptyMutation, Error, ErrorExtensions, Object, Result, Schema, SimpleObject,
    Subscription,
};
use futures_util::Stream;
use store::sql::{fetch, Arg, JsonRow};
use store::Store;

use crate::model::*;
use crate::{MAX_COMPLEXITY, MAX_DEPTH, MAX_PAGE, READ_YOUR_WRITES_TIMEOUT};

pub type FreshledgerSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

/// The schema in SDL, as committed in `query-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .finish()
        .sdl()
}

pub fn build_schema(store: Store) -> FreshledgerSchema {
    Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .data(store)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// An error with a stable `extensions.code`.
fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

fn internal(e: store::StoreError) -> Error {
    tracing::error!(error = %e, "query failed");
    coded("INTERNAL", "the read models could not be read")
}

async fn rows(ctx: &Context<'_>, sql: &str, args: &[Arg]) -> Result<Vec<JsonRow>> {
    fetch(ctx.data_unchecked::<Store>(), sql, args)
        .await
        .map_err(internal)
}

/// Read-your-writes: wait (bounded) until every read model has applied the
/// log up to `min_position`.
async fn consistent(ctx: &Context<'_>, min_position: Option<i64>) -> Result<()> {
    let Some(p) = min_position else {
        return Ok(());
    };
    if p < 0 {
        return Err(coded("BAD_USER_INPUT", "minPosition is never negative"));
    }
    projections::wait_for(
        ctx.data_unchecked::<Store>(),
        p as u64,
        READ_YOUR_WRITES_TIMEOUT,
    )
    .await
    .map_err(|reached| {
        coded(
            "READ_MODEL_TIMEOUT",
            format!(
                "read models reached position {reached}, not {p}, within {:?}; retry",
                READ_YOUR_WRITES_TIMEOUT
            ),
        )
    })
}

fn page_size(first: Option<i32>) -> Result<usize> {
    match first {
        None => Ok(20),
        Some(n) if n < 1 => Err(coded("BAD_USER_INPUT", "first must be at least 1")),
        Some(n) if n as usize > MAX_PAGE => Err(coded(
            "PAGE_SIZE_EXCEEDED",
            format!("first is at most {MAX_PAGE}"),
        )),
        Some(n) => Ok(n as usize),
    }
}

fn decode_cursor(after: Option<String>) -> Result<Option<String>> {
    let Some(c) = after else {
        return Ok(None);
    };
    let bad = || coded("BAD_CURSOR", "malformed cursor");
    if c.len() % 2 != 0 || !c.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map(Some).map_err(|_| bad())
}

/// One page of a keyset-paginated connection: `found` holds up to `size + 1`
/// rows (the extra one only says there is a next page); `node` gives each
/// row's keyset position and node.
fn page<T: async_graphql::OutputType>(
    mut found: Vec<JsonRow>,
    size: usize,
    node: impl Fn(JsonRow) -> (String, T),
) -> Connection<String, T, EmptyFields, EmptyFields> {
    let more = found.len() > size;
    found.truncate(size);
    let mut c = Connection::new(false, more);
    c.edges.extend(found.into_iter().map(|r| {
        let (key, n) = node(r);
        Edge::new(cursor(&key), n)
    }));
    c
}

/// Cursors are opaque to clients: the hex of a keyset position.
fn cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_category(name: &str) -> Option<Category> {
    Some(match name {
        "fruit" => Category::Fruit,
        "vegetable" => Category::Vegetable,
        "herb" => Category::Herb,
        "mushroom" => Category::Mushroom,
        "organic" => Category::Organic,
        "imported" => Category::Imported,
        _ => return None,
    })
}

fn now_plus_days(days: i64) -> String {
    projections::models::ts(&(chrono::Utc::now() + chrono::Duration::days(days)))
}

#[Object]
impl Order {
    async fn id(&self) -> String {
        self.key()
    }
    async fn customer_id(&self) -> String {
        self.customer()
    }
    async fn warehouse_id(&self) -> String {
        self.field("warehouse_id")
    }
    /// CREATED, PAID, PACKED, SHIPPED, DELIVERED or CANCELLED.
    async fn status(&self) -> String {
        self.status_text()
    }
    /// card or cash_on_delivery
    async fn payment_method(&self) -> String {
        self.field("payment_method")
    }
    async fn lines(&self) -> Vec<OrderLine> {
        self.parsed_lines()
    }
    /// As placed, less any cancelled line.
    async fn total(&self) -> Option<Money> {
        self.money("total_minor")
    }
    /// As packed (actual weights), once packed.
    async fn packed_total(&self) -> Option<Money> {
        self.money("packed_total_minor")
    }
    async fn paid(&self) -> Option<Money> {
        self.money("paid_minor")
    }
    async fn refund_requested(&self) -> Option<Money> {
        self.money("refund_requested_minor")
    }
    async fn allocated(&self) -> bool {
        self.int("allocated") != 0
    }
    async fn cancel_reason(&self) -> Option<String> {
        self.opt("cancel_reason")
    }
    async fn slot_starts_at(&self) -> String {
        self.field("slot_starts_at")
    }
    async fn slot_ends_at(&self) -> String {
        self.field("slot_ends_at")
    }
    async fn placed_at(&self) -> String {
        self.placed()
    }
    async fn updated_at(&self) -> String {
        self.field("updated_at")
    }
    /// Global position of the last event applied to this order.
    async fn position(&self) -> i64 {
        self.int("position")
    }
    /// Every state change, oldest first.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        Ok(rows(
            ctx,
            "SELECT * FROM rm_order_timeline WHERE order_id = ? ORDER BY position",
            &[self.key().into()],
        )
        .await?
        .iter()
        .map(TimelineEntry::from)
        .collect())
    }
    async fn delivery(&self, ctx: &Context<'_>) -> Result<Option<Delivery>> {
        Ok(rows(
            ctx,
            "SELECT * FROM rm_deliveries WHERE order_id = ? ORDER BY position DESC",
            &[self.key().into()],
        )
        .await?
        .first()
        .map(Delivery::from))
    }
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<Payment>> {
        Ok(rows(
            ctx,
            "SELECT * FROM rm_payments WHERE order_id = ? ORDER BY position",
            &[self.key().into()],
        )
        .await?
        .iter()
        .map(Payment::from)
        .collect())
    }
}

pub struct Query;

#[Object]
impl Query {
    /// The catalogue with live availability per warehouse. Only batches not
    /// expired, and with at least `minShelfLifeDays` left, count.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        category: Option<Category>,
        warehouse_id: Option<String>,
        min_shelf_life_days: Option<i32>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, Product, EmptyFields, EmptyFields>> {
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let after = decode_cursor(after)?.unwrap_or_default();
        let products = rows(
            ctx,
            "SELECT CAST(product AS TEXT) AS product FROM products WHERE sku > ? ORDER BY sku",
            &[after.into()],
        )
        .await?;
        let shelf = now_plus_days(min_shelf_life_days.unwrap_or(0).max(0) as i64);
        let mut out = Vec::new();
        let mut more = false;
        for row in &products {
            let p: serde_json::Value =
                serde_json::from_str(row["product"].as_str().unwrap_or("{}"))
                    .map_err(|_| coded("INTERNAL", "corrupt catalogue entry"))?;
            let categories: Vec<Category> = p["categories"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| parse_category(c.as_str()?))
                        .collect()
                })
                .unwrap_or_default();
            if category.is_some_and(|c| !categories.contains(&c)) {
                continue;
            }
            if out.len() == size {
                more = true;
                break;
            }
            let sku = p["sku"].as_str().unwrap_or_default().to_string();
            let n = &p["nutrition"];
            let num = |k: &str| n[k].as_i64().unwrap_or(0);
            out.push(Product {
                sku,
                name: p["name"].as_str().unwrap_or_default().into(),
                categories,
                price: Money {
                    amount_minor: p["price"]["amount"]["amount_minor"].as_i64().unwrap_or(0),
                    currency: p["price"]["amount"]["currency"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                },
                per: p["price"]["per"].as_str().unwrap_or_default().into(),
                origin: p["origin"].as_str().unwrap_or_default().into(),
                nutrition: Nutrition {
                    energy_kcal: num("energy_kcal"),
                    protein_mg: num("protein_mg"),
                    carbohydrate_mg: num("carbohydrate_mg"),
                    sugar_mg: num("sugar_mg"),
                    fat_mg: num("fat_mg"),
                    fibre_mg: num("fibre_mg"),
                },
                availability: Vec::new(),
            });
        }
        // Availability for the whole page in one query, not one per product.
        if !out.is_empty() {
            let marks = vec!["?"; out.len()].join(", ");
            let mut sql = format!(
                "SELECT sku, warehouse_id, uom, CAST(SUM(on_hand) AS BIGINT) AS on_hand, \
                 CAST(SUM(reserved) AS BIGINT) AS reserved, \
                 MIN(CASE WHEN on_hand > reserved THEN expires_at END) AS earliest \
                 FROM rm_batches WHERE sku IN ({marks}) AND expired = 0 AND expires_at >= ?"
            );
            let mut args: Vec<Arg> = out.iter().map(|p| p.sku.clone().into()).collect();
            args.push(shelf.into());
            if let Some(w) = &warehouse_id {
                sql.push_str(" AND warehouse_id = ?");
                args.push(w.clone().into());
            }
            sql.push_str(" GROUP BY sku, warehouse_id, uom ORDER BY sku, warehouse_id");
            for r in rows(ctx, &sql, &args).await? {
                let on_hand = r["on_hand"].as_i64().unwrap_or(0);
                let reserved = r["reserved"].as_i64().unwrap_or(0);
                let sku = r["sku"].as_str().unwrap_or_default();
                if let Some(p) = out.iter_mut().find(|p| p.sku == sku) {
                    p.availability.push(Availability {
                        warehouse_id: r["warehouse_id"].as_str().unwrap_or_default().into(),
                        uom: r["uom"].as_str().unwrap_or_default().into(),
                        on_hand,
                        reserved,
                        available: on_hand - reserved,
                        earliest_expiry: r["earliest"].as_str().map(str::to_string),
                    });
                }
            }
        }
        let mut c = Connection::new(false, more);
        c.edges
            .extend(out.into_iter().map(|p| Edge::new(cursor(&p.sku), p)));
        Ok(c)
    }

    /// One order.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: String,
        min_position: Option<i64>,
    ) -> Result<Option<Order>> {
        consistent(ctx, min_position).await?;
        Ok(rows(
            ctx,
            "SELECT * FROM rm_orders WHERE order_id = ?",
            &[id.into()],
        )
        .await?
        .into_iter()
        .next()
        .map(|row| Order { row }))
    }

    /// A customer's orders, newest first (Relay connection).
    async fn customer_orders(
        &self,
        ctx: &Context<'_>,
        customer_id: String,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, Order, EmptyFields, EmptyFields>> {
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let (sql, args): (&str, Vec<Arg>) = match decode_cursor(after)? {
            None => (
                "SELECT * FROM rm_orders WHERE customer_id = ? ORDER BY placed_at DESC, order_id DESC LIMIT ?",
                vec![customer_id.into(), (size as i64 + 1).into()],
            ),
            Some(c) => {
                let (placed, id) = c
                    .split_once('|')
                    .ok_or_else(|| coded("BAD_CURSOR", "malformed cursor"))?;
                (
                    "SELECT * FROM rm_orders WHERE customer_id = ? AND (placed_at < ? OR (placed_at = ? AND order_id < ?)) \
                     ORDER BY placed_at DESC, order_id DESC LIMIT ?",
                    vec![customer_id.into(), placed.into(), placed.into(), id.into(), (size as i64 + 1).into()],
                )
            }
        };
        let found = rows(ctx, sql, &args).await?;
        Ok(page(found, size, |row| {
            let o = Order { row };
            (format!("{}|{}", o.placed(), o.key()), o)
        }))
    }

    /// Delivery tracking, by delivery or by order.
    async fn delivery(
        &self,
        ctx: &Context<'_>,
        id: Option<String>,
        order_id: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Option<Delivery>> {
        consistent(ctx, min_position).await?;
        let (sql, arg) = match (id, order_id) {
            (Some(id), None) => ("SELECT * FROM rm_deliveries WHERE delivery_id = ?", id),
            (None, Some(o)) => (
                "SELECT * FROM rm_deliveries WHERE order_id = ? ORDER BY position DESC",
                o,
            ),
            _ => {
                return Err(coded(
                    "BAD_USER_INPUT",
                    "give exactly one of id and orderId",
                ))
            }
        };
        Ok(rows(ctx, sql, &[arg.into()])
            .await?
            .first()
            .map(Delivery::from))
    }

    /// Back-office: batches expiring within `withinHours`, soonest first.
    async fn expiring_batches(
        &self,
        ctx: &Context<'_>,
        within_hours: i32,
        warehouse_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, Batch, EmptyFields, EmptyFields>> {
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let horizon = projections::models::ts(
            &(chrono::Utc::now() + chrono::Duration::hours(within_hours.max(0) as i64)),
        );
        let after = decode_cursor(after)?.unwrap_or_default();
        let mut sql = "SELECT * FROM rm_batches WHERE expired = 0 AND on_hand > 0 AND expires_at <= ? AND (expires_at || '|' || batch_id) > ?".to_string();
        let mut args: Vec<Arg> = vec![horizon.into(), after.into()];
        if let Some(w) = warehouse_id {
            sql.push_str(" AND warehouse_id = ?");
            args.push(w.into());
        }
        sql.push_str(" ORDER BY expires_at, batch_id LIMIT ?");
        args.push((size as i64 + 1).into());
        let found = rows(ctx, &sql, &args).await?;
        Ok(page(found, size, |r| {
            let b = Batch::from(&r);
            (format!("{}|{}", b.expires_at, b.batch_id), b)
        }))
    }

    /// Back-office: write-offs with reason, quantity and cost, newest first.
    async fn spoilage_ledger(
        &self,
        ctx: &Context<'_>,
        warehouse_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, SpoilageEntry, EmptyFields, EmptyFields>> {
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let before: i64 = match decode_cursor(after)? {
            None => i64::MAX,
            Some(c) => c
                .parse()
                .map_err(|_| coded("BAD_CURSOR", "malformed cursor"))?,
        };
        let mut sql = "SELECT * FROM rm_spoilage WHERE position < ?".to_string();
        let mut args: Vec<Arg> = vec![before.into()];
        if let Some(w) = warehouse_id {
            sql.push_str(" AND warehouse_id = ?");
            args.push(w.into());
        }
        sql.push_str(" ORDER BY position DESC LIMIT ?");
        args.push((size as i64 + 1).into());
        let found = rows(ctx, &sql, &args).await?;
        Ok(page(found, size, |r| {
            let e = SpoilageEntry::from(&r);
            (e.position.to_string(), e)
        }))
    }

    /// Back-office: stock of every SKU in one warehouse, batches in FEFO order.
    async fn stock_by_warehouse(
        &self,
        ctx: &Context<'_>,
        warehouse_id: String,
        sku: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Vec<StockLevel>> {
        consistent(ctx, min_position).await?;
        let mut sql = "SELECT * FROM rm_batches WHERE warehouse_id = ? AND expired = 0".to_string();
        let mut args: Vec<Arg> = vec![warehouse_id.into()];
        if let Some(s) = sku {
            sql.push_str(" AND sku = ?");
            args.push(s.into());
        }
        sql.push_str(" ORDER BY sku, expires_at, batch_id");
        let mut out: Vec<StockLevel> = Vec::new();
        for r in rows(ctx, &sql, &args).await? {
            let b = Batch::from(&r);
            match out.last_mut() {
                Some(level) if level.sku == b.sku => {
                    level.on_hand += b.on_hand;
                    level.reserved += b.reserved;
                    level.available += b.available;
                    level.batches.push(b);
                }
                _ => out.push(StockLevel {
                    sku: b.sku.clone(),
                    warehouse_id: b.warehouse_id.clone(),
                    uom: b.uom.clone(),
                    on_hand: b.on_hand,
                    reserved: b.reserved,
                    available: b.available,
                    batches: vec![b],
                }),
            }
        }
        Ok(out)
    }

    /// Payments of one order.
    async fn payments(
        &self,
        ctx: &Context<'_>,
        order_id: String,
        min_position: Option<i64>,
    ) -> Result<Vec<Payment>> {
        consistent(ctx, min_position).await?;
        Ok(rows(
            ctx,
            "SELECT * FROM rm_payments WHERE order_id = ? ORDER BY position",
            &[order_id.into()],
        )
        .await?
        .iter()
        .map(Payment::from)
        .collect())
    }
}

/// One change of an order's status, pushed as it happens.
#[derive(Debug, Clone, SimpleObject)]
pub struct OrderStatusChange {
    pub order_id: String,
    pub position: i64,
    pub event_type: String,
    pub status: String,
    pub occurred_at: String,
}

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every change of one order's timeline from now on (or after
    /// `afterPosition`), each once, in order.
    async fn order_status(
        &self,
        ctx: &Context<'_>,
        order_id: String,
        after_position: Option<i64>,
    ) -> impl Stream<Item = OrderStatusChange> {
        let store = ctx.data_unchecked::<Store>().clone();
        let mut last = after_position.unwrap_or(0);
        async_stream::stream! {
            let mut wake = store.wakeups();
            loop {
                let found = fetch(
                    &store,
                    "SELECT * FROM rm_order_timeline WHERE order_id = ? AND position > ? ORDER BY position",
                    &[order_id.clone().into(), last.into()],
                )
                .await
                .unwrap_or_default();
                for r in &found {
                    let t = TimelineEntry::from(r);
                    last = t.position;
                    yield OrderStatusChange {
                        order_id: order_id.clone(),
                        position: t.position,
                        event_type: t.event_type,
                        status: t.status,
                        occurred_at: t.occurred_at,
                    };
                }
                // Woken by appends; the projector may still be applying the
                // event, so poll briefly as well.
                tokio::select! {
                    _ = wake.changed() => { tokio::time::sleep(Duration::from_millis(5)).await; }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}
