//! Integration events: the small public contract other teams build on
//! (storefront, notifications, search, the warehouse system, partners),
//! separate from the internal events so those can change without breaking
//! anyone. Each one is a fact a storefront reacts to, named the way other
//! teams speak, versioned on its own, with a JSON Schema under
//! `schemas/integration/` generated from these types.
//!
//! Which internal event becomes which public one:
//!
//! | public              | from (stream / event)               | key      |
//! |---------------------|-------------------------------------|----------|
//! | `OrderCreated`      | Order / `OrderPlaced`               | order    |
//! | `PaymentConfirmed`  | Order / `OrderPaid`                 | order    |
//! | `InventoryReserved` | InventoryBatch / `StockReserved`    | order    |
//! | `DeliveryAssigned`  | Delivery / `RiderAssigned`          | order    |
//! | `OrderShipped`      | Order / `OrderShipped`              | order    |
//! | `OrderDelivered`    | Order / `OrderDelivered`            | order    |
//! | `OrderCancelled`    | Order / `OrderCancelled`            | order    |
//! | `RefundIssued`      | Payment / `PaymentRefunded`         | order    |
//! | `ItemExpired`       | InventoryBatch / `BatchExpired`     | batch    |
//!
//! Every public event's `id` is its source event's id, so a consumer
//! dedupes redeliveries on it. Keyed by order, one order's public events
//! share a partition and arrive in log order.
//!
//! Some sources do not carry everything a consumer needs (a reservation
//! names its order, not the SKU; a rider assignment names no order): the
//! missing facts come from the *origin* of the source stream, its first
//! event (`BatchReceived`, `DeliveryCreated`, `PaymentInitiated`), which
//! never changes, so the mapping is a pure function of the two events and
//! a replay publishes exactly the same thing.
//!
//! Not published (yet): `StockLow`. Low stock is a threshold over the sum
//! of a warehouse's batches of a SKU, which no single fact carries; it
//! belongs to a read model that watches the sum, not to this mapping.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delivery::DeliveryEvent;
use crate::envelope::{AnyEvent, DecodeError, RecordedEvent};
use crate::inventory::InventoryBatchEvent;
use crate::order::{CancellationReason, OrderEvent, PaymentMethod};
use crate::payment::PaymentEvent;
use crate::values::*;

/// The version of every public event type in this module (bumped per type
/// when its shape changes incompatibly; the old one stays published).
pub const VERSION: u32 = 1;

/// One public event as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationEvent<T> {
    /// The source event's id: stable across redeliveries and replays.
    pub id: Uuid,
    /// The public event type (`OrderCreated`, ...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The public event type's version.
    pub version: u32,
    /// When it happened in the world.
    pub occurred_at: DateTime<Utc>,
    /// The business flow (one order's journey) it belongs to.
    pub correlation_id: Uuid,
    /// Where in Freshledger's log it comes from.
    pub source: Source,
    pub data: T,
}

/// The internal event a public one was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub global_position: u64,
    pub event_type: String,
}

/// A line of a new order, priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderedLine {
    pub sku: Sku,
    /// Grams for per-kg products, units for per-unit products.
    pub quantity: Quantity,
    pub unit_price: UnitPrice,
    /// The line's price for the ordered quantity.
    pub price: Money,
}

/// A customer placed an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCreated {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub warehouse_id: WarehouseId,
    pub lines: Vec<OrderedLine>,
    pub total: Money,
    pub delivery_slot: DeliverySlot,
    pub payment_method: PaymentMethod,
}

/// The order's payment is confirmed (authorized card, or cash promised at
/// the door): it will be picked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfirmed {
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    pub amount: Money,
}

/// Stock of one batch was set aside for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReserved {
    pub order_id: OrderId,
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub quantity: Quantity,
}

/// A rider was given the order's delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAssigned {
    pub order_id: OrderId,
    pub delivery_id: DeliveryId,
    pub rider_id: RiderId,
    pub slot: DeliverySlot,
}

/// The order left the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderShipped {
    pub order_id: OrderId,
    pub delivery_id: DeliveryId,
}

/// The order reached the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderDelivered {
    pub order_id: OrderId,
    pub delivery_id: DeliveryId,
}

/// The order was cancelled before it shipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub order_id: OrderId,
    pub reason: CancellationReason,
}

/// Money went back to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundIssued {
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    pub amount: Money,
}

/// A batch passed its best-before: what was left of it can no longer be
/// sold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemExpired {
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub expires_at: DateTime<Utc>,
    /// What was on hand when it expired.
    pub quantity: Quantity,
}

/// A public event ready to publish: its type, the key that keeps one
/// entity's events in order, and the encoded [`IntegrationEvent`].
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub event_type: &'static str,
    pub key: String,
    pub value: serde_json::Value,
}

/// Why an internal event could not be made public.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0} needs its stream's first event, which is missing or of another kind")]
    Origin(String),
    #[error("{0}")]
    Value(String),
}

/// Whether making `event` public needs its stream's first event.
pub fn needs_origin(event: &RecordedEvent) -> bool {
    matches!(
        (event.stream_type.as_str(), event.event_type.as_str()),
        ("InventoryBatch", "StockReserved" | "BatchExpired")
            | ("Delivery", "RiderAssigned")
            | ("Payment", "PaymentRefunded")
    )
}

/// Whether some event of stream type `stream_type` needs its stream's
/// first event to be made public (see [`needs_origin`]).
pub fn origin_needed_for(stream_type: &str) -> bool {
    matches!(stream_type, "InventoryBatch" | "Delivery" | "Payment")
}

/// The public event `event` becomes, if any. `origin` is the first event
/// of `event`'s stream, required when [`needs_origin`] says so.
pub fn integration_event(
    event: &RecordedEvent,
    origin: Option<&RecordedEvent>,
) -> Result<Option<Published>, MappingError> {
    if !is_public_source(event) {
        return Ok(None);
    }
    let decoded = event.decode()?;
    let origin_of = || -> Result<AnyEvent, MappingError> {
        let missing = || MappingError::Origin(event.event_type.clone());
        let origin = origin.ok_or_else(missing)?;
        if origin.stream_id != event.stream_id || origin.stream_version != 1 {
            return Err(missing());
        }
        Ok(origin.decode()?)
    };
    let order_key = |id: &OrderId| id.as_uuid().to_string();
    let stream_order = || -> Result<OrderId, MappingError> {
        event
            .stream_id
            .parse::<Uuid>()
            .map(OrderId::from_uuid)
            .map_err(|e| MappingError::Value(format!("order stream id: {e}")))
    };
    let out = match decoded {
        AnyEvent::Order(OrderEvent::OrderPlaced(p)) => {
            let total = p.total().map_err(|e| MappingError::Value(e.to_string()))?;
            let lines = p
                .lines
                .iter()
                .map(|l| {
                    Ok(OrderedLine {
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                        unit_price: l.unit_price,
                        price: l.price().map_err(|e| MappingError::Value(e.to_string()))?,
                    })
                })
                .collect::<Result<Vec<_>, MappingError>>()?;
            publish(
                event,
                order_key(&p.order_id),
                OrderCreated {
                    order_id: p.order_id,
                    customer_id: p.customer_id,
                    warehouse_id: p.warehouse_id,
                    lines,
                    total,
                    delivery_slot: p.delivery_slot,
                    payment_method: p.payment_method,
                },
            )
        }
        AnyEvent::Order(OrderEvent::OrderPaid(p)) => {
            let order_id = stream_order()?;
            publish(
                event,
                order_key(&order_id),
                PaymentConfirmed {
                    order_id,
                    payment_id: p.payment_id,
                    amount: p.amount,
                },
            )
        }
        AnyEvent::Order(OrderEvent::OrderShipped(s)) => {
            let order_id = stream_order()?;
            publish(
                event,
                order_key(&order_id),
                OrderShipped {
                    order_id,
                    delivery_id: s.delivery_id,
                },
            )
        }
        AnyEvent::Order(OrderEvent::OrderDelivered(d)) => {
            let order_id = stream_order()?;
            publish(
                event,
                order_key(&order_id),
                OrderDelivered {
                    order_id,
                    delivery_id: d.delivery_id,
                },
            )
        }
        AnyEvent::Order(OrderEvent::OrderCancelled(c)) => {
            let order_id = stream_order()?;
            publish(
                event,
                order_key(&order_id),
                OrderCancelled {
                    order_id,
                    reason: c.reason,
                },
            )
        }
        AnyEvent::InventoryBatch(InventoryBatchEvent::StockReserved(r)) => {
            let AnyEvent::InventoryBatch(InventoryBatchEvent::BatchReceived(b)) = origin_of()?
            else {
                return Err(MappingError::Origin(event.event_type.clone()));
            };
            publish(
                event,
                order_key(&r.order_id),
                InventoryReserved {
                    order_id: r.order_id,
                    batch_id: b.batch_id,
                    sku: b.sku,
                    warehouse_id: b.warehouse_id,
                    quantity: r.quantity,
                },
            )
        }
        AnyEvent::InventoryBatch(InventoryBatchEvent::BatchExpired(x)) => {
            let AnyEvent::InventoryBatch(InventoryBatchEvent::BatchReceived(b)) = origin_of()?
            else {
                return Err(MappingError::Origin(event.event_type.clone()));
            };
            let quantity = Quantity::new(b.quantity.uom(), x.on_hand)
                .map_err(|e| MappingError::Value(e.to_string()))?;
            publish(
                event,
                b.batch_id.as_uuid().to_string(),
                ItemExpired {
                    batch_id: b.batch_id,
                    sku: b.sku,
                    warehouse_id: b.warehouse_id,
                    expires_at: x.expires_at,
                    quantity,
                },
            )
        }
        AnyEvent::Delivery(DeliveryEvent::RiderAssigned(a)) => {
            let AnyEvent::Delivery(DeliveryEvent::DeliveryCreated(d)) = origin_of()? else {
                return Err(MappingError::Origin(event.event_type.clone()));
            };
            publish(
                event,
                order_key(&d.order_id),
                DeliveryAssigned {
                    order_id: d.order_id,
                    delivery_id: d.delivery_id,
                    rider_id: a.rider_id,
                    slot: d.slot,
                },
            )
        }
        AnyEvent::Payment(PaymentEvent::PaymentRefunded(r)) => {
            let AnyEvent::Payment(PaymentEvent::PaymentInitiated(p)) = origin_of()? else {
                return Err(MappingError::Origin(event.event_type.clone()));
            };
            publish(
                event,
                order_key(&p.order_id),
                RefundIssued {
                    order_id: p.order_id,
                    payment_id: p.payment_id,
                    amount: r.amount,
                },
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Cheap pre-check on the envelope: only these sources become public.
fn is_public_source(event: &RecordedEvent) -> bool {
    needs_origin(event)
        || (event.stream_type == "Order"
            && matches!(
                event.event_type.as_str(),
                "OrderPlaced" | "OrderPaid" | "OrderShipped" | "OrderDelivered" | "OrderCancelled"
            ))
}

/// A public event type: its wire name, and its place in the schema list.
pub trait PublicEvent: Serialize + JsonSchema {
    const NAME: &'static str;
}

macro_rules! public_events {
    ($($t:ident),* $(,)?) => {
        $( impl PublicEvent for $t { const NAME: &'static str = stringify!($t); } )*

        /// Every public event type's name and the JSON Schema of its
        /// whole message ([`IntegrationEvent`] with its `data`).
        pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
            vec![ $( ($t::NAME, message_schema::<$t>()), )* ]
        }

        /// The public event types, in the order they are documented.
        pub const NAMES: &[&str] = &[ $( stringify!($t), )* ];
    };
}

public_events!(
    OrderCreated,
    PaymentConfirmed,
    InventoryReserved,
    DeliveryAssigned,
    OrderShipped,
    OrderDelivered,
    OrderCancelled,
    RefundIssued,
    ItemExpired,
);

fn message_schema<T: PublicEvent>() -> schemars::Schema {
    let mut schema = crate::schema::schema_of::<IntegrationEvent<T>>();
    // The envelope is generic; each message's `type` and `version` are fixed.
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "type".into(),
            serde_json::json!({ "description": "The public event type", "const": T::NAME }),
        );
        props.insert(
            "version".into(),
            serde_json::json!({ "description": "The public event type's version", "const": VERSION }),
        );
    }
    schema.insert("title".into(), T::NAME.into());
    schema
}

fn publish<T: PublicEvent>(event: &RecordedEvent, key: String, data: T) -> Published {
    let message = IntegrationEvent {
        id: event.event_id,
        event_type: T::NAME.to_string(),
        version: VERSION,
        occurred_at: event.occurred_at,
        correlation_id: event.correlation_id,
        source: Source {
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            global_position: event.global_position,
            event_type: event.event_type.clone(),
        },
        data,
    };
    Published {
        event_type: T::NAME,
        key,
        value: serde_json::to_value(message).expect("public events serialize"),
    }
}
