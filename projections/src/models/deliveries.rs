//! `deliveries`: every delivery's status, rider, last location, slot and
//! cold chain (`rm_deliveries`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::delivery::{DeliveryEvent, ProofOfDelivery};
use event_schemas::values::{DeliveryId, OrderId, RiderId};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Deserialize;
use store::sql::{exec, fetch, Arg};
use store::{Store, StoreError, StoreTx};

use super::{all_typed, decode, flag, ts, ReadModel, Table};

const DELIVERIES: &str = "rm_deliveries";

pub(super) struct Deliveries;

/// One delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryRow {
    pub delivery_id: DeliveryId,
    pub order_id: OrderId,
    /// CREATED, RIDER_ASSIGNED, IN_TRANSIT, DELIVERED or ATTEMPT_FAILED.
    pub status: String,
    pub rider_id: Option<RiderId>,
    pub lat_micro: Option<i64>,
    pub lon_micro: Option<i64>,
    pub located_at: Option<DateTime<Utc>>,
    pub slot_starts_at: DateTime<Utc>,
    pub slot_ends_at: DateTime<Utc>,
    #[serde(deserialize_with = "flag")]
    pub cold_chain: bool,
    pub attempts_failed: u64,
    /// signature, photo or pin.
    pub proof: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub position: u64,
}

/// One delivery by its id.
pub async fn delivery(store: &Store, delivery_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {DELIVERIES} WHERE delivery_id = ?"),
        &[delivery_id.into()],
    )
    .await?;
    Ok(all_typed(DELIVERIES, rows)?.pop())
}

/// The latest delivery of an order.
pub async fn delivery_of_order(
    store: &Store,
    order_id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {DELIVERIES} WHERE order_id = ? ORDER BY position DESC"),
        &[order_id.into()],
    )
    .await?;
    Ok(all_typed(DELIVERIES, rows)?.into_iter().next())
}

#[async_trait]
impl ReadModel for Deliveries {
    fn name(&self) -> &'static str {
        "deliveries"
    }

    fn tables(&self) -> &'static [Table] {
        &[Table {
            name: DELIVERIES,
            order_by: "delivery_id",
        }]
    }

    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {DELIVERIES}{suffix} (delivery_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL, \
                 rider_id TEXT, lat_micro BIGINT, lon_micro BIGINT, located_at TEXT, \
                 slot_starts_at TEXT NOT NULL, slot_ends_at TEXT NOT NULL, cold_chain BIGINT NOT NULL, \
                 attempts_failed BIGINT NOT NULL, proof TEXT, updated_at TEXT NOT NULL, position BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX ix_deliveries_order_{tag} ON {DELIVERIES}{suffix} (order_id)"),
        ]
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_type == DeliveryEvent::STREAM_TYPE
    }

    async fn apply(&self, tx: &mut StoreTx, s: &str, e: &RecordedEvent) -> Result<(), StoreError> {
        let AnyEvent::Delivery(ev) = decode(e)? else {
            return Ok(());
        };
        let at = ts(&e.occurred_at);
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        let t = format!("{DELIVERIES}{s}");
        use DeliveryEvent as E;
        let (set, mut args): (&str, Vec<Arg>) = match ev {
            E::DeliveryCreated(d) => {
                exec(tx, &format!(
                    "INSERT INTO {t} (delivery_id, order_id, status, slot_starts_at, slot_ends_at, cold_chain, attempts_failed, updated_at, position) \
                     VALUES (?, ?, 'CREATED', ?, ?, ?, 0, ?, ?)"),
                    &[id.into(), d.order_id.to_string().into(), ts(&d.slot.starts_at()).into(), ts(&d.slot.ends_at()).into(),
                      (d.cold_chain as i64).into(), at.as_str().into(), pos.into()]).await?;
                return Ok(());
            }
            E::RiderAssigned(r) => (
                "status = 'RIDER_ASSIGNED', rider_id = ?",
                vec![r.rider_id.to_string().into()],
            ),
            E::DeliveryPickedUp(_) => ("status = 'IN_TRANSIT'", vec![]),
            E::LocationReported(l) => (
                "lat_micro = ?, lon_micro = ?, located_at = ?",
                vec![
                    (l.location.lat_micro() as i64).into(),
                    (l.location.lon_micro() as i64).into(),
                    at.as_str().into(),
                ],
            ),
            E::DeliveryCompleted(c) => {
                let kind = match c.proof {
                    ProofOfDelivery::Signature { .. } => "signature",
                    ProofOfDelivery::Photo { .. } => "photo",
                    ProofOfDelivery::Pin { .. } => "pin",
                };
                ("status = 'DELIVERED', proof = ?", vec![kind.into()])
            }
            E::DeliveryAttemptFailed(_) => (
                "status = 'ATTEMPT_FAILED', attempts_failed = attempts_failed + 1",
                vec![],
            ),
        };
        args.extend([at.as_str().into(), pos.into(), id.into()]);
        exec(
            tx,
            &format!("UPDATE {t} SET {set}, updated_at = ?, position = ? WHERE delivery_id = ?"),
            &args,
        )
        .await?;
        Ok(())
    }
}
