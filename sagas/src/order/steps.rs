//! The small steps every part of the saga takes: load the order, cancel
//! it, release its stock, cancel its payment hold timer.

use std::collections::BTreeSet;

use domain::inventory::InventoryBatchCommand as IC;
use domain::order::{Order, OrderCommand as OC, OrderError};
use domain::timer::{TimerCommand, TimerError};
use event_schemas::inventory::ReleaseReason;
use event_schemas::order::{CancellationReason, OrderEvent, OrderPlaced};
use event_schemas::timer::TimerKind;
use event_schemas::values::{BatchId, OrderId, Text};
use event_schemas::{EventMetadata, RecordedEvent};
use store::{CommandError, HandlerError};
use uuid::Uuid;

use super::OrderSaga;
use crate::{caused_by, fail, write_off_expired};

pub(super) fn text<const N: usize>(s: &str) -> Text<N> {
    Text::try_from(s.to_string()).expect("saga texts are short and non-empty")
}

/// `Ok` for success and for rejections that mean "already done".
pub(super) fn done<E: std::error::Error + Send + Sync + 'static>(
    r: Result<store::Appended, CommandError<E>>,
    already: impl Fn(&E) -> bool,
) -> Result<bool, HandlerError> {
    match r {
        Ok(_) => Ok(true),
        Err(CommandError::Rejected(e)) if already(&e) => Ok(false),
        Err(e) => Err(fail(e)),
    }
}

/// Counts a compensation the saga made (`freshledger_saga_compensations_total`).
pub(super) fn compensated(kind: &'static str) {
    metrics::counter!("freshledger_saga_compensations_total", "saga" => "order", "kind" => kind)
        .increment(1);
}

impl OrderSaga {
    /// The order, at least as recent as `event` when the event is its own.
    pub(super) async fn order(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
    ) -> Result<(Order, u64), HandlerError> {
        let id = order_id.to_string();
        let min = if event.stream_type == OrderEvent::STREAM_TYPE && event.stream_id == id {
            event.stream_version
        } else {
            0
        };
        Ok(self.write.orders.load_cached(&id, min).await?)
    }

    /// The metadata of a command about `e`'s own stream (a batch), in
    /// `e`'s flow.
    pub(super) fn meta(&self, e: &RecordedEvent) -> EventMetadata {
        caused_by(e, self.write.clock.now(), "order-saga")
    }

    pub(super) async fn cancel(
        &self,
        order_id: OrderId,
        reason: CancellationReason,
        note: &str,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let r = self
            .write
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
        if done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))? {
            compensated("cancel_order");
        }
        Ok(())
    }

    /// Releases whatever the order holds on any batch of its SKUs (or only
    /// on `only`), writing off what an expired batch gets back.
    pub(super) async fn release_all(
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

    pub(super) async fn release(
        &self,
        order_id: OrderId,
        batch: BatchId,
        reason: ReleaseReason,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let id = batch.to_string();
        let (b, _) = self.write.batches.load_cached(&id, 0).await?;
        if b.reserved_for(&order_id) == 0 {
            return Ok(());
        }
        self.write
            .batches
            .execute(&id, IC::ReleaseReservation { order_id, reason }, meta)
            .await
            .map_err(fail)?;
        compensated("release_stock");
        self.write_off_if_expired(batch, meta).await
    }

    /// Stock given back on an expired batch is written off (the spoilage
    /// manager wrote off only what was free when it expired).
    pub(super) async fn write_off_if_expired(
        &self,
        batch: BatchId,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        write_off_expired(&self.write.batches, &batch.to_string(), meta).await
    }

    pub(super) async fn cancel_hold(
        &self,
        order_id: OrderId,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let id = TimerKind::ReservationHold { order_id }
            .timer_id()
            .to_string();
        let r = self
            .write
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

    /// The metadata of a command about an order: the order's flow as its
    /// correlation, `e` as its causation.
    pub(super) fn order_meta(&self, e: &RecordedEvent, correlation: Uuid) -> EventMetadata {
        EventMetadata {
            correlation_id: correlation,
            ..self.meta(e)
        }
    }

    /// The correlation id of the order's own flow: that of its placement.
    pub(super) async fn order_correlation(
        &self,
        order_id: OrderId,
        e: &RecordedEvent,
    ) -> Result<Uuid, HandlerError> {
        let id = order_id.to_string();
        if e.stream_type == OrderEvent::STREAM_TYPE && e.stream_id == id && e.stream_version == 1 {
            return Ok(e.correlation_id);
        }
        let placed = self
            .write
            .store
            .read_stream(OrderEvent::STREAM_TYPE, &id)
            .await?;
        Ok(placed
            .first()
            .map_or(e.correlation_id, |p| p.correlation_id))
    }
}
