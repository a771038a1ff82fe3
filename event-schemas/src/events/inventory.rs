//! Events of the `InventoryBatch` stream: one batch of one SKU in one warehouse.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event_enum;
use crate::values::*;

/// Storage a batch needs from receipt to the customer's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColdChain {
    /// Room temperature (bananas, potatoes).
    Ambient,
    /// 0-8 °C (berries, leafy greens).
    Chilled,
    /// Below -18 °C.
    Frozen,
}

/// A batch of one SKU arrived at a warehouse from a supplier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchReceived {
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub supplier_id: SupplierId,
    /// What arrived; its unit of measure is the batch's for ever.
    pub quantity: Quantity,
    pub received_at: DateTime<Utc>,
    /// Best-before: nothing may be reserved from the batch from this instant.
    pub expires_at: DateTime<Utc>,
    /// What the whole batch cost to procure.
    pub procurement_cost: Money,
    pub cold_chain: ColdChain,
}

/// Stock of the batch was set aside for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    pub order_id: OrderId,
    pub quantity: Quantity,
}

/// Why a reservation was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    OrderCancelled,
    HoldExpired,
    PaymentFailed,
    AllocationFailed,
    BatchExpired,
    /// Picking took less than was reserved; the rest goes back.
    PickedShort,
}

/// A reservation for an order was given back to available stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationReleased {
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub reason: ReleaseReason,
}

/// Reserved stock was picked for packing: it leaves the shelf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockPicked {
    pub order_id: OrderId,
    pub quantity: Quantity,
}

/// A stock count found a different on-hand quantity than the books.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjusted {
    /// On hand before the count, in the batch's unit of measure.
    pub previous_on_hand: u64,
    /// On hand as counted, in the batch's unit of measure (may be 0).
    pub counted_on_hand: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// Why stock was written off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteOffReason {
    Spoiled,
    Damaged,
    Expired,
    Quality,
}

/// Stock was removed from the batch as unsellable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockWrittenOff {
    pub quantity: Quantity,
    pub reason: WriteOffReason,
    /// Procurement cost of what was written off, pro-rated from the batch.
    pub cost: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// The batch is close to its expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiryWarningRaised {
    pub expires_at: DateTime<Utc>,
    /// On hand when the warning was raised, in the batch's unit of measure.
    pub on_hand: u64,
}

/// The batch passed its expiry: from now on only releases and write-offs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchExpired {
    pub expires_at: DateTime<Utc>,
    /// On hand at expiry, in the batch's unit of measure.
    pub on_hand: u64,
    /// Still reserved at expiry (to be released and re-allocated).
    pub reserved: u64,
}

event_enum! {
    /// Every event of an `InventoryBatch` stream.
    InventoryBatchEvent, stream = "InventoryBatch" {
        BatchReceived = "1.0",
        StockReserved = "1.0",
        ReservationReleased = "1.0",
        StockPicked = "1.0",
        StockAdjusted = "1.0",
        StockWrittenOff = "1.0",
        ExpiryWarningRaised = "1.0",
        BatchExpired = "1.0",
    }
}
