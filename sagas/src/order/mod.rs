//! The order fulfilment saga: moves each order from placed to delivered,
//! and compensates when a step cannot be taken.
//!
//! ```text
//! OrderPlaced ─ allocate FEFO, reserve on each batch ─┬─ all reserved → AllocationConfirmed
//!                                                     └─ short → release all, cancel (out_of_stock)
//!   card: hold timer + PaymentInitiated → gateway authorize ─┬─ approved → PaymentAuthorized, OrderPaid
//!                                                            ├─ declined → PaymentFailed, cancel (payment_failed)
//!                                                            └─ no answer → the hold timer cancels (payment_timeout)
//!   cash on delivery: PaymentInitiated (collected at the door)
//! OrderPaid → hold timer cancelled
//! OrderPacked → stock picked per allocation (the rest released), DeliveryCreated
//! DeliveryPickedUp → OrderShipped;  DeliveryCompleted → OrderDelivered
//! OrderDelivered → card: capture the packed total
//! OrderCancelled (by anyone) → release every reservation, cancel the hold,
//!   void an authorized payment (the customer's refund) or close a pending one
//! BatchExpired → each open reservation on it re-allocated from other
//!   batches, or the order cancelled (batch_expired)
//! ```
//!
//! **Delivery and idempotency.** The saga is a [`Reactor`]: it sends
//! commands to aggregates (and calls the gateway) outside the checkpoint's
//! transaction, then its state (`saga_orders`: phase, allocations, and the
//! last log position applied per order) commits in the *same* transaction
//! as the checkpoint ([`Reactor::settle`]). A redelivered event whose
//! position the state already covers is skipped. A crash between the
//! commands and the commit redelivers the event, and every step is safe to
//! run again: each decides from the aggregates' current state (which have
//! the last word), every stream it creates has an id derived from the order
//! (payment, delivery, hold timer), every gateway call carries a key derived
//! from the payment, and every command carries the triggering event as its
//! causation. Re-planning an allocation starts from what the order already
//! holds on each batch, so a half-made allocation is completed, never
//! duplicated or leaked.

mod allocation;
mod fulfilment;
mod payment;
mod state;
mod steps;

use state::phase_of;
pub use state::{load_state, Phase, SagaState};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::order::OrderStatus;
use domain::timer::TimerCommand;
use event_schemas::delivery::DeliveryEvent;
use event_schemas::inventory::{InventoryBatchEvent, ReleaseReason};
use event_schemas::order::{Allocation, CancellationReason, OrderEvent, PaymentMethod};
use event_schemas::payment::PaymentEvent;
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::values::{DeliveryId, OrderId, PaymentId};
use event_schemas::{AnyEvent, EventMetadata, RecordedEvent};
use store::{HandlerError, Reactor, StoreTx};
use uuid::Uuid;
use write_side::WriteSide;

use crate::fail;
use crate::gateway::PaymentGateway;

/// The subscription's name (its checkpoint in `subscriptions`).
pub const SUBSCRIPTION: &str = "order-saga";

const NAMESPACE: Uuid = Uuid::from_u128(0x0b7e_5a3c_91d2_4c6f_8e0a_7d45_c3b1_96f2);

/// The payment the saga opens for an order: one per order, its id derived
/// from the order's, so a repeated step finds it instead of opening another.
pub fn payment_id(order: OrderId) -> PaymentId {
    PaymentId::from_uuid(Uuid::new_v5(
        &NAMESPACE,
        format!("payment:{order}").as_bytes(),
    ))
}

/// The delivery the saga creates for a packed order.
pub fn delivery_id(order: OrderId) -> DeliveryId {
    DeliveryId::from_uuid(Uuid::new_v5(
        &NAMESPACE,
        format!("delivery:{order}").as_bytes(),
    ))
}
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// An unpaid card order is cancelled after this long.
    pub reservation_hold: chrono::Duration,
    /// Shelf life a batch must still have at the end of the delivery slot.
    pub shelf_life_margin: chrono::Duration,
    /// Gateway attempts on timeouts before leaving it to the hold timer.
    pub gateway_attempts: usize,
    /// How long to wait for the stock read model to reach an event.
    pub read_model_patience: Duration,
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            reservation_hold: chrono::Duration::minutes(15),
            shelf_life_margin: chrono::Duration::hours(24),
            gateway_attempts: 3,
            read_model_patience: Duration::from_secs(30),
        }
    }
}

pub struct OrderSaga {
    /// The command handlers it sends every command through.
    pub write: WriteSide,
    pub gateway: Arc<dyn PaymentGateway>,
    pub config: SagaConfig,
    /// States decided by `react` and not yet committed by `settle`.
    pending: Mutex<HashMap<OrderId, SagaState>>,
    /// This instance handles the orders whose id falls in `shard` of
    /// `shards` (each shard is its own subscription, run concurrently).
    shard: u32,
    shards: u32,
}

/// The subscription of shard `i`: `order-saga`, then `order-saga-1`, ….
pub fn subscription_name(shard: u32) -> String {
    match shard {
        0 => SUBSCRIPTION.to_string(),
        i => format!("{SUBSCRIPTION}-{i}"),
    }
}

impl OrderSaga {
    pub fn new(write: &WriteSide, gateway: Arc<dyn PaymentGateway>, config: SagaConfig) -> Self {
        OrderSaga {
            write: write.clone(),
            gateway,
            config,
            pending: Mutex::new(HashMap::new()),
            shard: 0,
            shards: 1,
        }
    }

    /// This instance serves shard `shard` of `shards` (orders are spread
    /// by id; every order belongs to exactly one shard).
    pub fn sharded(mut self, shard: u32, shards: u32) -> Self {
        assert!(shard < shards, "shard {shard} of {shards}");
        self.shard = shard;
        self.shards = shards;
        self
    }

    fn mine(&self, order: OrderId) -> bool {
        (order.as_uuid().as_u128() % self.shards as u128) as u32 == self.shard
    }

    /// Runs `step` for `order` unless the state already covers `event`,
    /// giving it the metadata of the commands it sends: the order's own
    /// correlation id (whatever flow `event` came from, which stays their
    /// causation).
    async fn for_order<F>(
        &self,
        order: OrderId,
        event: &RecordedEvent,
        step: impl FnOnce(EventMetadata) -> F,
    ) -> Result<(), HandlerError>
    where
        F: std::future::Future<
            Output = Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError>,
        >,
    {
        if !self.mine(order) {
            return Ok(());
        }
        let before = self.state(order).await?;
        if before
            .as_ref()
            .is_some_and(|s| s.position >= event.global_position)
        {
            return Ok(());
        }
        let correlation = match before.as_ref().and_then(|s| s.correlation_id) {
            Some(c) => c,
            None => self.order_correlation(order, event).await?,
        };
        if let Some((phase, allocations)) = step(self.order_meta(event, correlation)).await? {
            let allocations = allocations
                .or_else(|| before.as_ref().map(|s| s.allocations.clone()))
                .unwrap_or_default();
            self.decide(
                order,
                SagaState {
                    phase,
                    allocations,
                    position: event.global_position,
                    correlation_id: Some(correlation),
                },
            );
        }
        Ok(())
    }

    async fn on_placed(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let (order, _) = self.order(order_id, event).await?;
        if order.status() != Some(OrderStatus::Created) {
            // Past this step (the saga's state was lost, or the order moved
            // on without it): record what the aggregate says.
            return Ok(phase_of(&order).map(|p| (p, Some(order.allocations().to_vec()))));
        }
        let placed = order.placed().expect("created orders are placed").clone();
        // Run again after a crash, the step resumes where it stopped.
        let allocations = match order.is_allocated() {
            true => order.allocations().to_vec(),
            false => match self.allocate_and_confirm(&placed, event, &meta).await? {
                Some(a) => a,
                None => return Ok(Some((Phase::Cancelled, Some(vec![])))),
            },
        };
        let total = order.total().ok_or("order total overflows")?;
        let phase = match placed.payment_method {
            PaymentMethod::CashOnDelivery => {
                self.initiate_payment(order_id, PaymentMethod::CashOnDelivery, total, &meta)
                    .await?;
                Phase::ReadyToPack
            }
            PaymentMethod::Card => {
                let hold = TimerKind::ReservationHold { order_id };
                // From placement, so a step run again sets the same time.
                let due_at = event.occurred_at + self.config.reservation_hold;
                self.write
                    .timers
                    .execute(
                        &hold.timer_id().to_string(),
                        TimerCommand::Schedule {
                            timer: hold,
                            due_at,
                        },
                        &meta,
                    )
                    .await
                    .map_err(fail)?;
                self.initiate_payment(order_id, PaymentMethod::Card, total, &meta)
                    .await?;
                self.authorize(order_id, total, &meta).await?
            }
        };
        Ok(Some((phase, Some(allocations))))
    }

    async fn on_cancelled(
        &self,
        order_id: OrderId,
        reason: CancellationReason,
        event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let (order, _) = self.order(order_id, event).await?;
        let Some(placed) = order.placed().cloned() else {
            return Ok(None);
        };
        let release = match reason {
            CancellationReason::OutOfStock => ReleaseReason::AllocationFailed,
            CancellationReason::PaymentFailed => ReleaseReason::PaymentFailed,
            CancellationReason::PaymentTimeout => ReleaseReason::HoldExpired,
            CancellationReason::BatchExpired => ReleaseReason::BatchExpired,
            _ => ReleaseReason::OrderCancelled,
        };
        self.release_all(&placed, None, release, &meta).await?;
        self.cancel_hold(order_id, &meta).await?;
        self.compensate_payment(order_id, &order, &meta).await?;
        Ok(Some((Phase::Cancelled, Some(vec![]))))
    }
}

#[async_trait]
impl Reactor for OrderSaga {
    /// The events `react` acts on; an order's own events only in its shard.
    fn wants(&self, event: &RecordedEvent) -> bool {
        match (event.stream_type.as_str(), event.event_type.as_str()) {
            (
                OrderEvent::STREAM_TYPE,
                "OrderPlaced" | "OrderPaid" | "OrderPacked" | "OrderDelivered" | "OrderCancelled",
            ) => event
                .stream_id
                .parse::<OrderId>()
                .map_or(true, |o| self.mine(o)),
            (DeliveryEvent::STREAM_TYPE, "DeliveryPickedUp" | "DeliveryCompleted")
            | (PaymentEvent::STREAM_TYPE, "CashCollected")
            | (TimerEvent::STREAM_TYPE, "TimerFired")
            | (InventoryBatchEvent::STREAM_TYPE, "BatchExpired") => true,
            _ => false,
        }
    }

    /// An order's own events: different orders' steps may run at once.
    /// The rest (deliveries, payments, timers, expired batches) reach an
    /// order through a load, so each runs alone.
    fn key(&self, event: &RecordedEvent) -> Option<String> {
        (event.stream_type == OrderEvent::STREAM_TYPE).then(|| event.stream_id.clone())
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if !self.wants(event) {
            return Ok(());
        }
        metrics::counter!("freshledger_saga_steps_total", "saga" => "order", "event" => event.event_type.clone())
            .increment(1);
        match event.decode()? {
            AnyEvent::Order(e) => {
                let order_id: OrderId = event.stream_id.parse()?;
                match e {
                    OrderEvent::OrderPlaced(_) => {
                        self.for_order(order_id, event, |meta| {
                            self.on_placed(order_id, event, meta)
                        })
                        .await
                    }
                    OrderEvent::OrderPaid(_) => {
                        self.for_order(order_id, event, |meta| self.on_paid(order_id, event, meta))
                            .await
                    }
                    OrderEvent::OrderPacked(_) => {
                        self.for_order(order_id, event, |meta| {
                            self.on_packed(order_id, event, meta)
                        })
                        .await
                    }
                    OrderEvent::OrderDelivered(_) => {
                        self.for_order(order_id, event, |meta| {
                            self.on_delivered(order_id, event, meta)
                        })
                        .await
                    }
                    OrderEvent::OrderCancelled(c) => {
                        self.for_order(order_id, event, |meta| {
                            self.on_cancelled(order_id, c.reason, event, meta)
                        })
                        .await
                    }
                    _ => Ok(()),
                }
            }
            AnyEvent::Delivery(DeliveryEvent::DeliveryPickedUp(_)) => {
                self.on_delivery(event, true).await
            }
            AnyEvent::Delivery(DeliveryEvent::DeliveryCompleted(_)) => {
                self.on_delivery(event, false).await
            }
            AnyEvent::Payment(PaymentEvent::CashCollected(_)) => {
                let (payment, _) = self
                    .write
                    .payments
                    .load_cached(&event.stream_id, event.stream_version)
                    .await?;
                let Some(order_id) = payment.order_id() else {
                    return Ok(());
                };
                self.for_order(order_id, event, |_| async {
                    let delivered = self
                        .state(order_id)
                        .await?
                        .is_some_and(|s| s.phase == Phase::Delivered);
                    Ok(delivered.then_some((Phase::Completed, None)))
                })
                .await
            }
            AnyEvent::Timer(TimerEvent::TimerFired(_)) => {
                let (timer, _) = self
                    .write
                    .timers
                    .load_cached(&event.stream_id, event.stream_version)
                    .await?;
                match timer.kind() {
                    Some(&TimerKind::ReservationHold { order_id }) => {
                        self.for_order(order_id, event, |meta| {
                            self.on_hold_expired(order_id, event, meta)
                        })
                        .await
                    }
                    _ => Ok(()),
                }
            }
            AnyEvent::InventoryBatch(InventoryBatchEvent::BatchExpired(_)) => {
                self.on_batch_expired(event).await
            }
            _ => Ok(()),
        }
    }

    async fn settle(&self, tx: &mut StoreTx, event: &RecordedEvent) -> Result<(), HandlerError> {
        let decided: Vec<(OrderId, SagaState)> = {
            let mut pending = self.pending.lock().expect("saga lock");
            let ids: Vec<OrderId> = pending
                .iter()
                .filter(|(_, s)| s.position == event.global_position)
                .map(|(o, _)| *o)
                .collect();
            ids.into_iter()
                .filter_map(|o| pending.remove(&o).map(|s| (o, s)))
                .collect()
        };
        let now = self.write.clock.now();
        for (order, state) in decided {
            state::save(tx, order, &state, now).await?;
        }
        Ok(())
    }
}
