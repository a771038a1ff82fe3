//! Fulfilment: pick what was packed and create the delivery, then follow
//! the delivery to shipped and delivered.

use domain::delivery::{DeliveryCommand, DeliveryError};
use domain::inventory::{InventoryBatchCommand as IC, InventoryError};
use domain::order::{OrderCommand as OC, OrderStatus};
use event_schemas::inventory::{ColdChain, ReleaseReason};
use event_schemas::order::Allocation;
use event_schemas::values::{DeliveryId, OrderId, Quantity};
use event_schemas::{EventMetadata, RecordedEvent};
use store::HandlerError;

use super::steps::done;
use super::{delivery_id, OrderSaga, Phase};
use crate::fail;

impl OrderSaga {
    pub(super) async fn on_packed(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
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
                let (batch, _) = self.write.batches.load_cached(&id, 0).await?;
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
                let r = self.write.batches.execute(&id, command, &meta).await;
                if !done(r, |e| matches!(e, InventoryError::Expired))? {
                    tracing::warn!(order = %order_id, batch = %id, "batch expired before picking; nothing picked from it");
                }
            }
        }
        let did = delivery_id(order_id);
        let r = self
            .write
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

    pub(super) async fn on_delivery(
        &self,
        event: &RecordedEvent,
        picked_up: bool,
    ) -> Result<(), HandlerError> {
        let (delivery, _) = self
            .write
            .deliveries
            .load_cached(&event.stream_id, event.stream_version)
            .await?;
        let Some(order_id) = delivery.order_id() else {
            return Ok(());
        };
        let did: DeliveryId = event.stream_id.parse()?;
        self.for_order(order_id, event, |meta| async move {
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
            self.write
                .orders
                .execute(&order_id.to_string(), command, &meta)
                .await
                .map_err(fail)?;
            Ok(Some((phase, None)))
        })
        .await
    }
}
