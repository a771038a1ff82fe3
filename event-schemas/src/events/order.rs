//! Events of the `Order` stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event_enum;
use crate::values::*;

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Card,
    CashOnDelivery,
}

/// One product line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: Sku,
    /// Grams for per-kg products, units for per-unit products.
    pub quantity: Quantity,
    /// The catalogue price at placement, recorded so history never depends
    /// on today's catalogue.
    pub unit_price: UnitPrice,
}

impl OrderLine {
    /// The line's price for the ordered quantity.
    pub fn price(&self) -> Result<Money, PriceError> {
        self.unit_price.price_of(self.quantity)
    }
}

/// A customer placed an order. Version 2.0: lines say whether their price is
/// per kg or per unit, and the payment method is explicit (see `legacy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// The warehouse that fulfils the order.
    pub warehouse_id: WarehouseId,
    pub lines: Vec<OrderLine>,
    pub delivery_slot: DeliverySlot,
    pub delivery_address: Address,
    pub payment_method: PaymentMethod,
}

impl OrderPlaced {
    /// Sum of the line prices; every line shares one currency by construction.
    pub fn total(&self) -> Result<Money, PriceError> {
        let currency = self.lines[0].unit_price.amount.currency();
        self.lines.iter().try_fold(Money::zero(currency), |acc, l| {
            acc.checked_add(l.price()?)
                .map_err(|_| PriceError::Overflow)
        })
    }
}

/// Stock for a line set aside on one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub sku: Sku,
    pub batch_id: BatchId,
    pub quantity: Quantity,
}

/// Every line is reserved, possibly across several batches (FEFO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationConfirmed {
    pub allocations: Vec<Allocation>,
}

/// The order's payment was confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPaid {
    pub payment_id: PaymentId,
    pub amount: Money,
}

/// What went into the box for one line, and what it is billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackedLine {
    pub sku: Sku,
    /// The actual weight (per-kg lines) or count (per-unit lines) packed.
    pub packed_quantity: Quantity,
    /// The line's price for the packed quantity.
    pub price: Money,
}

/// The order was packed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPacked {
    pub lines: Vec<PackedLine>,
}

/// The order left the warehouse with a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderShipped {
    pub delivery_id: DeliveryId,
}

/// The order reached the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderDelivered {
    pub delivery_id: DeliveryId,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    CustomerRequest,
    OutOfStock,
    PaymentFailed,
    PaymentTimeout,
    BatchExpired,
    Fraud,
    Other,
}

/// The order was cancelled before it shipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub reason: CancellationReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// One line of an order was cancelled before packing, and the order goes on
/// with the others (its stock expired and no other batch could cover it).
/// The order's total no longer counts the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineCancelled {
    pub sku: Sku,
    /// The line's price as placed, which the order's total no longer counts.
    pub price: Money,
    pub reason: CancellationReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// What goes back to the customer for the line, when it was paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Money>,
}

/// Why money goes back to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    OrderCancelled,
    PackedLess,
    CustomerComplaint,
}

/// A refund of part or all of what was paid was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequested {
    pub amount: Money,
    pub reason: RefundReason,
}

event_enum! {
    /// Every event of an `Order` stream.
    OrderEvent, stream = "Order" {
        OrderPlaced = "2.0",
        AllocationConfirmed = "1.0",
        OrderPaid = "1.0",
        OrderPacked = "1.0",
        OrderShipped = "1.0",
        OrderDelivered = "1.0",
        OrderCancelled = "1.0",
        RefundRequested = "1.0",
        OrderLineCancelled = "1.0",
    }
}

/// Earlier versions of order events, kept to read old history.
pub mod legacy {
    use super::*;

    /// `OrderPlaced` 1.0 line: a bare price with no pricing unit. Weighed
    /// goods (grams) were implicitly priced per kg, pieces per unit.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OrderLineV1 {
        pub sku: Sku,
        pub quantity: Quantity,
        pub unit_price: Money,
    }

    /// `OrderPlaced` 1.0: before per-kg/per-unit prices and before cash on
    /// delivery existed (every 1.0 order paid by card).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OrderPlacedV1 {
        pub order_id: OrderId,
        pub customer_id: CustomerId,
        pub warehouse_id: WarehouseId,
        pub lines: Vec<OrderLineV1>,
        pub delivery_slot: DeliverySlot,
        pub delivery_address: Address,
    }

    impl From<OrderPlacedV1> for OrderPlaced {
        fn from(v1: OrderPlacedV1) -> Self {
            OrderPlaced {
                order_id: v1.order_id,
                customer_id: v1.customer_id,
                warehouse_id: v1.warehouse_id,
                lines: v1
                    .lines
                    .into_iter()
                    .map(|l| OrderLine {
                        sku: l.sku,
                        quantity: l.quantity,
                        unit_price: UnitPrice {
                            amount: l.unit_price,
                            per: match l.quantity.uom() {
                                UnitOfMeasure::Gram => PricingUnit::PerKg,
                                UnitOfMeasure::Unit => PricingUnit::PerUnit,
                            },
                        },
                    })
                    .collect(),
                delivery_slot: v1.delivery_slot,
                delivery_address: v1.delivery_address,
                payment_method: PaymentMethod::Card,
            }
        }
    }
}
