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
use event_schemas::inventory::InventoryBatchEvent;
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::{AnyEvent, RecordedEvent};
use store::{Aggregates, HandlerError, Reactor};

use crate::{caused_by, fail, write_off_expired};

pub struct Spoilage {
    pub batches: Arc<Aggregates<InventoryBatch>>,
    pub timers: Arc<Aggregates<Timer>>,
    /// How long before expiry the warning goes off.
    pub warn_before: Duration,
}

impl Spoilage {
    /// The spoilage manager on the process's write side.
    pub fn new(write: &write_side::WriteSide, warn_before: Duration) -> Spoilage {
        Spoilage {
            batches: write.batches.clone(),
            timers: write.timers.clone(),
            warn_before,
        }
    }
}

#[async_trait]
impl Reactor for Spoilage {
    fn wants(&self, event: &RecordedEvent) -> bool {
        matches!(
            (event.stream_type.as_str(), event.event_type.as_str()),
            (InventoryBatchEvent::STREAM_TYPE, "BatchReceived")
                | (TimerEvent::STREAM_TYPE, "TimerFired")
        )
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if !self.wants(event) {
            return Ok(());
        }
        let meta = caused_by(event, event.occurred_at, "spoilage");
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
                        write_off_expired(&self.batches, &id, &meta).await?;
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
