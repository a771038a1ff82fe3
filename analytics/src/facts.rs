//! From an event of the log to the rows of the analytics tables. Pure: an
//! event and its stream's first event (which never changes) decide the rows,
//! so a replay writes the same rows every time.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use event_schemas::events::delivery::{DeliveryEvent, ProofOfDelivery};
use event_schemas::events::inventory::{BatchReceived, InventoryBatchEvent};
use event_schemas::events::order::{OrderEvent, OrderPlaced};
use event_schemas::events::payment::{PaymentEvent, PaymentInitiated};
use event_schemas::values::{Money, Quantity, UnitOfMeasure};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Serialize;
use uuid::Uuid;

use crate::tables::Table;

/// `events`: the envelope, flattened, and the body as JSON text.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct EventRow {
    pub position: u64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub event_version: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub recorded_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::uuid")]
    pub correlation_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub causation_id: Option<Uuid>,
    pub actor: String,
    pub actor_role: String,
    pub payload: String,
}

/// `order_lines`: what happened to one line of an order.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct OrderLineRow {
    pub position: u64,
    pub line: u16,
    pub kind: &'static str,
    #[serde(with = "clickhouse::serde::uuid")]
    pub order_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub customer_id: Uuid,
    pub warehouse_id: String,
    pub sku: String,
    pub unit: &'static str,
    pub quantity: u64,
    pub amount_minor: i64,
    pub currency: String,
    pub payment_method: &'static str,
    pub reason: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub placed_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
}

/// `stock_movements`: one event of a batch, with the batch's facts.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct StockMovementRow {
    pub position: u64,
    pub kind: &'static str,
    #[serde(with = "clickhouse::serde::uuid")]
    pub batch_id: Uuid,
    pub sku: String,
    pub warehouse_id: String,
    pub supplier_id: String,
    pub cold_chain: &'static str,
    pub unit: &'static str,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub received_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub expires_at: DateTime<Utc>,
    pub batch_quantity: u64,
    pub batch_cost_minor: i64,
    pub quantity: u64,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub order_id: Option<Uuid>,
    pub reason: String,
    pub cost_minor: i64,
    pub currency: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
}

/// `payments`: one event of a payment.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct PaymentRow {
    pub position: u64,
    pub kind: &'static str,
    #[serde(with = "clickhouse::serde::uuid")]
    pub payment_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub order_id: Uuid,
    pub method: &'static str,
    pub gateway: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reference: String,
    pub rider_id: String,
    pub failure_code: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
}

/// `deliveries`: one event of a delivery, with its slot.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct DeliveryRow {
    pub position: u64,
    pub kind: &'static str,
    #[serde(with = "clickhouse::serde::uuid")]
    pub delivery_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub order_id: Uuid,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub slot_start: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub slot_end: DateTime<Utc>,
    pub cold_chain: u8,
    pub rider_id: String,
    pub proof: &'static str,
    pub reason: String,
    pub lat_micro: i32,
    pub lon_micro: i32,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
}

/// The rows one batch of events makes, per table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts {
    pub events: Vec<EventRow>,
    pub order_lines: Vec<OrderLineRow>,
    pub stock_movements: Vec<StockMovementRow>,
    pub payments: Vec<PaymentRow>,
    pub deliveries: Vec<DeliveryRow>,
}

impl Facts {
    /// Rows in `table`.
    pub fn len(&self, table: Table) -> usize {
        match table {
            Table::Events => self.events.len(),
            Table::OrderLines => self.order_lines.len(),
            Table::StockMovements => self.stock_movements.len(),
            Table::Payments => self.payments.len(),
            Table::Deliveries => self.deliveries.len(),
        }
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.order_lines.clear();
        self.stock_movements.clear();
        self.payments.clear();
        self.deliveries.clear();
    }
}

/// Why an event cannot be turned into rows (a log that breaks the write
/// side's rules: never expected).
#[derive(Debug, thiserror::Error)]
pub enum FactError {
    #[error("event {position} ({event_type}) cannot be decoded: {reason}")]
    Decode {
        position: u64,
        event_type: String,
        reason: String,
    },
    #[error("event {position} ({event_type}) of {stream_type} {stream_id}: the stream's first event is missing or not its creation")]
    NoOrigin {
        position: u64,
        event_type: String,
        stream_type: String,
        stream_id: String,
    },
}

/// The facts of a stream's first event that its later events' rows need.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Order(OrderPlaced, DateTime<Utc>),
    Batch(BatchReceived),
    Payment(PaymentInitiated),
    Delivery(event_schemas::events::delivery::DeliveryCreated),
}

impl Origin {
    /// The origin a stream's first event makes, if its stream type needs one.
    pub fn of(first: &RecordedEvent) -> Option<Origin> {
        Some(match first.decode().ok()? {
            AnyEvent::Order(OrderEvent::OrderPlaced(e)) => Origin::Order(e, first.occurred_at),
            AnyEvent::InventoryBatch(InventoryBatchEvent::BatchReceived(e)) => Origin::Batch(e),
            AnyEvent::Payment(PaymentEvent::PaymentInitiated(e)) => Origin::Payment(e),
            AnyEvent::Delivery(DeliveryEvent::DeliveryCreated(e)) => Origin::Delivery(e),
            _ => return None,
        })
    }
}

/// Whether rows of `event` need its stream's first event.
pub fn needs_origin(event: &RecordedEvent) -> bool {
    event.stream_version > 1 && needs_origin_type(&event.stream_type)
}

/// Whether `event`'s stream type has origins (its first event is one).
pub fn is_origin(event: &RecordedEvent) -> bool {
    event.stream_version == 1 && needs_origin_type(&event.stream_type)
}

fn needs_origin_type(stream_type: &str) -> bool {
    matches!(
        stream_type,
        OrderEvent::STREAM_TYPE
            | InventoryBatchEvent::STREAM_TYPE
            | PaymentEvent::STREAM_TYPE
            | DeliveryEvent::STREAM_TYPE
    )
}

/// The `events` row of any event.
pub fn event_row(e: &RecordedEvent) -> EventRow {
    EventRow {
        position: e.global_position,
        event_id: e.event_id,
        stream_type: e.stream_type.clone(),
        stream_id: e.stream_id.clone(),
        stream_version: e.stream_version,
        event_type: e.event_type.clone(),
        event_version: e.event_version.clone(),
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        actor: e.actor.to_string(),
        actor_role: snake(&e.actor.role),
        payload: e.payload.to_string(),
    }
}

/// Adds the fact rows of `event` (not its `events` row) to `out`, for the
/// tables in `wanted`. `origin` is its stream's first event's facts (for
/// the first event itself, its own).
pub fn add_facts(
    event: &RecordedEvent,
    origin: Option<&Origin>,
    wanted: &dyn Fn(Table) -> bool,
    out: &mut Facts,
) -> Result<(), FactError> {
    if !needs_origin_type(&event.stream_type) {
        return Ok(());
    }
    let decoded = event.decode().map_err(|e| FactError::Decode {
        position: event.global_position,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })?;
    let own;
    let origin = if event.stream_version == 1 {
        own = Origin::of(event);
        own.as_ref()
    } else {
        origin
    };
    let no_origin = || FactError::NoOrigin {
        position: event.global_position,
        event_type: event.event_type.clone(),
        stream_type: event.stream_type.clone(),
        stream_id: event.stream_id.clone(),
    };
    match (decoded, origin) {
        (AnyEvent::Order(e), Some(Origin::Order(placed, at))) => {
            if wanted(Table::OrderLines) {
                order_lines(event, &e, placed, *at, &mut out.order_lines);
            }
        }
        (AnyEvent::InventoryBatch(e), Some(Origin::Batch(batch))) => {
            if wanted(Table::StockMovements) {
                out.stock_movements.push(stock_movement(event, &e, batch));
            }
        }
        (AnyEvent::Payment(e), Some(Origin::Payment(initiated))) => {
            if wanted(Table::Payments) {
                out.payments.push(payment(event, &e, initiated));
            }
        }
        (AnyEvent::Delivery(e), Some(Origin::Delivery(created))) => {
            if wanted(Table::Deliveries) {
                out.deliveries.push(delivery(event, &e, created));
            }
        }
        _ => return Err(no_origin()),
    }
    Ok(())
}

fn unit(q: Quantity) -> &'static str {
    match q.uom() {
        UnitOfMeasure::Gram => "g",
        UnitOfMeasure::Unit => "unit",
    }
}

fn snake<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn order_lines(
    event: &RecordedEvent,
    e: &OrderEvent,
    placed: &OrderPlaced,
    placed_at: DateTime<Utc>,
    out: &mut Vec<OrderLineRow>,
) {
    let row = |line: usize, kind, sku: &str, q: Option<Quantity>, amount: Option<Money>| {
        let ordered = placed.lines.iter().find(|l| l.sku.as_str() == sku);
        let unit = q
            .or(ordered.map(|l| l.quantity))
            .map(unit)
            .unwrap_or_default();
        OrderLineRow {
            position: event.global_position,
            line: line as u16,
            kind,
            order_id: placed.order_id.as_uuid(),
            customer_id: placed.customer_id.as_uuid(),
            warehouse_id: placed.warehouse_id.as_str().to_string(),
            sku: sku.to_string(),
            unit,
            quantity: q.map(|q| q.amount()).unwrap_or_default(),
            amount_minor: amount.map(|m| m.amount_minor()).unwrap_or_default(),
            currency: amount
                .or(ordered.map(|l| l.unit_price.amount))
                .map(|m| m.currency().code().to_string())
                .unwrap_or_default(),
            payment_method: match placed.payment_method {
                event_schemas::events::order::PaymentMethod::Card => "card",
                event_schemas::events::order::PaymentMethod::CashOnDelivery => "cash_on_delivery",
            },
            reason: String::new(),
            placed_at,
            occurred_at: event.occurred_at,
        }
    };
    // Every line of the order, as ordered, under another kind.
    let each_line = |kind, reason: String, out: &mut Vec<OrderLineRow>| {
        for (i, l) in placed.lines.iter().enumerate() {
            let mut r = row(i, kind, l.sku.as_str(), Some(l.quantity), l.price().ok());
            r.reason = reason.clone();
            out.push(r);
        }
    };
    match e {
        OrderEvent::OrderPlaced(_) => each_line("ordered", String::new(), out),
        OrderEvent::OrderPacked(p) => {
            for (i, l) in p.lines.iter().enumerate() {
                out.push(row(
                    i,
                    "packed",
                    l.sku.as_str(),
                    Some(l.packed_quantity),
                    Some(l.price),
                ));
            }
        }
        OrderEvent::OrderLineCancelled(c) => {
            let mut r = row(0, "cancelled", c.sku.as_str(), None, Some(c.price));
            if let Some(l) = placed.lines.iter().find(|l| l.sku == c.sku) {
                r.quantity = l.quantity.amount();
            }
            r.reason = snake(&c.reason);
            out.push(r);
        }
        OrderEvent::OrderCancelled(c) => each_line("cancelled", snake(&c.reason), out),
        OrderEvent::OrderDelivered(_) => each_line("delivered", String::new(), out),
        OrderEvent::AllocationConfirmed(_)
        | OrderEvent::OrderPaid(_)
        | OrderEvent::OrderShipped(_)
        | OrderEvent::RefundRequested(_) => {}
    }
}

fn stock_movement(
    event: &RecordedEvent,
    e: &InventoryBatchEvent,
    batch: &BatchReceived,
) -> StockMovementRow {
    use InventoryBatchEvent as Ev;
    let signed = |q: &Quantity| q.amount() as i64;
    // (kind, quantity, on hand, reserved, order, reason, cost)
    let (kind, quantity, on_hand, reserved, order, reason, cost): (
        _,
        u64,
        i64,
        i64,
        Option<Uuid>,
        String,
        Option<Money>,
    ) = match e {
        Ev::BatchReceived(r) => (
            "received",
            r.quantity.amount(),
            signed(&r.quantity),
            0,
            None,
            String::new(),
            None,
        ),
        Ev::StockReserved(r) => (
            "reserved",
            r.quantity.amount(),
            0,
            signed(&r.quantity),
            Some(r.order_id.as_uuid()),
            String::new(),
            None,
        ),
        Ev::ReservationReleased(r) => (
            "released",
            r.quantity.amount(),
            0,
            -signed(&r.quantity),
            Some(r.order_id.as_uuid()),
            snake(&r.reason),
            None,
        ),
        Ev::StockPicked(r) => (
            "picked",
            r.quantity.amount(),
            -signed(&r.quantity),
            -signed(&r.quantity),
            Some(r.order_id.as_uuid()),
            String::new(),
            None,
        ),
        Ev::StockAdjusted(r) => (
            "adjusted",
            r.counted_on_hand.abs_diff(r.previous_on_hand),
            r.counted_on_hand as i64 - r.previous_on_hand as i64,
            0,
            None,
            r.note
                .as_ref()
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            None,
        ),
        Ev::StockWrittenOff(r) => (
            "written_off",
            r.quantity.amount(),
            -signed(&r.quantity),
            0,
            None,
            snake(&r.reason),
            Some(r.cost),
        ),
        Ev::ExpiryWarningRaised(r) => {
            ("expiry_warning", r.on_hand, 0, 0, None, String::new(), None)
        }
        Ev::BatchExpired(r) => ("expired", r.on_hand, 0, 0, None, String::new(), None),
    };
    StockMovementRow {
        position: event.global_position,
        kind,
        batch_id: batch.batch_id.as_uuid(),
        sku: batch.sku.as_str().to_string(),
        warehouse_id: batch.warehouse_id.as_str().to_string(),
        supplier_id: batch.supplier_id.as_str().to_string(),
        cold_chain: match batch.cold_chain {
            event_schemas::events::inventory::ColdChain::Ambient => "ambient",
            event_schemas::events::inventory::ColdChain::Chilled => "chilled",
            event_schemas::events::inventory::ColdChain::Frozen => "frozen",
        },
        unit: unit(batch.quantity),
        received_at: batch.received_at,
        expires_at: batch.expires_at,
        batch_quantity: batch.quantity.amount(),
        batch_cost_minor: batch.procurement_cost.amount_minor(),
        quantity,
        on_hand_delta: on_hand,
        reserved_delta: reserved,
        order_id: order,
        reason,
        cost_minor: cost.map(|c| c.amount_minor()).unwrap_or_default(),
        currency: cost
            .unwrap_or(batch.procurement_cost)
            .currency()
            .code()
            .to_string(),
        occurred_at: event.occurred_at,
    }
}

fn payment(event: &RecordedEvent, e: &PaymentEvent, initiated: &PaymentInitiated) -> PaymentRow {
    use PaymentEvent as Ev;
    let text = |t: &str| t.to_string();
    let (kind, amount, reference, rider, code) = match e {
        Ev::PaymentInitiated(p) => (
            "initiated",
            p.amount_due,
            String::new(),
            String::new(),
            String::new(),
        ),
        Ev::PaymentAuthorized(p) => (
            "authorized",
            p.amount,
            text(p.gateway_reference.as_str()),
            String::new(),
            String::new(),
        ),
        Ev::PaymentCaptured(p) => (
            "captured",
            p.amount,
            text(p.gateway_reference.as_str()),
            String::new(),
            String::new(),
        ),
        Ev::PaymentFailed(p) => (
            "failed",
            Money::zero(initiated.amount_due.currency()),
            String::new(),
            String::new(),
            text(p.code.as_str()),
        ),
        Ev::PaymentRefunded(p) => (
            "refunded",
            p.amount,
            p.gateway_reference
                .as_ref()
                .map(|r| text(r.as_str()))
                .unwrap_or_default(),
            String::new(),
            String::new(),
        ),
        Ev::PaymentVoided(p) => (
            "voided",
            p.amount,
            text(p.gateway_reference.as_str()),
            String::new(),
            String::new(),
        ),
        Ev::CashCollected(p) => (
            "cash_collected",
            p.amount,
            String::new(),
            p.rider_id.to_string(),
            String::new(),
        ),
    };
    PaymentRow {
        position: event.global_position,
        kind,
        payment_id: initiated.payment_id.as_uuid(),
        order_id: initiated.order_id.as_uuid(),
        method: match initiated.method {
            event_schemas::events::order::PaymentMethod::Card => "card",
            event_schemas::events::order::PaymentMethod::CashOnDelivery => "cash_on_delivery",
        },
        gateway: initiated
            .gateway
            .as_ref()
            .map(|g| g.as_str().to_string())
            .unwrap_or_default(),
        amount_minor: amount.amount_minor(),
        currency: amount.currency().code().to_string(),
        reference,
        rider_id: rider,
        failure_code: code,
        occurred_at: event.occurred_at,
    }
}

fn delivery(
    event: &RecordedEvent,
    e: &DeliveryEvent,
    created: &event_schemas::events::delivery::DeliveryCreated,
) -> DeliveryRow {
    use DeliveryEvent as Ev;
    let mut row = DeliveryRow {
        position: event.global_position,
        kind: "",
        delivery_id: created.delivery_id.as_uuid(),
        order_id: created.order_id.as_uuid(),
        slot_start: created.slot.starts_at(),
        slot_end: created.slot.ends_at(),
        cold_chain: created.cold_chain as u8,
        rider_id: String::new(),
        proof: "",
        reason: String::new(),
        lat_micro: 0,
        lon_micro: 0,
        occurred_at: event.occurred_at,
    };
    match e {
        Ev::DeliveryCreated(_) => row.kind = "created",
        Ev::RiderAssigned(r) => {
            row.kind = "assigned";
            row.rider_id = r.rider_id.to_string();
        }
        Ev::DeliveryPickedUp(r) => {
            row.kind = "picked_up";
            row.rider_id = r.rider_id.to_string();
        }
        Ev::LocationReported(r) => {
            row.kind = "location";
            row.lat_micro = r.location.lat_micro();
            row.lon_micro = r.location.lon_micro();
        }
        Ev::DeliveryCompleted(r) => {
            row.kind = "completed";
            row.proof = match r.proof {
                ProofOfDelivery::Signature { .. } => "signature",
                ProofOfDelivery::Photo { .. } => "photo",
                ProofOfDelivery::Pin { .. } => "pin",
            };
        }
        Ev::DeliveryAttemptFailed(r) => {
            row.kind = "attempt_failed";
            row.reason = r.reason.as_str().to_string();
        }
    }
    row
}
