//! Events of the `Payment` stream. Amounts authorized, captured and refunded
//! are only ever derived by folding these events.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event_enum;
use super::order::PaymentMethod;
use crate::values::*;

/// A payment gateway's name (`stripe`, `adyen`, `simulated`).
pub type GatewayName = Text<64>;
/// A reference the gateway gave us (charge id, refund id).
pub type GatewayReference = Text<128>;

/// A payment for an order was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInitiated {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub method: PaymentMethod,
    /// The card gateway; absent for cash on delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayName>,
    pub amount_due: Money,
}

/// The gateway put a hold on the customer's card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAuthorized {
    pub amount: Money,
    pub gateway_reference: GatewayReference,
}

/// Authorized money was taken (possibly less than authorized, e.g. when
/// weighed goods came out lighter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCaptured {
    pub amount: Money,
    pub gateway_reference: GatewayReference,
}

/// The gateway declined, or the payment timed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    /// A machine-readable code (`card_declined`, `timeout`).
    pub code: Text<64>,
    pub message: Note,
}

/// Captured or collected money went back to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_reference: Option<GatewayReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// The hold on the card was released without taking any money (the order
/// was cancelled before delivery). For the customer this is the refund of
/// an authorized, uncaptured payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentVoided {
    /// What was held and is now released.
    pub amount: Money,
    pub gateway_reference: GatewayReference,
}

/// A rider collected cash at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CashCollected {
    pub amount: Money,
    pub rider_id: RiderId,
}

event_enum! {
    /// Every event of a `Payment` stream.
    PaymentEvent, stream = "Payment" {
        PaymentInitiated = "1.0",
        PaymentAuthorized = "1.0",
        PaymentCaptured = "1.0",
        PaymentFailed = "1.0",
        PaymentRefunded = "1.0",
        CashCollected = "1.0",
        PaymentVoided = "1.0",
    }
}
