//! Perishable stock behaves like perishable stock: every batch received
//! schedules an expiry warning (its expiry minus a lead time) and its
//! expiry; when they fire, the batch is warned, or expired and what is not
//! reserved written off (reason `expired`). Open reservations on an expired
//! batch are the order saga's to re-allocate (or cancel and refund).
//!
//! A [`Reactor`]: its effects are commands to other streams, so delivery is
//! at least once, and every command it sends is idempotent (a timer's id
//! derives from its purpose; warning and expiry are idempotent; the
//! write-off takes what is available, which is nothing the second time).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC};
use domain::timer::{Timer, TimerCommand};
use event_schemas::inventory::{InventoryBatchEvent, WriteOffReason};
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::values::Quantity;
use event_schemas::{Actor, AnyEvent, EventMetadata, RecordedEvent};
use store::{Aggregates, CommandError, HandlerError, Reactor};

pub struct Spoilage {
    pub batches: Arc<Aggregates<InventoryBatch>>,
    pub timers: Arc<Aggregates<Timer>>,
    /// How long before expiry the warning goes off.
    pub warn_before: Duration,
}

fn caused_by(e: &RecordedEvent) -> EventMetadata {
    EventMetadata {
        occurred_at: e.occurred_at,
        correlation_id: e.correlation_id,
        causation_id: Some(e.event_id),
        actor: Actor::system("spoilage"),
    }
}

fn fail<E: std::error::Error + Send + Sync + 'static>(e: CommandError<E>) -> HandlerError {
    Box::new(e)
}

#[async_trait]
impl Reactor for Spoilage {
    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.stream_type != "InventoryBatch" && event.stream_type != "Timer" {
            return Ok(());
        }
        let meta = caused_by(event);
        match event.decode()? {
            AnyEvent::InventoryBatch(InventoryBatchEvent::BatchReceived(b)) => {
                let warn_at = (b.expires_at - self.warn_before).max(b.received_at);
                for (timer, due_at) in [
                    (
                        TimerKind::ExpiryWarning {
                            batch_id: b.batch_id,
                        },
                        warn_at,
                    ),
                    (
                        TimerKind::BatchExpiry {
                            batch_id: b.batch_id,
                        },
                        b.expires_at,
                    ),
                ] {
                    let id = timer.timer_id().to_string();
                    self.timers
                        .execute(&id, TimerCommand::Schedule { timer, due_at }, &meta)
                        .await
                        .map_err(fail)?;
                }
            }
            AnyEvent::Timer(TimerEvent::TimerFired(_)) => {
                let (timer, _) = self.timers.load(&event.stream_id).await?;
                match timer.kind() {
                    Some(TimerKind::ExpiryWarning { batch_id }) => {
                        self.batches
                            .execute(&batch_id.to_string(), IC::RaiseExpiryWarning, &meta)
                            .await
                            .map_err(fail)?;
                    }
                    Some(TimerKind::BatchExpiry { batch_id }) => {
                        let id = batch_id.to_string();
                        self.batches
                            .execute(&id, IC::MarkExpired, &meta)
                            .await
                            .map_err(fail)?;
                        let (batch, _) = self.batches.load(&id).await?;
                        let uom = batch.info().map(|i| i.uom);
                        if let (Some(uom), true) = (uom, batch.available() > 0) {
                            let quantity = Quantity::new(uom, batch.available())?;
                            self.batches
                                .execute(
                                    &id,
                                    IC::WriteOffStock {
                                        quantity,
                                        reason: WriteOffReason::Expired,
                                        note: None,
                                    },
                                    &meta,
                                )
                                .await
                                .map_err(fail)?;
                        }
                    }
                    // Reservation holds belong to the order saga.
                    Some(TimerKind::ReservationHold { .. }) | None => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}
