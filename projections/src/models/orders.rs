//! `orders`: every order's status, lines and money (`rm_orders`), and its
//! timeline, every change with the status it left (`rm_order_timeline`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::order::{CancellationReason, OrderEvent, OrderLine, PaymentMethod};
use event_schemas::values::{Currency, CustomerId, DeliveryId, OrderId, Sku, WarehouseId};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Deserialize;
use store::sql::{exec, fetch, Arg};
use store::{Store, StoreError, StoreTx};

use super::{all_typed, decode, flag, json_text, ts, word, ReadModel, Table};

const ORDERS: &str = "rm_orders";
const TIMELINE: &str = "rm_order_timeline";

pub(super) struct Orders;

/// One order as the read model holds it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderRow {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub warehouse_id: WarehouseId,
    /// CREATED, PAID, PACKED, SHIPPED, DELIVERED or CANCELLED.
    pub status: String,
    pub payment_method: PaymentMethod,
    pub currency: Currency,
    /// As placed, less any cancelled line.
    pub total_minor: i64,
    pub paid_minor: Option<i64>,
    pub packed_total_minor: Option<i64>,
    pub refund_requested_minor: i64,
    #[serde(deserialize_with = "flag")]
    pub allocated: bool,
    pub delivery_id: Option<DeliveryId>,
    pub cancel_reason: Option<CancellationReason>,
    #[serde(deserialize_with = "json_text")]
    pub lines: Vec<OrderLine>,
    /// Each cancelled line's SKU followed by a comma.
    cancelled_skus: String,
    pub slot_starts_at: DateTime<Utc>,
    pub slot_ends_at: DateTime<Utc>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Global position of the last event applied to this order.
    pub position: u64,
}

impl OrderRow {
    /// Whether the line of `sku` was cancelled before packing.
    pub fn line_cancelled(&self, sku: &Sku) -> bool {
        self.cancelled_skus
            .split(',')
            .any(|s| !s.is_empty() && s == sku.as_str())
    }
}

/// One change of an order.
#[derive(Debug, Clone, Deserialize)]
pub struct TimelineRow {
    pub order_id: OrderId,
    pub position: u64,
    pub event_type: String,
    /// The status the order was in after this event.
    pub status: String,
    pub occurred_at: DateTime<Utc>,
}

/// One order.
pub async fn order(store: &Store, order_id: &str) -> Result<Option<OrderRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {ORDERS} WHERE order_id = ?"),
        &[order_id.into()],
    )
    .await?;
    Ok(all_typed(ORDERS, rows)?.pop())
}

/// Up to `limit` of a customer's orders, newest first, after the keyset
/// position `before` (placed at, order id) when given.
pub async fn customer_orders(
    store: &Store,
    customer_id: &str,
    before: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<OrderRow>, StoreError> {
    let limit = limit as i64;
    let rows = match before {
        None => {
            fetch(
                store,
                &format!(
                    "SELECT * FROM {ORDERS} WHERE customer_id = ? \
                     ORDER BY placed_at DESC, order_id DESC LIMIT ?"
                ),
                &[customer_id.into(), limit.into()],
            )
            .await?
        }
        Some((placed, id)) => {
            fetch(
                store,
                &format!(
                    "SELECT * FROM {ORDERS} WHERE customer_id = ? \
                     AND (placed_at < ? OR (placed_at = ? AND order_id < ?)) \
                     ORDER BY placed_at DESC, order_id DESC LIMIT ?"
                ),
                &[
                    customer_id.into(),
                    placed.into(),
                    placed.into(),
                    id.into(),
                    limit.into(),
                ],
            )
            .await?
        }
    };
    all_typed(ORDERS, rows)
}

/// An order's changes after `after` (0: all), oldest first.
pub async fn timeline(
    store: &Store,
    order_id: &str,
    after: u64,
) -> Result<Vec<TimelineRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {TIMELINE} WHERE order_id = ? AND position > ? ORDER BY position"),
        &[order_id.into(), after.into()],
    )
    .await?;
    all_typed(TIMELINE, rows)
}

#[async_trait]
impl ReadModel for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn tables(&self) -> &'static [Table] {
        &[
            Table {
                name: ORDERS,
                order_by: "order_id",
            },
            Table {
                name: TIMELINE,
                order_by: "order_id, position",
            },
        ]
    }

    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {ORDERS}{suffix} (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, warehouse_id TEXT NOT NULL, \
                 status TEXT NOT NULL, payment_method TEXT NOT NULL, currency TEXT NOT NULL, \
                 total_minor BIGINT NOT NULL, paid_minor BIGINT, packed_total_minor BIGINT, refund_requested_minor BIGINT NOT NULL, \
                 allocated BIGINT NOT NULL, delivery_id TEXT, cancel_reason TEXT, lines TEXT NOT NULL, \
                 cancelled_skus TEXT NOT NULL DEFAULT '', \
                 slot_starts_at TEXT NOT NULL, slot_ends_at TEXT NOT NULL, \
                 placed_at TEXT NOT NULL, updated_at TEXT NOT NULL, position BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX ix_orders_customer_{tag} ON {ORDERS}{suffix} (customer_id, placed_at, order_id)"),
            format!(
                "CREATE TABLE {TIMELINE}{suffix} (order_id TEXT NOT NULL, position BIGINT NOT NULL, event_type TEXT NOT NULL, \
                 status TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (order_id, position))"
            ),
        ]
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_type == OrderEvent::STREAM_TYPE
    }

    async fn apply(&self, tx: &mut StoreTx, s: &str, e: &RecordedEvent) -> Result<(), StoreError> {
        let AnyEvent::Order(ev) = decode(e)? else {
            return Ok(());
        };
        let at = ts(&e.occurred_at);
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        let t = format!("{ORDERS}{s}");
        use OrderEvent as E;
        if let E::OrderPlaced(p) = &ev {
            let total = p.total().map(|m| m.amount_minor()).unwrap_or(0);
            let currency = p.lines[0].unit_price.amount.currency().to_string();
            exec(tx, &format!(
                "INSERT INTO {t} (order_id, customer_id, warehouse_id, status, payment_method, currency, total_minor, \
                 refund_requested_minor, allocated, lines, slot_starts_at, slot_ends_at, placed_at, updated_at, position) \
                 VALUES (?, ?, ?, 'CREATED', ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?)"),
                &[id.into(), p.customer_id.to_string().into(), p.warehouse_id.to_string().into(),
                  word(&p.payment_method).into(), currency.into(), total.into(),
                  serde_json::to_string(&p.lines).expect("lines serialize").into(),
                  ts(&p.delivery_slot.starts_at()).into(), ts(&p.delivery_slot.ends_at()).into(),
                  at.as_str().into(), at.as_str().into(), pos.into()]).await?;
        } else {
            let (set, mut args): (&str, Vec<Arg>) = match &ev {
                E::OrderPlaced(_) => unreachable!("handled above"),
                E::AllocationConfirmed(_) => ("allocated = 1", vec![]),
                E::OrderPaid(p) => (
                    "status = 'PAID', paid_minor = ?",
                    vec![p.amount.amount_minor().into()],
                ),
                E::OrderPacked(p) => {
                    let total: i64 = p.lines.iter().map(|l| l.price.amount_minor()).sum();
                    (
                        "status = 'PACKED', packed_total_minor = ?",
                        vec![total.into()],
                    )
                }
                E::OrderShipped(p) => (
                    "status = 'SHIPPED', delivery_id = ?",
                    vec![p.delivery_id.to_string().into()],
                ),
                E::OrderDelivered(_) => ("status = 'DELIVERED'", vec![]),
                E::OrderCancelled(c) => (
                    "status = 'CANCELLED', cancel_reason = ?",
                    vec![word::<CancellationReason>(&c.reason).into()],
                ),
                E::RefundRequested(r) => (
                    "refund_requested_minor = refund_requested_minor + ?",
                    vec![r.amount.amount_minor().into()],
                ),
                // `cancelled_skus`: each cancelled line's SKU and a comma.
                E::OrderLineCancelled(c) => (
                    "total_minor = total_minor - ?, refund_requested_minor = refund_requested_minor + ?, \
                     cancelled_skus = cancelled_skus || ?",
                    vec![
                        c.price.amount_minor().into(),
                        c.refund.map_or(0, |m| m.amount_minor()).into(),
                        format!("{},", c.sku).into(),
                    ],
                ),
            };
            args.extend([at.as_str().into(), pos.into(), id.into()]);
            exec(
                tx,
                &format!("UPDATE {t} SET {set}, updated_at = ?, position = ? WHERE order_id = ?"),
                &args,
            )
            .await?;
        }
        // The timeline: every change, with the status it left the order in.
        exec(
            tx,
            &format!(
                "INSERT INTO {TIMELINE}{s} (order_id, position, event_type, status, occurred_at) \
                 SELECT order_id, ?, ?, status, ? FROM {t} WHERE order_id = ?"
            ),
            &[
                pos.into(),
                e.event_type.as_str().into(),
                at.as_str().into(),
                id.into(),
            ],
        )
        .await?;
        Ok(())
    }
}
