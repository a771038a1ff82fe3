//! Allocation: first-expiring-first reservations across batches for an
//! order's lines, and moving them when a batch expires under an order.

use std::collections::HashMap;

use domain::allocation::{fefo, Candidate};
use domain::inventory::{InventoryBatchCommand as IC, InventoryError};
use domain::order::{OrderCommand as OC, OrderError, OrderStatus};
use event_schemas::inventory::ReleaseReason;
use event_schemas::order::{Allocation, CancellationReason, OrderLine, OrderPlaced};
use event_schemas::values::{BatchId, OrderId, Quantity, Sku};
use event_schemas::{EventMetadata, RecordedEvent};
use store::{CommandError, HandlerError};

use super::steps::{done, text};
use super::{OrderSaga, Phase};
use crate::fail;

pub(super) enum Allocated {
    Ok(Vec<Allocation>),
    Short { sku: Sku, wanted: u64, found: u64 },
}

impl OrderSaga {
    /// Reserves every line and confirms the allocation; `None` when the
    /// order was cancelled instead (out of stock, or cancelled meanwhile).
    pub(super) async fn allocate_and_confirm(
        &self,
        placed: &OrderPlaced,
        event: &RecordedEvent,
        meta: &EventMetadata,
    ) -> Result<Option<Vec<Allocation>>, HandlerError> {
        // Candidates come from the stock read model: it must have seen every
        // batch received before the order.
        projections::wait_for_models(
            &self.write.store,
            &[projections::Model::STOCK],
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
            .write
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

    /// Every batch that might hold stock for the order's lines (all of the
    /// warehouse's batches of each SKU, expired or not), from the stock
    /// read model.
    pub(super) async fn batches_of(
        &self,
        placed: &OrderPlaced,
        sku: &Sku,
    ) -> Result<Vec<BatchId>, HandlerError> {
        Ok(projections::models::batch_ids(&self.write.store, sku, &placed.warehouse_id).await?)
    }

    /// Allocates `lines` of `placed` FEFO, reserving on each batch.
    /// Starts from what the order already holds (a step run again after a
    /// crash completes its plan); `avoid` is a batch not to hold stock on
    /// (one that expired). Stale candidates cost a re-plan, never an
    /// oversell: the batch aggregate has the last word on every reserve.
    pub(super) async fn allocate(
        &self,
        placed: &OrderPlaced,
        lines: &[OrderLine],
        avoid: Option<BatchId>,
        meta: &EventMetadata,
    ) -> Result<Allocated, HandlerError> {
        let order_id = placed.order_id;
        let deliver_by = placed.delivery_slot.ends_at();
        let now = self.write.clock.now();
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
                    let (batch, _) = self.write.batches.load_cached(&id.to_string(), 0).await?;
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
                        .write
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

    /// Confirms an order's new allocation (unless it has moved on) and
    /// keeps its phase.
    pub(super) async fn reconfirm(
        &self,
        order_id: OrderId,
        allocations: Vec<Allocation>,
        meta: &EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let r = self
            .write
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
    pub(super) async fn on_batch_expired(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let batch_id: BatchId = event.stream_id.parse()?;
        let (batch, _) = self
            .write
            .batches
            .load_cached(&event.stream_id, event.stream_version)
            .await?;
        let holders: Vec<OrderId> = batch.reservations().map(|(o, _)| o).collect();
        for order_id in holders {
            self.for_order(order_id, event, |meta| async move {
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
                            .write
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
        // The batch's own write-off stays in the expiry's flow.
        self.write_off_if_expired(batch_id, &self.meta(event)).await
    }
}
