//! The saga's own record of each order (`saga_orders`, owned here): its
//! phase, its allocations and the last log position applied, written in
//! the same transaction as the subscription's checkpoint.

use chrono::{DateTime, Utc};
use domain::order::{Order, OrderStatus};
use event_schemas::order::{Allocation, PaymentMethod};
use event_schemas::values::OrderId;
use serde::{Deserialize, Serialize};
use store::sql::{exec, fetch};
use store::{HandlerError, Store, StoreTx};
use uuid::Uuid;

use super::OrderSaga;

const TABLE: &str = "saga_orders";

/// Where an order's saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Allocating,
    AwaitingPayment,
    ReadyToPack,
    Packed,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Allocating => "allocating",
            Phase::AwaitingPayment => "awaiting_payment",
            Phase::ReadyToPack => "ready_to_pack",
            Phase::Packed => "packed",
            Phase::Shipped => "shipped",
            Phase::Delivered => "delivered",
            Phase::Completed => "completed",
            Phase::Cancelled => "cancelled",
        }
    }
}

/// The saga's own record of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    pub phase: Phase,
    /// What the saga reserved and confirmed.
    pub allocations: Vec<Allocation>,
    /// The last log position applied for this order.
    pub position: u64,
    /// The order's own flow (its placement's correlation id), which every
    /// command the saga sends about it carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
}

impl OrderSaga {
    /// The saga's state for `order`: decided but uncommitted first, then
    /// committed.
    pub async fn state(&self, order: OrderId) -> Result<Option<SagaState>, HandlerError> {
        if let Some(s) = self.pending.lock().expect("saga lock").get(&order) {
            return Ok(Some(s.clone()));
        }
        load_state(&self.write.store, order).await
    }

    pub(super) fn decide(&self, order: OrderId, state: SagaState) {
        self.pending.lock().expect("saga lock").insert(order, state);
    }
}

/// Commits `state` for `order` in the checkpoint's transaction, unless a
/// later position is already recorded.
pub(super) async fn save(
    tx: &mut StoreTx,
    order: OrderId,
    state: &SagaState,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    exec(
        tx,
        &format!(
            "INSERT INTO {TABLE} (order_id, phase, state, position, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (order_id) DO UPDATE SET phase = excluded.phase, state = excluded.state, \
             position = excluded.position, updated_at = excluded.updated_at \
             WHERE {TABLE}.position < excluded.position"
        ),
        &[
            order.to_string().into(),
            state.phase.as_str().into(),
            serde_json::to_string(state)?.into(),
            state.position.into(),
            projections::models::ts(&now).into(),
        ],
    )
    .await?;
    Ok(())
}

/// The phase an order's own state implies.
pub(super) fn phase_of(order: &Order) -> Option<Phase> {
    let cod = order.placed()?.payment_method == PaymentMethod::CashOnDelivery;
    Some(match order.status()? {
        OrderStatus::Created if !order.is_allocated() => Phase::Allocating,
        OrderStatus::Created if cod => Phase::ReadyToPack,
        OrderStatus::Created => Phase::AwaitingPayment,
        OrderStatus::Paid => Phase::ReadyToPack,
        OrderStatus::Packed => Phase::Packed,
        OrderStatus::Shipped => Phase::Shipped,
        OrderStatus::Delivered => Phase::Delivered,
        OrderStatus::Cancelled => Phase::Cancelled,
    })
}

/// The committed saga state of one order.
pub async fn load_state(store: &Store, order: OrderId) -> Result<Option<SagaState>, HandlerError> {
    let rows = fetch(
        store,
        &format!("SELECT state FROM {TABLE} WHERE order_id = ?"),
        &[order.to_string().into()],
    )
    .await?;
    match rows.first().and_then(|r| r["state"].as_str()) {
        Some(s) => Ok(Some(serde_json::from_str(s)?)),
        None => Ok(None),
    }
}
