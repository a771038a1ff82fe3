//! Query and Subscription roots.

use std::time::Duration;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, EmptyMutation, Error, Object, Result, Schema, SimpleObject, Subscription,
};
use futures_util::Stream;
use projections::models as read;
use store::Store;

use crate::access::{access, guard, roles_of, signed, warehouse_scope};
use crate::model::*;
use crate::{MAX_COMPLEXITY, MAX_DEPTH, MAX_PAGE, READ_YOUR_WRITES_TIMEOUT};

/// Every root query field: the storefront's and back-office's, and the
/// auditors' ([`crate::audit`]).
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(Query, crate::audit::AuditQuery);

pub type FreshledgerSchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

/// The schema in SDL, as committed in `query-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot::default(), EmptyMutation, SubscriptionRoot)
        .finish()
        .sdl()
}

pub fn build_schema(store: Store) -> FreshledgerSchema {
    Schema::build(QueryRoot::default(), EmptyMutation, SubscriptionRoot)
        .data(store)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

use crate::access::coded;

/// May `who` read this order? Its customer, its warehouse's sellers,
/// admins. (Riders read deliveries, not orders.)
fn sees_order(who: &identity::Principal, row: &read::OrderRow) -> bool {
    match who.role {
        event_schemas::ActorRole::Admin => true,
        event_schemas::ActorRole::Customer => row.customer_id.as_uuid() == who.subject,
        event_schemas::ActorRole::Seller => who.works_at(row.warehouse_id.as_str()),
        _ => false,
    }
}

fn internal(e: store::StoreError) -> Error {
    tracing::error!(error = %e, "query failed");
    coded("INTERNAL", "the read models could not be read")
}

fn store<'a>(ctx: &Context<'a>) -> &'a Store {
    ctx.data_unchecked::<Store>()
}

/// The furthest `expiringBatches` looks ahead.
const MAX_EXPIRY_HORIZON_HOURS: i32 = 24 * 366;

/// Read-your-writes for one HTTP request: however many fields (aliases,
/// batched operations) ask for a position, they share one wait, one at a
/// time, under one deadline; a position reached is not waited for again,
/// and once the deadline passed every field answers at once.
pub struct Consistency {
    deadline: tokio::time::Instant,
    state: tokio::sync::Mutex<Waited>,
}

#[derive(Default)]
struct Waited {
    /// The highest position every read model is known to have reached.
    reached: u64,
    /// The wait ran out: the position read models had got to.
    gave_up_at: Option<u64>,
}

impl Consistency {
    pub fn new() -> Consistency {
        Consistency {
            deadline: tokio::time::Instant::now() + READ_YOUR_WRITES_TIMEOUT,
            state: Default::default(),
        }
    }
}

impl Default for Consistency {
    fn default() -> Self {
        Consistency::new()
    }
}

/// Read-your-writes: wait (bounded, shared by the request) until every
/// read model has applied the log up to `min_position`.
async fn consistent(ctx: &Context<'_>, min_position: Option<i64>) -> Result<()> {
    let Some(p) = min_position else {
        return Ok(());
    };
    if p < 0 {
        return Err(coded("BAD_USER_INPUT", "minPosition is never negative"));
    }
    let p = p as u64;
    let own;
    let shared = match ctx.data_opt::<std::sync::Arc<Consistency>>() {
        Some(c) => c.as_ref(),
        None => {
            own = Consistency::new();
            &own
        }
    };
    let mut waited = shared.state.lock().await;
    if waited.reached >= p {
        return Ok(());
    }
    let timeout = |reached: u64| {
        coded(
            "READ_MODEL_TIMEOUT",
            format!(
                "read models reached position {reached}, not {p}, within {:?}; retry",
                READ_YOUR_WRITES_TIMEOUT
            ),
        )
    };
    if let Some(reached) = waited.gave_up_at {
        return Err(timeout(reached));
    }
    let left = shared
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    match projections::wait_for(store(ctx), p, left).await {
        Ok(()) => {
            waited.reached = p;
            Ok(())
        }
        Err(reached) => {
            waited.reached = waited.reached.max(reached);
            waited.gave_up_at = Some(reached);
            Err(timeout(reached))
        }
    }
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
fn page<R, T: async_graphql::OutputType>(
    mut found: Vec<R>,
    size: usize,
    node: impl Fn(R) -> (String, T),
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

#[Object]
impl Order {
    async fn id(&self) -> String {
        self.row.order_id.to_string()
    }
    async fn customer_id(&self) -> String {
        self.row.customer_id.to_string()
    }
    async fn warehouse_id(&self) -> String {
        self.row.warehouse_id.to_string()
    }
    /// CREATED, PAID, PACKED, SHIPPED, DELIVERED or CANCELLED.
    async fn status(&self) -> String {
        self.row.status.clone()
    }
    /// card or cash_on_delivery
    async fn payment_method(&self) -> String {
        read::word(&self.row.payment_method)
    }
    async fn lines(&self) -> Vec<OrderLine> {
        self.order_lines()
    }
    /// As placed, less any cancelled line.
    async fn total(&self) -> Option<Money> {
        self.money(Some(self.row.total_minor))
    }
    /// As packed (actual weights), once packed.
    async fn packed_total(&self) -> Option<Money> {
        self.money(self.row.packed_total_minor)
    }
    async fn paid(&self) -> Option<Money> {
        self.money(self.row.paid_minor)
    }
    async fn refund_requested(&self) -> Option<Money> {
        self.money(Some(self.row.refund_requested_minor))
    }
    async fn allocated(&self) -> bool {
        self.row.allocated
    }
    async fn cancel_reason(&self) -> Option<String> {
        self.row.cancel_reason.as_ref().map(read::word)
    }
    async fn slot_starts_at(&self) -> String {
        read::ts(&self.row.slot_starts_at)
    }
    async fn slot_ends_at(&self) -> String {
        read::ts(&self.row.slot_ends_at)
    }
    async fn placed_at(&self) -> String {
        read::ts(&self.row.placed_at)
    }
    async fn updated_at(&self) -> String {
        read::ts(&self.row.updated_at)
    }
    /// Global position of the last event applied to this order.
    async fn position(&self) -> i64 {
        self.row.position as i64
    }
    /// Every state change, oldest first.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        let id = self.row.order_id.to_string();
        Ok(read::timeline(store(ctx), &id, 0)
            .await
            .map_err(internal)?
            .into_iter()
            .map(TimelineEntry::from)
            .collect())
    }
    async fn delivery(&self, ctx: &Context<'_>) -> Result<Option<Delivery>> {
        let id = self.row.order_id.to_string();
        Ok(read::delivery_of_order(store(ctx), &id)
            .await
            .map_err(internal)?
            .map(Delivery::from))
    }
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<Payment>> {
        let id = self.row.order_id.to_string();
        Ok(read::payments_of_order(store(ctx), &id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(Payment::from)
            .collect())
    }
}

#[derive(Default)]
pub struct Query;

#[Object(name = "StorefrontQuery")]
impl Query {
    /// The catalogue with live availability per warehouse. Only batches not
    /// expired, and with at least `minShelfLifeDays` left, count.
    #[allow(clippy::too_many_arguments)]
    #[graphql(directive = access::apply(roles_of("products")))]
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
        guard(ctx, "products")?;
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let after = decode_cursor(after)?.unwrap_or_default();
        let products: Vec<domain::Product> = store(ctx)
            .products(&after, usize::MAX)
            .await
            .map_err(internal)?;
        let fresh_until = chrono::Utc::now()
            + chrono::Duration::days(min_shelf_life_days.unwrap_or(0).max(0) as i64);
        let mut out: Vec<Product> = Vec::new();
        let mut more = false;
        for p in products {
            let p = Product::from(p);
            if category.is_some_and(|c| !p.categories.contains(&c)) {
                continue;
            }
            if out.len() == size {
                more = true;
                break;
            }
            out.push(p);
        }
        // Availability for the whole page in one query, not one per product.
        let skus: Vec<event_schemas::values::Sku> =
            out.iter().filter_map(|p| p.sku.parse().ok()).collect();
        let found = read::availability(store(ctx), &skus, fresh_until, warehouse_id.as_deref())
            .await
            .map_err(internal)?;
        for r in found {
            let sku = r.sku.to_string();
            if let Some(p) = out.iter_mut().find(|p| p.sku == sku) {
                p.availability.push(Availability::from(r));
            }
        }
        let mut c = Connection::new(false, more);
        c.edges
            .extend(out.into_iter().map(|p| Edge::new(cursor(&p.sku), p)));
        Ok(c)
    }

    /// Every registered warehouse, in id order.
    #[graphql(directive = access::apply(roles_of("warehouses")))]
    async fn warehouses(&self, ctx: &Context<'_>) -> Result<Vec<Warehouse>> {
        signed(ctx, "warehouses")?;
        let all: Vec<domain::Warehouse> = store(ctx)
            .warehouses("", usize::MAX)
            .await
            .map_err(internal)?;
        Ok(all.into_iter().map(Warehouse::from).collect())
    }

    /// Every registered supplier, in id order.
    #[graphql(directive = access::apply(roles_of("suppliers")))]
    async fn suppliers(&self, ctx: &Context<'_>) -> Result<Vec<Supplier>> {
        signed(ctx, "suppliers")?;
        let all: Vec<domain::Supplier> = store(ctx)
            .suppliers("", usize::MAX)
            .await
            .map_err(internal)?;
        Ok(all.into_iter().map(Supplier::from).collect())
    }

    /// One order (a customer's own, a seller's warehouse's; else null).
    #[graphql(directive = access::apply(roles_of("order")))]
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: String,
        min_position: Option<i64>,
    ) -> Result<Option<Order>> {
        let who = signed(ctx, "order")?;
        consistent(ctx, min_position).await?;
        Ok(read::order(store(ctx), &id)
            .await
            .map_err(internal)?
            .filter(|row| sees_order(who, row))
            .map(|row| Order { row }))
    }

    /// A customer's orders, newest first (Relay connection); a customer
    /// reads only their own.
    #[graphql(directive = access::apply(roles_of("customerOrders")))]
    async fn customer_orders(
        &self,
        ctx: &Context<'_>,
        customer_id: String,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, Order, EmptyFields, EmptyFields>> {
        let who = signed(ctx, "customerOrders")?;
        if !who.is_admin() && customer_id != who.subject.to_string() {
            return Err(coded("FORBIDDEN", "you read your own orders only"));
        }
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let after = decode_cursor(after)?;
        let before = match &after {
            None => None,
            Some(c) => Some(
                c.split_once('|')
                    .ok_or_else(|| coded("BAD_CURSOR", "malformed cursor"))?,
            ),
        };
        let found = read::customer_orders(store(ctx), &customer_id, before, size + 1)
            .await
            .map_err(internal)?;
        Ok(page(found, size, |row| {
            let o = Order { row };
            (o.cursor_key(), o)
        }))
    }

    /// Delivery tracking, by delivery or by order: for its rider, the
    /// order's customer and its warehouse's sellers (else null).
    #[graphql(directive = access::apply(roles_of("delivery")))]
    async fn delivery(
        &self,
        ctx: &Context<'_>,
        id: Option<String>,
        order_id: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Option<Delivery>> {
        let who = signed(ctx, "delivery")?;
        consistent(ctx, min_position).await?;
        let found = match (id, order_id) {
            (Some(id), None) => read::delivery(store(ctx), &id).await,
            (None, Some(o)) => read::delivery_of_order(store(ctx), &o).await,
            _ => {
                return Err(coded(
                    "BAD_USER_INPUT",
                    "give exactly one of id and orderId",
                ))
            }
        };
        let Some(row) = found.map_err(internal)? else {
            return Ok(None);
        };
        let visible = match who.role {
            event_schemas::ActorRole::Admin => true,
            event_schemas::ActorRole::Delivery => {
                row.rider_id.is_some_and(|r| r.as_uuid() == who.subject)
            }
            _ => read::order(store(ctx), &row.order_id.to_string())
                .await
                .map_err(internal)?
                .is_some_and(|o| sees_order(who, &o)),
        };
        Ok(visible.then(|| Delivery::from(row)))
    }

    /// Back-office: batches expiring within `withinHours`, soonest first.
    #[graphql(directive = access::apply(roles_of("expiringBatches")))]
    async fn expiring_batches(
        &self,
        ctx: &Context<'_>,
        within_hours: i32,
        warehouse_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, Batch, EmptyFields, EmptyFields>> {
        let warehouse_id = warehouse_scope(signed(ctx, "expiringBatches")?, warehouse_id)?;
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        // A year ahead is more than any produce keeps; beyond it the
        // horizon could pass what timestamps can say.
        if !(0..=MAX_EXPIRY_HORIZON_HOURS).contains(&within_hours) {
            return Err(coded(
                "BAD_USER_INPUT",
                format!("withinHours is 0 to {MAX_EXPIRY_HORIZON_HOURS}"),
            ));
        }
        let horizon = chrono::Utc::now() + chrono::Duration::hours(within_hours as i64);
        let after = decode_cursor(after)?.unwrap_or_default();
        let found = read::expiring_batches(
            store(ctx),
            horizon,
            &after,
            warehouse_id.as_deref(),
            size + 1,
        )
        .await
        .map_err(internal)?;
        Ok(page(found, size, |r| (r.expiry_key(), Batch::from(r))))
    }

    /// Back-office: write-offs with reason, quantity and cost, newest first.
    #[graphql(directive = access::apply(roles_of("spoilageLedger")))]
    async fn spoilage_ledger(
        &self,
        ctx: &Context<'_>,
        warehouse_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Connection<String, SpoilageEntry, EmptyFields, EmptyFields>> {
        let warehouse_id = warehouse_scope(signed(ctx, "spoilageLedger")?, warehouse_id)?;
        consistent(ctx, min_position).await?;
        let size = page_size(first)?;
        let before: i64 = match decode_cursor(after)? {
            None => i64::MAX,
            Some(c) => c
                .parse()
                .map_err(|_| coded("BAD_CURSOR", "malformed cursor"))?,
        };
        let found = read::spoilage(store(ctx), before, warehouse_id.as_deref(), size + 1)
            .await
            .map_err(internal)?;
        Ok(page(found, size, |r| {
            let e = SpoilageEntry::from(r);
            (e.position.to_string(), e)
        }))
    }

    /// Back-office: stock of every SKU in one warehouse, batches in FEFO order.
    #[graphql(directive = access::apply(roles_of("stockByWarehouse")))]
    async fn stock_by_warehouse(
        &self,
        ctx: &Context<'_>,
        warehouse_id: String,
        sku: Option<String>,
        min_position: Option<i64>,
    ) -> Result<Vec<StockLevel>> {
        let who = signed(ctx, "stockByWarehouse")?;
        if !who.works_at(&warehouse_id) {
            return Err(coded("FORBIDDEN", "not one of your warehouses"));
        }
        consistent(ctx, min_position).await?;
        let found = read::batches_in_warehouse(store(ctx), &warehouse_id, sku.as_deref())
            .await
            .map_err(internal)?;
        let mut out: Vec<StockLevel> = Vec::new();
        for r in found {
            let b = Batch::from(r);
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

    /// Payments of one order (a customer's own; else none).
    #[graphql(directive = access::apply(roles_of("payments")))]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        order_id: String,
        min_position: Option<i64>,
    ) -> Result<Vec<Payment>> {
        let who = signed(ctx, "payments")?;
        consistent(ctx, min_position).await?;
        if !who.is_admin()
            && !read::order(store(ctx), &order_id)
                .await
                .map_err(internal)?
                .is_some_and(|o| sees_order(who, &o))
        {
            return Ok(Vec::new());
        }
        Ok(read::payments_of_order(store(ctx), &order_id)
            .await
            .map_err(internal)?
            .into_iter()
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
    /// `afterPosition`), each once, in order (for those who may read the
    /// order).
    #[graphql(directive = access::apply(roles_of("orderStatus")))]
    async fn order_status(
        &self,
        ctx: &Context<'_>,
        order_id: String,
        after_position: Option<i64>,
    ) -> Result<impl Stream<Item = OrderStatusChange>> {
        let who = signed(ctx, "orderStatus")?.clone();
        let store = ctx.data_unchecked::<Store>().clone();
        // Whether the subject may read the order is known once the order
        // is (it may be placed a moment after the subscription): until
        // then nothing is sent; someone else's order ends the stream.
        let mut allowed = who.is_admin().then_some(true);
        let mut last = after_position.unwrap_or(0);
        Ok(async_stream::stream! {
            let mut wake = store.wakeups();
            loop {
                if allowed.is_none() {
                    if let Ok(Some(o)) = read::order(&store, &order_id).await {
                        allowed = Some(sees_order(&who, &o));
                    }
                }
                if allowed == Some(false) {
                    break;
                }
                if allowed.is_none() {
                    tokio::select! {
                        _ = wake.changed() => { tokio::time::sleep(Duration::from_millis(5)).await; }
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    continue;
                }
                let found = read::timeline(&store, &order_id, last.max(0) as u64)
                    .await
                    .unwrap_or_default();
                for r in found {
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
        })
    }
}
