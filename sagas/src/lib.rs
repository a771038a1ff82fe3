//! Freshledger's process managers and durable timers.
//!
//! - [`timers`]: the scheduler that fires due timers (timers are events of
//!   the `Timer` stream; the `timers` read model says what is due).
//! - [`spoilage`]: schedules each batch's expiry warning and expiry, and
//!   acts when they fire (warn; expire and write off what is not reserved).
//! - [`gateway`]: the payment gateway adapter for the order saga.
//! - [`order`]: the order fulfilment saga (allocation, payment, picking,
//!   delivery, capture, and the compensations).

pub mod gateway;
pub mod order;
pub mod spoilage;
pub mod timers;

use chrono::{DateTime, Utc};
use domain::inventory::{InventoryBatch, InventoryBatchCommand, InventoryError};
use event_schemas::inventory::WriteOffReason;
use event_schemas::values::Quantity;
use event_schemas::{Actor, EventMetadata, RecordedEvent};
use store::{Aggregates, CommandError, HandlerError};

/// A command's failure as a subscriber's error (retried, then parked).
pub(crate) fn fail<E: std::error::Error + Send + Sync + 'static>(
    e: CommandError<E>,
) -> HandlerError {
    Box::new(e)
}

/// What a process manager attaches to the commands an event caused: the
/// event's correlation, the event as causation, the manager as actor.
pub(crate) fn caused_by(e: &RecordedEvent, at: DateTime<Utc>, actor: &str) -> EventMetadata {
    EventMetadata {
        occurred_at: at,
        correlation_id: e.correlation_id,
        causation_id: Some(e.event_id),
        actor: Actor::system(actor),
        idempotency_key: None,
    }
}

/// Writes off (reason `expired`) whatever is available on an expired batch:
/// at expiry (spoilage), and when reservations come back to it later (the
/// order saga). Idempotent: the second time there is nothing available, and
/// losing a race to another writer's write-off is not an error.
pub(crate) async fn write_off_expired(
    batches: &Aggregates<InventoryBatch>,
    id: &str,
    meta: &EventMetadata,
) -> Result<(), HandlerError> {
    let (batch, _) = batches.load_cached(id, 0).await?;
    let (Some(info), true) = (batch.info(), batch.is_expired()) else {
        return Ok(());
    };
    if batch.available() == 0 {
        return Ok(());
    }
    let quantity = Quantity::new(info.uom, batch.available())?;
    let command = InventoryBatchCommand::WriteOffStock {
        quantity,
        reason: WriteOffReason::Expired,
        note: None,
    };
    match batches.execute(id, command, meta).await {
        Ok(_) | Err(CommandError::Rejected(InventoryError::InsufficientStock { .. })) => Ok(()),
        Err(e) => Err(fail(e)),
    }
}
