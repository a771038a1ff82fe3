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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::allocation::{fefo, Candidate};
use domain::clock::Clock;
use domain::delivery::{Delivery, DeliveryCommand, DeliveryError};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC, InventoryError};
use domain::order::{Order, OrderCommand as OC, OrderError, OrderStatus};
use domain::payment::{Payment, PaymentCommand as PC, PaymentError};
use domain::timer::{Timer, TimerCommand, TimerError};
use event_schemas::delivery::DeliveryEvent;
use event_schemas::inventory::{ColdChain, InventoryBatchEvent, ReleaseReason};
use event_schemas::order::{
    Allocation, CancellationReason, OrderEvent, OrderLine, OrderPlaced, PaymentMethod, RefundReason,
};
use event_schemas::payment::PaymentEvent;
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::values::{BatchId, DeliveryId, Money, OrderId, PaymentId, Quantity, Sku, Text};
use event_schemas::{AnyEvent, EventMetadata, RecordedEvent};
use serde::{Deserialize, Serialize};
use store::sql::{exec, fetch};
use store::{Aggregates, CommandError, HandlerError, Reactor, Store, StoreTx};
use uuid::Uuid;

use crate::gateway::{GatewayError, PaymentGateway};
use crate::{caused_by, fail, write_off_expired};

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
    pub store: Store,
    pub orders: Arc<Aggregates<Order>>,
    pub batches: Arc<Aggregates<InventoryBatch>>,
    pub payments: Arc<Aggregates<Payment>>,
    pub deliveries: Arc<Aggregates<Delivery>>,
    pub timers: Arc<Aggregates<Timer>>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub clock: Arc<dyn Clock>,
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

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::try_from(s.to_string()).expect("saga texts are short and non-empty")
}

/// `Ok` for success and for rejections that mean "already done".
fn done<E: std::error::Error + Send + Sync + 'static>(
    r: Result<store::Appended, CommandError<E>>,
    already: impl Fn(&E) -> bool,
) -> Result<bool, HandlerError> {
    match r {
        Ok(_) => Ok(true),
        Err(CommandError::Rejected(e)) if already(&e) => Ok(false),
        Err(e) => Err(fail(e)),
    }
}

enum Allocated {
    Ok(Vec<Allocation>),
    Short { sku: Sku, wanted: u64, found: u64 },
}

impl OrderSaga {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &Store,
        orders: Arc<Aggregates<Order>>,
        batches: Arc<Aggregates<InventoryBatch>>,
        payments: Arc<Aggregates<Payment>>,
        deliveries: Arc<Aggregates<Delivery>>,
        timers: Arc<Aggregates<Timer>>,
        gateway: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        config: SagaConfig,
    ) -> Self {
        OrderSaga {
            store: store.clone(),
            orders,
            batches,
            payments,
            deliveries,
            timers,
            gateway,
            clock,
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

    /// The order, at least as recent as `event` when the event is its own.
    async fn order(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<(Order, u64), HandlerError> {
        let id = order_id.to_string();
        let min = if event.stream_type == "Order" && event.stream_id == id {
            event.stream_version
        } else {
            0
        };
        Ok(self.orders.load_cached(&id, min).await?)
    }

    fn meta(&self, e: &RecordedEvent) -> EventMetadata {
        caused_by(e, self.clock.now(), "order-saga")
    }

    /// The saga's state for `order`: decided but uncommitted first, then
    /// committed.
    pub async fn state(&self, order: OrderId) -> Result<Option<SagaState>, HandlerError> {
        if let Some(s) = self.pending.lock().expect("saga lock").get(&order) {
            return Ok(Some(s.clone()));
        }
        load_state(&self.store, order).await
    }

    fn decide(&self, order: OrderId, state: SagaState) {
        self.pending.lock().expect("saga lock").insert(order, state);
    }

    /// Runs `step` for `order` unless the state already covers `event`.
    async fn for_order(
        &self,
        order: OrderId,
        event: &RecordedEvent,
        step: impl std::future::Future<
            Output = Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError>,
        >,
    ) -> Result<(), HandlerError> {
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
        if let Some((phase, allocations)) = step.await? {
            let allocations = allocations
                .or_else(|| before.as_ref().map(|s| s.allocations.clone()))
                .unwrap_or_default();
            self.decide(
                order,
                SagaState {
                    phase,
                    allocations,
                    position: event.global_position,
                },
            );
        }
        Ok(())
    }

    // ---------------------------------------------------------------- steps

    async fn on_placed(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let meta = self.meta(event);
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
                self.timers
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

    /// Reserves every line and confirms the allocation; `None` when the
    /// order was cancelled instead (out of stock, or cancelled meanwhile).
    async fn allocate_and_confirm(
        &self,
        placed: &OrderPlaced,
        event: &RecordedEvent,
        meta: &EventMetadata,
    ) -> Result<Option<Vec<Allocation>>, HandlerError> {
        // Candidates come from the stock read model: it must have seen every
        // batch received before the order.
        projections::wait_for_models(
            &self.store,
            &[projections::models::Model::Stock],
            event.global_position,
            self.config.read_model_patience,
        )
        .await
        .map_err(|at| {
            format!(
                "read models stuck at {at}, before {}",
                event.global_position
            )
        })?;
        let allocations = match self.allocate(placed, &placed.lines, None, meta).await? {
            Allocated::Ok(a) => a,
            Allocated::Short { sku, wanted, found } => {
                self.release_all(placed, None, ReleaseReason::AllocationFailed, meta)
                    .await?;
                let note = format!("{sku}: {found} of {wanted} available");
                self.cancel(placed.order_id, CancellationReason::OutOfStock, &note, meta)
                    .await?;
                return Ok(None);
            }
        };
        let confirmed = self
            .orders
            .execute(
                &placed.order_id.to_string(),
                OC::ConfirmAllocation {
                    allocations: allocations.clone(),
                },
                meta,
            )
            .await;
        if !done(confirmed, |e| {
            matches!(e, OrderError::IllegalTransition { .. })
        })? {
            // Cancelled while we allocated: give the stock back.
            self.release_all(placed, None, ReleaseReason::OrderCancelled, meta)
                .await?;
            return Ok(None);
        }
        Ok(Some(allocations))
    }

    async fn initiate_payment(
        &self,
        order_id: OrderId,
        method: PaymentMethod,
        amount_due: Money,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let pid = payment_id(order_id);
        let gateway = match method {
            PaymentMethod::Card => Some(text(self.gateway.name())),
            PaymentMethod::CashOnDelivery => None,
        };
        let r = self
            .payments
            .execute(
                &pid.to_string(),
                PC::InitiatePayment {
                    payment_id: pid,
                    order_id,
                    method,
                    gateway,
                    amount_due,
                },
                meta,
            )
            .await;
        done(r, |e| matches!(e, PaymentError::AlreadyInitiated))?;
        Ok(())
    }

    /// Asks the gateway for a hold; on approval the order is paid.
    async fn authorize(
        &self,
        order_id: OrderId,
        total: Money,
        meta: &EventMetadata,
    ) -> Result<Phase, HandlerError> {
        let pid = payment_id(order_id);
        let key = format!("{pid}:authorize");
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match self.gateway.authorize(&key, total).await {
                Err(GatewayError::Timeout) if attempt < self.config.gateway_attempts => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
                }
                other => break other,
            }
        };
        match answer {
            Ok(auth) => {
                let r = self
                    .payments
                    .execute(
                        &pid.to_string(),
                        PC::AuthorizePayment {
                            amount: auth.amount,
                            gateway_reference: text(&auth.reference),
                        },
                        meta,
                    )
                    .await;
                done(r, |e| matches!(e, PaymentError::AlreadyAuthorized))?;
                let r = self
                    .orders
                    .execute(
                        &order_id.to_string(),
                        OC::MarkPaid {
                            payment_id: pid,
                            amount: total,
                        },
                        meta,
                    )
                    .await;
                // Cancelled meanwhile: its compensation voids the hold.
                Ok(
                    match done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))? {
                        true => Phase::ReadyToPack,
                        false => Phase::Cancelled,
                    },
                )
            }
            Err(GatewayError::Declined { code }) => {
                let r = self
                    .payments
                    .execute(
                        &pid.to_string(),
                        PC::FailPayment {
                            code: text(&code),
                            message: text("the card was declined"),
                        },
                        meta,
                    )
                    .await;
                done(r, |e| matches!(e, PaymentError::Failed))?;
                self.cancel(
                    order_id,
                    CancellationReason::PaymentFailed,
                    &format!("payment declined: {code}"),
                    meta,
                )
                .await?;
                Ok(Phase::Cancelled)
            }
            // No answer: the payment stays pending; the reservation hold
            // decides.
            Err(GatewayError::Timeout) => Ok(Phase::AwaitingPayment),
            Err(e @ GatewayError::Invalid(_)) => Err(Box::new(e)),
        }
    }

    async fn cancel(
        &self,
        order_id: OrderId,
        reason: CancellationReason,
        note: &str,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let r = self
            .orders
            .execute(
                &order_id.to_string(),
                OC::CancelOrder {
                    reason,
                    note: Some(text(note)),
                },
                meta,
            )
            .await;
        done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))?;
        Ok(())
    }

    /// Every batch that might hold stock for the order's lines (all of the
    /// warehouse's batches of each SKU, expired or not), from the stock
    /// read model.
    async fn batches_of(
        &self,
        placed: &OrderPlaced,
        sku: &Sku,
    ) -> Result<Vec<BatchId>, HandlerError> {
        let rows = fetch(
            &self.store,
            "SELECT batch_id FROM rm_batches WHERE sku = ? AND warehouse_id = ? ORDER BY expires_at, batch_id",
            &[sku.as_str().into(), placed.warehouse_id.as_str().into()],
        )
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r["batch_id"].as_str()?.parse().ok())
            .collect())
    }

    /// Allocates `lines` of `placed` FEFO, reserving on each batch.
    /// Starts from what the order already holds (a step run again after a
    /// crash completes its plan); `avoid` is a batch not to hold stock on
    /// (one that expired). Stale candidates cost a re-plan, never an
    /// oversell: the batch aggregate has the last word on every reserve.
    async fn allocate(
        &self,
        placed: &OrderPlaced,
        lines: &[OrderLine],
        avoid: Option<BatchId>,
        meta: &EventMetadata,
    ) -> Result<Allocated, HandlerError> {
        let order_id = placed.order_id;
        let deliver_by = placed.delivery_slot.ends_at();
        let now = self.clock.now();
        let mut all = Vec::new();
        for line in lines {
            let ids = self.batches_of(placed, &line.sku).await?;
            let mut attempt = 0;
            let (mut held, expiry) = loop {
                attempt += 1;
                let mut held: Vec<Allocation> = Vec::new();
                let mut candidates = Vec::new();
                let mut expiry = HashMap::new();
                for id in &ids {
                    let (batch, _) = self.batches.load_cached(&id.to_string(), 0).await?;
                    let Some(info) = batch.info() else { continue };
                    expiry.insert(*id, info.expires_at);
                    let mine = batch.reserved_for(&order_id);
                    if Some(*id) == avoid {
                        continue;
                    }
                    if mine > 0 {
                        held.push(Allocation {
                            sku: line.sku.clone(),
                            batch_id: *id,
                            quantity: Quantity::new(line.quantity.uom(), mine)?,
                        });
                    }
                    // A batch the order already holds can give more (a
                    // line spanning two batches, one of which expired).
                    if !batch.is_expired() && info.expires_at > now && batch.available() > 0 {
                        candidates.push(Candidate {
                            batch_id: *id,
                            expires_at: info.expires_at,
                            available: batch.available(),
                        });
                    }
                }
                let have: u64 = held.iter().map(|a| a.quantity.amount()).sum();
                let wanted = line.quantity.amount();
                if have >= wanted {
                    break (held, expiry);
                }
                let rest = Quantity::new(line.quantity.uom(), wanted - have)?;
                let plan = match fefo(rest, &candidates, deliver_by, self.config.shelf_life_margin)
                {
                    Ok(p) => p,
                    Err(short) => {
                        return Ok(Allocated::Short {
                            sku: line.sku.clone(),
                            wanted,
                            found: have + short.available,
                        })
                    }
                };
                let mut lost_race = false;
                for take in plan {
                    // ReserveStock takes the order's total on the batch.
                    let before = held
                        .iter()
                        .find(|a| a.batch_id == take.batch_id)
                        .map_or(0, |a| a.quantity.amount());
                    let total =
                        Quantity::new(take.quantity.uom(), before + take.quantity.amount())?;
                    let r = self
                        .batches
                        .execute(
                            &take.batch_id.to_string(),
                            IC::ReserveStock {
                                order_id,
                                quantity: total,
                            },
                            meta,
                        )
                        .await;
                    match r {
                        Ok(_) => match held.iter_mut().find(|a| a.batch_id == take.batch_id) {
                            Some(a) => a.quantity = total,
                            None => held.push(Allocation {
                                sku: line.sku.clone(),
                                batch_id: take.batch_id,
                                quantity: total,
                            }),
                        },
                        Err(CommandError::Rejected(
                            InventoryError::InsufficientStock { .. } | InventoryError::Expired,
                        )) => {
                            lost_race = true;
                            break;
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                if !lost_race {
                    break (held, expiry);
                }
                if attempt >= 5 {
                    let found = held.iter().map(|a| a.quantity.amount()).sum();
                    return Ok(Allocated::Short {
                        sku: line.sku.clone(),
                        wanted,
                        found,
                    });
                }
            };
            // First-expiring first, as picking will take them.
            held.sort_by_key(|a| (expiry.get(&a.batch_id).copied(), a.batch_id));
            all.extend(held);
        }
        Ok(Allocated::Ok(all))
    }

    /// Releases whatever the order holds on any batch of its SKUs (or only
    /// on `only`), writing off what an expired batch gets back.
    async fn release_all(
        &self,
        placed: &OrderPlaced,
        only: Option<BatchId>,
        reason: ReleaseReason,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let mut seen = BTreeSet::new();
        for line in &placed.lines {
            for id in self.batches_of(placed, &line.sku).await? {
                if only.is_some_and(|o| o != id) || !seen.insert(id) {
                    continue;
                }
                self.release(placed.order_id, id, reason, meta).await?;
            }
        }
        Ok(())
    }

    async fn release(
        &self,
        order_id: OrderId,
        batch: BatchId,
        reason: ReleaseReason,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let id = batch.to_string();
        let (b, _) = self.batches.load_cached(&id, 0).await?;
        if b.reserved_for(&order_id) == 0 {
            return Ok(());
        }
        self.batches
            .execute(&id, IC::ReleaseReservation { order_id, reason }, meta)
            .await
            .map_err(fail)?;
        self.write_off_if_expired(batch, meta).await
    }

    /// Stock given back on an expired batch is written off (the spoilage
    /// manager wrote off only what was free when it expired).
    async fn write_off_if_expired(
        &self,
        batch: BatchId,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        write_off_expired(&self.batches, &batch.to_string(), meta).await
    }

    async fn cancel_hold(
        &self,
        order_id: OrderId,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let id = TimerKind::ReservationHold { order_id }
            .timer_id()
            .to_string();
        let r = self
            .timers
            .execute(
                &id,
                TimerCommand::Cancel {
                    reason: text("the order no longer waits for payment"),
                },
                meta,
            )
            .await;
        done(r, |e| {
            matches!(e, TimerError::AlreadyFired | TimerError::NotScheduled)
        })?;
        Ok(())
    }

    async fn on_paid(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        self.cancel_hold(order_id, &self.meta(event)).await?;
        Ok(Some((Phase::ReadyToPack, None)))
    }

    async fn on_hold_expired(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let meta = self.meta(event);
        let (order, _) = self.order(order_id, event).await?;
        if order.status() != Some(OrderStatus::Created)
            || order.placed().map(|p| p.payment_method) != Some(PaymentMethod::Card)
        {
            return Ok(None);
        }
        let pid = payment_id(order_id);
        let (payment, _) = self.payments.load_cached(&pid.to_string(), 0).await?;
        if payment.amount_authorized().is_some() && !payment.is_voided() {
            // Authorized but the order not yet marked: finish instead.
            let total = order.total().ok_or("order total overflows")?;
            let r = self
                .orders
                .execute(
                    &order_id.to_string(),
                    OC::MarkPaid {
                        payment_id: pid,
                        amount: total,
                    },
                    &meta,
                )
                .await;
            done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))?;
            return Ok(Some((Phase::ReadyToPack, None)));
        }
        if payment.amount_due().is_some() && !payment.is_failed() {
            let r = self
                .payments
                .execute(
                    &pid.to_string(),
                    PC::FailPayment {
                        code: text("timeout"),
                        message: text("not paid within the reservation hold"),
                    },
                    &meta,
                )
                .await;
            done(r, |e| {
                matches!(e, PaymentError::Failed | PaymentError::Voided)
            })?;
        }
        self.cancel(
            order_id,
            CancellationReason::PaymentTimeout,
            "not paid within the reservation hold",
            &meta,
        )
        .await?;
        Ok(Some((Phase::Cancelled, None)))
    }

    async fn on_cancelled(
        &self,
        order_id: OrderId,
        reason: CancellationReason,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let meta = self.meta(event);
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
        // The money: an authorized hold is voided (that is the customer's
        // refund: nothing is captured before delivery); a pending payment is
        // closed.
        let pid = payment_id(order_id);
        let (payment, _) = self.payments.load_cached(&pid.to_string(), 0).await?;
        let captured = payment.amount_captured().is_some_and(|m| !m.is_zero());
        if let (Some(held), Some(reference), false, false, false) = (
            payment.amount_authorized(),
            payment.authorization_reference().cloned(),
            payment.is_voided(),
            payment.is_failed(),
            captured,
        ) {
            self.gateway
                .void(&format!("{pid}:void"), reference.as_str(), held)
                .await
                .map_err(|e| Box::new(e) as HandlerError)?;
            let r = self
                .payments
                .execute(
                    &pid.to_string(),
                    PC::VoidPayment {
                        gateway_reference: reference,
                    },
                    &meta,
                )
                .await;
            done(r, |e| matches!(e, PaymentError::Voided))?;
        } else if payment.amount_due().is_some()
            && payment.method() == Some(PaymentMethod::Card)
            && !payment.is_failed()
            && !payment.is_voided()
            && !captured
        {
            let r = self
                .payments
                .execute(
                    &pid.to_string(),
                    PC::FailPayment {
                        code: text("order_cancelled"),
                        message: text("the order was cancelled before payment"),
                    },
                    &meta,
                )
                .await;
            done(r, |e| {
                matches!(e, PaymentError::Failed | PaymentError::Voided)
            })?;
        }
        if let Some(refundable) = order.refundable().filter(|m| !m.is_zero()) {
            let r = self
                .orders
                .execute(
                    &order_id.to_string(),
                    OC::RequestRefund {
                        amount: refundable,
                        reason: RefundReason::OrderCancelled,
                    },
                    &meta,
                )
                .await;
            done(r, |e| matches!(e, OrderError::RefundExceedsPaid { .. }))?;
        }
        Ok(Some((Phase::Cancelled, Some(vec![]))))
    }

    async fn on_packed(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let meta = self.meta(event);
        let (order, _) = self.order(order_id, event).await?;
        let (Some(placed), Some(packed)) = (order.placed().cloned(), order.packed().cloned())
        else {
            return Ok(None);
        };
        // Pick what was packed from each allocation, first-expiring first;
        // what is left of a reservation goes back.
        let mut chilled = false;
        for line in &packed.lines {
            let mut left = line.packed_quantity.amount();
            for a in order.allocations().iter().filter(|a| a.sku == line.sku) {
                let id = a.batch_id.to_string();
                let take = left.min(a.quantity.amount());
                left -= take;
                let (batch, _) = self.batches.load_cached(&id, 0).await?;
                chilled |= batch
                    .info()
                    .is_some_and(|i| i.cold_chain != ColdChain::Ambient);
                let command = match take {
                    0 => IC::ReleaseReservation {
                        order_id,
                        reason: ReleaseReason::PickedShort,
                    },
                    n => IC::PickStock {
                        order_id,
                        quantity: Quantity::new(a.quantity.uom(), n)?,
                    },
                };
                let r = self.batches.execute(&id, command, &meta).await;
                if !done(r, |e| matches!(e, InventoryError::Expired))? {
                    tracing::warn!(order = %order_id, batch = %id, "batch expired before picking; nothing picked from it");
                }
            }
        }
        let did = delivery_id(order_id);
        let r = self
            .deliveries
            .execute(
                &did.to_string(),
                DeliveryCommand::CreateDelivery {
                    delivery_id: did,
                    order_id,
                    slot: placed.delivery_slot,
                    address: placed.delivery_address.clone(),
                    cold_chain: chilled,
                },
                &meta,
            )
            .await;
        done(r, |e| matches!(e, DeliveryError::AlreadyCreated))?;
        Ok(Some((Phase::Packed, None)))
    }

    async fn on_delivery(
        &self,
        event: &RecordedEvent,
        picked_up: bool,
    ) -> Result<(), HandlerError> {
        let meta = self.meta(event);
        let (delivery, _) = self
            .deliveries
            .load_cached(&event.stream_id, event.stream_version)
            .await?;
        let Some(order_id) = delivery.order_id() else {
            return Ok(());
        };
        let did: DeliveryId = event.stream_id.parse()?;
        self.for_order(order_id, event, async {
            let (order, _) = self.order(order_id, event).await?;
            let (want, command, phase) = if picked_up {
                (
                    OrderStatus::Packed,
                    OC::ShipOrder { delivery_id: did },
                    Phase::Shipped,
                )
            } else {
                (
                    OrderStatus::Shipped,
                    OC::MarkDelivered { delivery_id: did },
                    Phase::Delivered,
                )
            };
            if order.status() != Some(want) {
                return Ok(None);
            }
            self.orders
                .execute(&order_id.to_string(), command, &meta)
                .await
                .map_err(fail)?;
            Ok(Some((phase, None)))
        })
        .await
    }

    async fn on_delivered(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let meta = self.meta(event);
        let (order, _) = self.order(order_id, event).await?;
        if order.placed().map(|p| p.payment_method) != Some(PaymentMethod::Card) {
            // Cash is collected by the rider (CashCollected completes it).
            return Ok(Some((Phase::Delivered, None)));
        }
        let pid = payment_id(order_id);
        let (payment, _) = self.payments.load_cached(&pid.to_string(), 0).await?;
        let (Some(held), Some(reference)) = (
            payment.amount_authorized(),
            payment.authorization_reference().cloned(),
        ) else {
            return Ok(Some((Phase::Delivered, None)));
        };
        if payment.amount_captured().is_some_and(|m| !m.is_zero()) {
            return Ok(Some((Phase::Completed, None)));
        }
        // The packed total (weighed goods may come out lighter); the rest of
        // the hold lapses.
        let total = order.total().ok_or("order total overflows")?;
        let amount = if total.amount_minor() <= held.amount_minor() {
            total
        } else {
            held
        };
        let capture = self
            .gateway
            .capture(&format!("{pid}:capture"), reference.as_str(), amount)
            .await
            .map_err(|e| Box::new(e) as HandlerError)?;
        self.payments
            .execute(
                &pid.to_string(),
                PC::CapturePayment {
                    amount: capture.amount,
                    gateway_reference: text(&capture.reference),
                },
                &meta,
            )
            .await
            .map_err(fail)?;
        Ok(Some((Phase::Completed, None)))
    }

    /// Confirms an order's new allocation (unless it has moved on) and
    /// keeps its phase.
    async fn reconfirm(
        &self,
        order_id: OrderId,
        allocations: Vec<Allocation>,
        meta: &EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let r = self
            .orders
            .execute(
                &order_id.to_string(),
                OC::ConfirmAllocation {
                    allocations: allocations.clone(),
                },
                meta,
            )
            .await;
        done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))?;
        let phase = self
            .state(order_id)
            .await?
            .map_or(Phase::ReadyToPack, |s| s.phase);
        Ok(Some((phase, Some(allocations))))
    }

    /// Each open reservation on an expired batch moves to other batches,
    /// or its order is cancelled.
    async fn on_batch_expired(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let meta = self.meta(event);
        let batch_id: BatchId = event.stream_id.parse()?;
        let (batch, _) = self
            .batches
            .load_cached(&event.stream_id, event.stream_version)
            .await?;
        let holders: Vec<OrderId> = batch.reservations().map(|(o, _)| o).collect();
        for order_id in holders {
            self.for_order(order_id, event, async {
                let (order, _) = self.order(order_id, event).await?;
                let placed = order.placed().cloned();
                let live = matches!(
                    order.status(),
                    Some(OrderStatus::Created | OrderStatus::Paid)
                ) && order.is_allocated();
                let Some(placed) = placed.filter(|_| live) else {
                    // Not an order that still needs this stock.
                    self.release(order_id, batch_id, ReleaseReason::BatchExpired, &meta)
                        .await?;
                    return Ok(None);
                };
                let open: Vec<OrderLine> = order.open_lines().cloned().collect();
                match self.allocate(&placed, &open, Some(batch_id), &meta).await? {
                    Allocated::Ok(allocations) => {
                        self.release(order_id, batch_id, ReleaseReason::BatchExpired, &meta)
                            .await?;
                        self.reconfirm(order_id, allocations, &meta).await
                    }
                    Allocated::Short { sku, wanted, found } => {
                        let note = format!(
                            "batch {batch_id} expired; {sku}: only {found} of {wanted} elsewhere"
                        );
                        if open.len() == 1 {
                            self.cancel(order_id, CancellationReason::BatchExpired, &note, &meta)
                                .await?;
                            return Ok(None);
                        }
                        // The order goes on without the line: its stock
                        // goes back, a paid line is refunded.
                        for id in self.batches_of(&placed, &sku).await? {
                            self.release(order_id, id, ReleaseReason::BatchExpired, &meta)
                                .await?;
                        }
                        let r = self
                            .orders
                            .execute(
                                &order_id.to_string(),
                                OC::CancelLine {
                                    sku: sku.clone(),
                                    reason: CancellationReason::BatchExpired,
                                    note: Some(text(&note)),
                                },
                                &meta,
                            )
                            .await;
                        done(r, |e| matches!(e, OrderError::NoSuchLine(_)))?;
                        let rest: Vec<Allocation> = order
                            .allocations()
                            .iter()
                            .filter(|a| a.sku != sku)
                            .cloned()
                            .collect();
                        self.reconfirm(order_id, rest, &meta).await
                    }
                }
            })
            .await?;
        }
        self.write_off_if_expired(batch_id, &meta).await
    }
}

#[async_trait]
impl Reactor for OrderSaga {
    /// The events `react` acts on; an order's own events only in its shard.
    fn wants(&self, event: &RecordedEvent) -> bool {
        match (event.stream_type.as_str(), event.event_type.as_str()) {
            (
                "Order",
                "OrderPlaced" | "OrderPaid" | "OrderPacked" | "OrderDelivered" | "OrderCancelled",
            ) => event
                .stream_id
                .parse::<OrderId>()
                .map_or(true, |o| self.mine(o)),
            ("Delivery", "DeliveryPickedUp" | "DeliveryCompleted")
            | ("Payment", "CashCollected")
            | ("Timer", "TimerFired")
            | ("InventoryBatch", "BatchExpired") => true,
            _ => false,
        }
    }

    /// An order's own events: different orders' steps may run at once.
    /// The rest (deliveries, payments, timers, expired batches) reach an
    /// order through a load, so each runs alone.
    fn key(&self, event: &RecordedEvent) -> Option<String> {
        (event.stream_type == "Order").then(|| event.stream_id.clone())
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if !self.wants(event) {
            return Ok(());
        }
        match event.decode()? {
            AnyEvent::Order(e) => {
                let order_id: OrderId = event.stream_id.parse()?;
                match e {
                    OrderEvent::OrderPlaced(_) => {
                        self.for_order(order_id, event, self.on_placed(order_id, event))
                            .await
                    }
                    OrderEvent::OrderPaid(_) => {
                        self.for_order(order_id, event, self.on_paid(order_id, event))
                            .await
                    }
                    OrderEvent::OrderPacked(_) => {
                        self.for_order(order_id, event, self.on_packed(order_id, event))
                            .await
                    }
                    OrderEvent::OrderDelivered(_) => {
                        self.for_order(order_id, event, self.on_delivered(order_id, event))
                            .await
                    }
                    OrderEvent::OrderCancelled(c) => {
                        self.for_order(
                            order_id,
                            event,
                            self.on_cancelled(order_id, c.reason, event),
                        )
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
                    .payments
                    .load_cached(&event.stream_id, event.stream_version)
                    .await?;
                let Some(order_id) = payment.order_id() else {
                    return Ok(());
                };
                self.for_order(order_id, event, async {
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
                    .timers
                    .load_cached(&event.stream_id, event.stream_version)
                    .await?;
                match timer.kind() {
                    Some(&TimerKind::ReservationHold { order_id }) => {
                        self.for_order(order_id, event, self.on_hold_expired(order_id, event))
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
        for (order, state) in decided {
            exec(
                tx,
                "INSERT INTO saga_orders (order_id, phase, state, position, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (order_id) DO UPDATE SET phase = excluded.phase, state = excluded.state, \
                 position = excluded.position, updated_at = excluded.updated_at \
                 WHERE saga_orders.position < excluded.position",
                &[
                    order.to_string().into(),
                    state.phase.as_str().into(),
                    serde_json::to_string(&state)?.into(),
                    state.position.into(),
                    projections::models::ts(&self.clock.now()).into(),
                ],
            )
            .await?;
        }
        Ok(())
    }
}

/// The phase an order's own state implies.
fn phase_of(order: &Order) -> Option<Phase> {
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
        "SELECT state FROM saga_orders WHERE order_id = ?",
        &[order.to_string().into()],
    )
    .await?;
    match rows.first().and_then(|r| r["state"].as_str()) {
        Some(s) => Ok(Some(serde_json::from_str(s)?)),
        None => Ok(None),
    }
}
