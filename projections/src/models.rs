//! The read models: their tables and how each event changes them.

use event_schemas::delivery::{DeliveryEvent, ProofOfDelivery};
use event_schemas::inventory::{ColdChain, InventoryBatchEvent, ReleaseReason, WriteOffReason};
use event_schemas::order::{CancellationReason, OrderEvent, PaymentMethod};
use event_schemas::payment::PaymentEvent;
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Serialize;
use store::{StoreError, StoreTx};

use store::sql::{exec, Arg};

/// A read model: its name (also its subscription's), its tables, and what
/// each event does to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Orders,
    Stock,
    Deliveries,
    Payments,
    Timers,
}

impl Model {
    pub const ALL: [Model; 5] = [
        Model::Orders,
        Model::Stock,
        Model::Deliveries,
        Model::Payments,
        Model::Timers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Orders => "orders",
            Model::Stock => "stock",
            Model::Deliveries => "deliveries",
            Model::Payments => "payments",
            Model::Timers => "timers",
        }
    }

    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Tables with the columns that order their rows (for checksums).
    pub fn tables(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Model::Orders => &[
                ("rm_orders", "order_id"),
                ("rm_order_timeline", "order_id, position"),
            ],
            Model::Stock => &[("rm_batches", "batch_id"), ("rm_spoilage", "position")],
            Model::Deliveries => &[("rm_deliveries", "delivery_id")],
            Model::Payments => &[("rm_payments", "payment_id")],
            Model::Timers => &[("rm_timers", "timer_id")],
        }
    }

    /// DDL for the model's tables with `suffix` appended to every table
    /// name; `tag` makes index names unique across rebuilds.
    pub fn ddl(self, suffix: &str, tag: &str) -> Vec<String> {
        let t = |name: &str| format!("{name}{suffix}");
        match self {
            Model::Orders => vec![
                format!(
                    "CREATE TABLE {} (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, warehouse_id TEXT NOT NULL, \
                     status TEXT NOT NULL, payment_method TEXT NOT NULL, currency TEXT NOT NULL, \
                     total_minor BIGINT NOT NULL, paid_minor BIGINT, packed_total_minor BIGINT, refund_requested_minor BIGINT NOT NULL, \
                     allocated BIGINT NOT NULL, delivery_id TEXT, cancel_reason TEXT, lines TEXT NOT NULL, \
                     cancelled_skus TEXT NOT NULL DEFAULT '', \
                     slot_starts_at TEXT NOT NULL, slot_ends_at TEXT NOT NULL, \
                     placed_at TEXT NOT NULL, updated_at TEXT NOT NULL, position BIGINT NOT NULL)",
                    t("rm_orders")
                ),
                format!("CREATE INDEX ix_orders_customer_{tag} ON {} (customer_id, placed_at, order_id)", t("rm_orders")),
                format!(
                    "CREATE TABLE {} (order_id TEXT NOT NULL, position BIGINT NOT NULL, event_type TEXT NOT NULL, \
                     status TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (order_id, position))",
                    t("rm_order_timeline")
                ),
            ],
            Model::Stock => vec![
                format!(
                    "CREATE TABLE {} (batch_id TEXT PRIMARY KEY, sku TEXT NOT NULL, warehouse_id TEXT NOT NULL, supplier_id TEXT NOT NULL, \
                     uom TEXT NOT NULL, received BIGINT NOT NULL, on_hand BIGINT NOT NULL, reserved BIGINT NOT NULL, \
                     picked BIGINT NOT NULL, written_off BIGINT NOT NULL, received_at TEXT NOT NULL, expires_at TEXT NOT NULL, \
                     cold_chain TEXT NOT NULL, cost_minor BIGINT NOT NULL, currency TEXT NOT NULL, \
                     expired BIGINT NOT NULL, warned BIGINT NOT NULL, position BIGINT NOT NULL)",
                    t("rm_batches")
                ),
                format!("CREATE INDEX ix_batches_fefo_{tag} ON {} (sku, warehouse_id, expires_at)", t("rm_batches")),
                format!("CREATE INDEX ix_batches_expiry_{tag} ON {} (expires_at)", t("rm_batches")),
                format!(
                    "CREATE TABLE {} (position BIGINT PRIMARY KEY, batch_id TEXT NOT NULL, sku TEXT NOT NULL, warehouse_id TEXT NOT NULL, \
                     uom TEXT NOT NULL, quantity BIGINT NOT NULL, reason TEXT NOT NULL, cost_minor BIGINT NOT NULL, \
                     currency TEXT NOT NULL, note TEXT, occurred_at TEXT NOT NULL)",
                    t("rm_spoilage")
                ),
            ],
            Model::Deliveries => vec![
                format!(
                    "CREATE TABLE {} (delivery_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL, \
                     rider_id TEXT, lat_micro BIGINT, lon_micro BIGINT, located_at TEXT, \
                     slot_starts_at TEXT NOT NULL, slot_ends_at TEXT NOT NULL, cold_chain BIGINT NOT NULL, \
                     attempts_failed BIGINT NOT NULL, proof TEXT, updated_at TEXT NOT NULL, position BIGINT NOT NULL)",
                    t("rm_deliveries")
                ),
                format!("CREATE INDEX ix_deliveries_order_{tag} ON {} (order_id)", t("rm_deliveries")),
            ],
            Model::Payments => vec![
                format!(
                    "CREATE TABLE {} (payment_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, method TEXT NOT NULL, gateway TEXT, \
                     status TEXT NOT NULL, currency TEXT NOT NULL, due_minor BIGINT NOT NULL, authorized_minor BIGINT NOT NULL, \
                     captured_minor BIGINT NOT NULL, refunded_minor BIGINT NOT NULL, collected_minor BIGINT NOT NULL, \
                     failure_code TEXT, updated_at TEXT NOT NULL, position BIGINT NOT NULL)",
                    t("rm_payments")
                ),
                format!("CREATE INDEX ix_payments_order_{tag} ON {} (order_id)", t("rm_payments")),
            ],
            Model::Timers => vec![
                format!(
                    "CREATE TABLE {} (timer_id TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, \
                     due_at TEXT NOT NULL, status TEXT NOT NULL, fired_at TEXT, position BIGINT NOT NULL)",
                    t("rm_timers")
                ),
                format!("CREATE INDEX ix_timers_due_{tag} ON {} (status, due_at)", t("rm_timers")),
            ],
        }
    }

    /// Whether this model reads events of `stream_type` at all.
    pub fn wants(self, stream_type: &str) -> bool {
        matches!(
            (self, stream_type),
            (Model::Orders, "Order")
                | (Model::Stock, "InventoryBatch")
                | (Model::Deliveries, "Delivery")
                | (Model::Payments, "Payment")
                | (Model::Timers, "Timer")
        )
    }

    /// Applies one event to the model's tables (with `suffix`).
    pub async fn apply(
        self,
        tx: &mut StoreTx,
        suffix: &str,
        e: &RecordedEvent,
    ) -> Result<(), StoreError> {
        if !self.wants(&e.stream_type) {
            return Ok(());
        }
        let decoded = e.decode().map_err(|err| StoreError::Corrupt {
            position: e.global_position as i64,
            reason: err.to_string(),
        })?;
        let at = ts(&e.occurred_at);
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        match (self, decoded) {
            (Model::Orders, AnyEvent::Order(ev)) => {
                orders(tx, suffix, id, pos, &at, &e.event_type, ev).await
            }
            (Model::Stock, AnyEvent::InventoryBatch(ev)) => {
                stock(tx, suffix, id, pos, &at, ev).await
            }
            (Model::Deliveries, AnyEvent::Delivery(ev)) => {
                deliveries(tx, suffix, id, pos, &at, ev).await
            }
            (Model::Payments, AnyEvent::Payment(ev)) => {
                payments(tx, suffix, id, pos, &at, ev).await
            }
            (Model::Timers, AnyEvent::Timer(ev)) => timers(tx, suffix, id, pos, ev).await,
            _ => Ok(()),
        }
    }
}

/// RFC 3339 UTC with fixed microseconds, so text order is time order.
pub fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn orders(
    tx: &mut StoreTx,
    s: &str,
    id: &str,
    pos: i64,
    at: &str,
    event_type: &str,
    ev: OrderEvent,
) -> Result<(), StoreError> {
    let t = format!("rm_orders{s}");
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
              at.into(), at.into(), pos.into()]).await?;
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
        args.extend([at.into(), pos.into(), id.into()]);
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
        "INSERT INTO rm_order_timeline{s} (order_id, position, event_type, status, occurred_at) \
         SELECT order_id, ?, ?, status, ? FROM {t} WHERE order_id = ?"),
        &[pos.into(), event_type.into(), at.into(), id.into()],
    )
    .await?;
    Ok(())
}

async fn stock(
    tx: &mut StoreTx,
    s: &str,
    id: &str,
    pos: i64,
    at: &str,
    ev: InventoryBatchEvent,
) -> Result<(), StoreError> {
    let t = format!("rm_batches{s}");
    use InventoryBatchEvent as E;
    let (set, args): (&str, Vec<Arg>) = match ev {
        E::BatchReceived(b) => {
            exec(tx, &format!(
                "INSERT INTO {t} (batch_id, sku, warehouse_id, supplier_id, uom, received, on_hand, reserved, picked, written_off, \
                 received_at, expires_at, cold_chain, cost_minor, currency, expired, warned, position) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?, 0, 0, ?)"),
                &[id.into(), b.sku.to_string().into(), b.warehouse_id.to_string().into(), b.supplier_id.to_string().into(),
                  word(&b.quantity.uom()).into(), b.quantity.amount().into(), b.quantity.amount().into(),
                  ts(&b.received_at).into(), ts(&b.expires_at).into(), word::<ColdChain>(&b.cold_chain).into(),
                  b.procurement_cost.amount_minor().into(), b.procurement_cost.currency().to_string().into(), pos.into()]).await?;
            return Ok(());
        }
        E::StockReserved(r) => ("reserved = reserved + ?", vec![r.quantity.amount().into()]),
        E::ReservationReleased(r) => {
            let _: ReleaseReason = r.reason;
            ("reserved = reserved - ?", vec![r.quantity.amount().into()])
        }
        E::StockPicked(p) => (
            "on_hand = on_hand - ?, reserved = reserved - ?, picked = picked + ?",
            vec![
                p.quantity.amount().into(),
                p.quantity.amount().into(),
                p.quantity.amount().into(),
            ],
        ),
        E::StockAdjusted(a) => ("on_hand = ?", vec![a.counted_on_hand.into()]),
        E::StockWrittenOff(w) => {
            exec(tx, &format!(
                "INSERT INTO rm_spoilage{s} (position, batch_id, sku, warehouse_id, uom, quantity, reason, cost_minor, currency, note, occurred_at) \
                 SELECT ?, batch_id, sku, warehouse_id, uom, ?, ?, ?, ?, ?, ? FROM {t} WHERE batch_id = ?"),
                &[pos.into(), w.quantity.amount().into(), word::<WriteOffReason>(&w.reason).into(), w.cost.amount_minor().into(),
                  w.cost.currency().to_string().into(), w.note.map(|n| n.to_string()).into(), at.into(), id.into()]).await?;
            (
                "on_hand = on_hand - ?, written_off = written_off + ?",
                vec![w.quantity.amount().into(), w.quantity.amount().into()],
            )
        }
        E::ExpiryWarningRaised(_) => ("warned = 1", vec![]),
        E::BatchExpired(_) => ("expired = 1", vec![]),
    };
    let mut args = args;
    args.extend([pos.into(), id.into()]);
    exec(
        tx,
        &format!("UPDATE {t} SET {set}, position = ? WHERE batch_id = ?"),
        &args,
    )
    .await?;
    Ok(())
}

async fn deliveries(
    tx: &mut StoreTx,
    s: &str,
    id: &str,
    pos: i64,
    at: &str,
    ev: DeliveryEvent,
) -> Result<(), StoreError> {
    let t = format!("rm_deliveries{s}");
    use DeliveryEvent as E;
    let (set, args): (&str, Vec<Arg>) = match ev {
        E::DeliveryCreated(d) => {
            exec(tx, &format!(
                "INSERT INTO {t} (delivery_id, order_id, status, slot_starts_at, slot_ends_at, cold_chain, attempts_failed, updated_at, position) \
                 VALUES (?, ?, 'CREATED', ?, ?, ?, 0, ?, ?)"),
                &[id.into(), d.order_id.to_string().into(), ts(&d.slot.starts_at()).into(), ts(&d.slot.ends_at()).into(),
                  (d.cold_chain as i64).into(), at.into(), pos.into()]).await?;
            return Ok(());
        }
        E::RiderAssigned(r) => (
            "status = 'RIDER_ASSIGNED', rider_id = ?",
            vec![r.rider_id.to_string().into()],
        ),
        E::DeliveryPickedUp(_) => ("status = 'IN_TRANSIT'", vec![]),
        E::LocationReported(l) => (
            "lat_micro = ?, lon_micro = ?, located_at = ?",
            vec![
                (l.location.lat_micro() as i64).into(),
                (l.location.lon_micro() as i64).into(),
                at.into(),
            ],
        ),
        E::DeliveryCompleted(c) => {
            let kind = match c.proof {
                ProofOfDelivery::Signature { .. } => "signature",
                ProofOfDelivery::Photo { .. } => "photo",
                ProofOfDelivery::Pin { .. } => "pin",
            };
            ("status = 'DELIVERED', proof = ?", vec![kind.into()])
        }
        E::DeliveryAttemptFailed(_) => (
            "status = 'ATTEMPT_FAILED', attempts_failed = attempts_failed + 1",
            vec![],
        ),
    };
    let mut args = args;
    args.extend([at.into(), pos.into(), id.into()]);
    exec(
        tx,
        &format!("UPDATE {t} SET {set}, updated_at = ?, position = ? WHERE delivery_id = ?"),
        &args,
    )
    .await?;
    Ok(())
}

async fn payments(
    tx: &mut StoreTx,
    s: &str,
    id: &str,
    pos: i64,
    at: &str,
    ev: PaymentEvent,
) -> Result<(), StoreError> {
    let t = format!("rm_payments{s}");
    use PaymentEvent as E;
    let (set, args): (&str, Vec<Arg>) = match ev {
        E::PaymentInitiated(p) => {
            exec(tx, &format!(
                "INSERT INTO {t} (payment_id, order_id, method, gateway, status, currency, due_minor, authorized_minor, \
                 captured_minor, refunded_minor, collected_minor, updated_at, position) \
                 VALUES (?, ?, ?, ?, 'INITIATED', ?, ?, 0, 0, 0, 0, ?, ?)"),
                &[id.into(), p.order_id.to_string().into(), word::<PaymentMethod>(&p.method).into(),
                  p.gateway.map(|g| g.to_string()).into(), p.amount_due.currency().to_string().into(),
                  p.amount_due.amount_minor().into(), at.into(), pos.into()]).await?;
            return Ok(());
        }
        E::PaymentAuthorized(a) => (
            "status = 'AUTHORIZED', authorized_minor = ?",
            vec![a.amount.amount_minor().into()],
        ),
        E::PaymentCaptured(c) => (
            "status = 'CAPTURED', captured_minor = captured_minor + ?",
            vec![c.amount.amount_minor().into()],
        ),
        E::PaymentFailed(f) => (
            "status = 'FAILED', failure_code = ?",
            vec![f.code.to_string().into()],
        ),
        E::PaymentRefunded(r) => (
            "refunded_minor = refunded_minor + ?",
            vec![r.amount.amount_minor().into()],
        ),
        E::PaymentVoided(_) => ("status = 'VOIDED'", vec![]),
        E::CashCollected(c) => (
            "status = 'COLLECTED', collected_minor = ?",
            vec![c.amount.amount_minor().into()],
        ),
    };
    let mut args = args;
    args.extend([at.into(), pos.into(), id.into()]);
    exec(
        tx,
        &format!("UPDATE {t} SET {set}, updated_at = ?, position = ? WHERE payment_id = ?"),
        &args,
    )
    .await?;
    Ok(())
}

async fn timers(
    tx: &mut StoreTx,
    s: &str,
    id: &str,
    pos: i64,
    ev: TimerEvent,
) -> Result<(), StoreError> {
    let t = format!("rm_timers{s}");
    match ev {
        TimerEvent::TimerScheduled(e) => {
            let (kind, target) = match &e.timer {
                TimerKind::ExpiryWarning { batch_id } => ("expiry_warning", batch_id.to_string()),
                TimerKind::BatchExpiry { batch_id } => ("batch_expiry", batch_id.to_string()),
                TimerKind::ReservationHold { order_id } => {
                    ("reservation_hold", order_id.to_string())
                }
            };
            exec(tx, &format!("INSERT INTO {t} (timer_id, kind, target, due_at, status, position) VALUES (?, ?, ?, ?, 'scheduled', ?)"),
                &[id.into(), kind.into(), target.into(), ts(&e.due_at).into(), pos.into()]).await?;
        }
        TimerEvent::TimerFired(f) => {
            exec(tx, &format!("UPDATE {t} SET status = 'fired', fired_at = ?, position = ? WHERE timer_id = ?"),
                &[ts(&f.fired_at).into(), pos.into(), id.into()]).await?;
        }
        TimerEvent::TimerCancelled(_) => {
            exec(
                tx,
                &format!("UPDATE {t} SET status = 'cancelled', position = ? WHERE timer_id = ?"),
                &[pos.into(), id.into()],
            )
            .await?;
        }
    }
    Ok(())
}
