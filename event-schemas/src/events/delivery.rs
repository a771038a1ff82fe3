//! Events of the `Delivery` stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event_enum;
use crate::values::*;

/// A delivery for a packed order was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryCreated {
    pub delivery_id: DeliveryId,
    pub order_id: OrderId,
    pub slot: DeliverySlot,
    pub address: Address,
    /// The parcel holds chilled or frozen goods.
    pub cold_chain: bool,
}

/// A rider was given the delivery (again, after a reassignment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiderAssigned {
    pub rider_id: RiderId,
}

/// The rider collected the parcel from the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPickedUp {
    pub rider_id: RiderId,
}

/// The rider's device reported a position (live tracking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationReported {
    pub location: GeoPoint,
}

/// How the hand-over was proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProofOfDelivery {
    Signature { signed_by: Text<100> },
    Photo { reference: Text<200> },
    Pin { pin_verified: bool },
}

/// The parcel was handed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryCompleted {
    pub proof: ProofOfDelivery,
}

/// The rider could not hand the parcel over; it returns for another attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAttemptFailed {
    pub reason: Note,
}

event_enum! {
    /// Every event of a `Delivery` stream.
    DeliveryEvent, stream = "Delivery" {
        DeliveryCreated = "1.0",
        RiderAssigned = "1.0",
        DeliveryPickedUp = "1.0",
        LocationReported = "1.0",
        DeliveryCompleted = "1.0",
        DeliveryAttemptFailed = "1.0",
    }
}
