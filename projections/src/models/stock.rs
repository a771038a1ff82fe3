//! `stock`: every batch's books (`rm_batches`: on hand, reserved, picked,
//! written off, expiry; availability per SKU and warehouse is a sum over
//! them, FEFO is `ORDER BY expires_at`) and the write-off ledger
//! (`rm_spoilage`, with reason, quantity and cost).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::inventory::{ColdChain, InventoryBatchEvent, ReleaseReason, WriteOffReason};
use event_schemas::values::{BatchId, Currency, Sku, SupplierId, UnitOfMeasure, WarehouseId};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Deserialize;
use store::sql::{exec, fetch, Arg};
use store::{Store, StoreError, StoreTx};

use super::{all_typed, decode, flag, ts, word, ReadModel, Table};

const BATCHES: &str = "rm_batches";
const SPOILAGE: &str = "rm_spoilage";

pub(super) struct Stock;

/// One batch's books.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchRow {
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub supplier_id: SupplierId,
    pub uom: UnitOfMeasure,
    pub received: u64,
    pub on_hand: u64,
    pub reserved: u64,
    pub picked: u64,
    pub written_off: u64,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub cold_chain: ColdChain,
    pub cost_minor: i64,
    pub currency: Currency,
    #[serde(deserialize_with = "flag")]
    pub expired: bool,
    #[serde(deserialize_with = "flag")]
    pub warned: bool,
    pub position: u64,
}

impl BatchRow {
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// Stock of one SKU in one warehouse, summed over its batches.
#[derive(Debug, Clone, Deserialize)]
pub struct AvailabilityRow {
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub uom: UnitOfMeasure,
    pub on_hand: u64,
    pub reserved: u64,
    /// The earliest expiry among the batches with stock available.
    pub earliest: Option<DateTime<Utc>>,
}

/// One write-off.
#[derive(Debug, Clone, Deserialize)]
pub struct SpoilageRow {
    pub position: u64,
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub uom: UnitOfMeasure,
    pub quantity: u64,
    pub reason: WriteOffReason,
    pub cost_minor: i64,
    pub currency: Currency,
    pub note: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Every batch of `sku` in `warehouse`, expired or not, first-expiring
/// first: the candidates an allocation looks at (the batch aggregate has
/// the last word on each).
pub async fn batch_ids(
    store: &Store,
    sku: &Sku,
    warehouse: &WarehouseId,
) -> Result<Vec<BatchId>, StoreError> {
    #[derive(Deserialize)]
    struct Id {
        batch_id: BatchId,
    }
    let rows = fetch(
        store,
        &format!(
            "SELECT batch_id FROM {BATCHES} WHERE sku = ? AND warehouse_id = ? ORDER BY expires_at, batch_id"
        ),
        &[sku.as_str().into(), warehouse.as_str().into()],
    )
    .await?;
    Ok(all_typed::<Id>(BATCHES, rows)?
        .into_iter()
        .map(|r| r.batch_id)
        .collect())
}

/// Stock of each of `skus` per warehouse (only `warehouse` when given),
/// from batches not expired and expiring no earlier than `fresh_until`.
pub async fn availability(
    store: &Store,
    skus: &[Sku],
    fresh_until: DateTime<Utc>,
    warehouse: Option<&str>,
) -> Result<Vec<AvailabilityRow>, StoreError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; skus.len()].join(", ");
    let mut sql = format!(
        "SELECT sku, warehouse_id, uom, CAST(SUM(on_hand) AS BIGINT) AS on_hand, \
         CAST(SUM(reserved) AS BIGINT) AS reserved, \
         MIN(CASE WHEN on_hand > reserved THEN expires_at END) AS earliest \
         FROM {BATCHES} WHERE sku IN ({marks}) AND expired = 0 AND expires_at >= ?"
    );
    let mut args: Vec<Arg> = skus.iter().map(|s| s.as_str().into()).collect();
    args.push(ts(&fresh_until).into());
    if let Some(w) = warehouse {
        sql.push_str(" AND warehouse_id = ?");
        args.push(w.into());
    }
    sql.push_str(" GROUP BY sku, warehouse_id, uom ORDER BY sku, warehouse_id");
    all_typed(BATCHES, fetch(store, &sql, &args).await?)
}

/// Up to `limit` batches with stock, not expired, expiring by `horizon`,
/// soonest first, after the keyset position `after` (`expires_at|batch_id`
/// as [`BatchRow::expiry_key`] gives it; `""` from the start).
pub async fn expiring_batches(
    store: &Store,
    horizon: DateTime<Utc>,
    after: &str,
    warehouse: Option<&str>,
    limit: usize,
) -> Result<Vec<BatchRow>, StoreError> {
    let mut sql = format!(
        "SELECT * FROM {BATCHES} WHERE expired = 0 AND on_hand > 0 AND expires_at <= ? \
         AND (expires_at || '|' || batch_id) > ?"
    );
    let mut args: Vec<Arg> = vec![ts(&horizon).into(), after.into()];
    if let Some(w) = warehouse {
        sql.push_str(" AND warehouse_id = ?");
        args.push(w.into());
    }
    sql.push_str(" ORDER BY expires_at, batch_id LIMIT ?");
    args.push((limit as i64).into());
    all_typed(BATCHES, fetch(store, &sql, &args).await?)
}

impl BatchRow {
    /// The batch's keyset position in [`expiring_batches`].
    pub fn expiry_key(&self) -> String {
        format!("{}|{}", ts(&self.expires_at), self.batch_id)
    }
}

/// The batches of a warehouse not expired (of one SKU when given), by SKU,
/// each SKU's first-expiring first.
pub async fn batches_in_warehouse(
    store: &Store,
    warehouse: &str,
    sku: Option<&str>,
) -> Result<Vec<BatchRow>, StoreError> {
    let mut sql = format!("SELECT * FROM {BATCHES} WHERE warehouse_id = ? AND expired = 0");
    let mut args: Vec<Arg> = vec![warehouse.into()];
    if let Some(s) = sku {
        sql.push_str(" AND sku = ?");
        args.push(s.into());
    }
    sql.push_str(" ORDER BY sku, expires_at, batch_id");
    all_typed(BATCHES, fetch(store, &sql, &args).await?)
}

/// Up to `limit` write-offs before position `before`, newest first.
pub async fn spoilage(
    store: &Store,
    before: i64,
    warehouse: Option<&str>,
    limit: usize,
) -> Result<Vec<SpoilageRow>, StoreError> {
    let mut sql = format!("SELECT * FROM {SPOILAGE} WHERE position < ?");
    let mut args: Vec<Arg> = vec![before.into()];
    if let Some(w) = warehouse {
        sql.push_str(" AND warehouse_id = ?");
        args.push(w.into());
    }
    sql.push_str(" ORDER BY position DESC LIMIT ?");
    args.push((limit as i64).into());
    all_typed(SPOILAGE, fetch(store, &sql, &args).await?)
}

/// Every batch (tests and tools: the books of the whole stock).
pub async fn all_batches(store: &Store) -> Result<Vec<BatchRow>, StoreError> {
    all_typed(
        BATCHES,
        fetch(
            store,
            &format!("SELECT * FROM {BATCHES} ORDER BY batch_id"),
            &[],
        )
        .await?,
    )
}

#[async_trait]
impl ReadModel for Stock {
    fn name(&self) -> &'static str {
        "stock"
    }

    fn tables(&self) -> &'static [Table] {
        &[
            Table {
                name: BATCHES,
                order_by: "batch_id",
            },
            Table {
                name: SPOILAGE,
                order_by: "position",
            },
        ]
    }

    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {BATCHES}{suffix} (batch_id TEXT PRIMARY KEY, sku TEXT NOT NULL, warehouse_id TEXT NOT NULL, supplier_id TEXT NOT NULL, \
                 uom TEXT NOT NULL, received BIGINT NOT NULL, on_hand BIGINT NOT NULL, reserved BIGINT NOT NULL, \
                 picked BIGINT NOT NULL, written_off BIGINT NOT NULL, received_at TEXT NOT NULL, expires_at TEXT NOT NULL, \
                 cold_chain TEXT NOT NULL, cost_minor BIGINT NOT NULL, currency TEXT NOT NULL, \
                 expired BIGINT NOT NULL, warned BIGINT NOT NULL, position BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX ix_batches_fefo_{tag} ON {BATCHES}{suffix} (sku, warehouse_id, expires_at)"),
            format!("CREATE INDEX ix_batches_expiry_{tag} ON {BATCHES}{suffix} (expires_at)"),
            format!(
                "CREATE TABLE {SPOILAGE}{suffix} (position BIGINT PRIMARY KEY, batch_id TEXT NOT NULL, sku TEXT NOT NULL, warehouse_id TEXT NOT NULL, \
                 uom TEXT NOT NULL, quantity BIGINT NOT NULL, reason TEXT NOT NULL, cost_minor BIGINT NOT NULL, \
                 currency TEXT NOT NULL, note TEXT, occurred_at TEXT NOT NULL)"
            ),
        ]
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_type == InventoryBatchEvent::STREAM_TYPE
    }

    async fn apply(&self, tx: &mut StoreTx, s: &str, e: &RecordedEvent) -> Result<(), StoreError> {
        let AnyEvent::InventoryBatch(ev) = decode(e)? else {
            return Ok(());
        };
        let at = ts(&e.occurred_at);
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        let t = format!("{BATCHES}{s}");
        use InventoryBatchEvent as E;
        let (set, mut args): (&str, Vec<Arg>) = match ev {
            E::BatchReceived(b) => {
                exec(tx, &format!(
                    "INSERT INTO {t} (batch_id, sku, warehouse_id, supplier_id, uom, received, on_hand, reserved, picked, written_off, \
                     received_at, expires_at, cold_chain, cost_minor, currency, expired, warned, position) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?, 0, 0, ?)"),
                    &[id.into(), b.sku.to_string().into(), b.warehouse_id.to_string().into(), b.supplier_id.to_string().into(),
                      word(&b.quantity.uom()).into(), b.quantity.amount().into(), b.quantity.amount().into(),
                      ts(&b.received_at).into(), ts(&b.expires_at).into(), word::<ColdChain>(&b.cold_chain).into(),
                      b.procurement_cost.amount_minor().into(), b.procurement_cost.currency().to_string().into(), pos.into()]).await?;
                return Ok(());
            }
            E::StockReserved(r) => ("reserved = reserved + ?", vec![r.quantity.amount().into()]),
            E::ReservationReleased(r) => {
                let _: ReleaseReason = r.reason;
                ("reserved = reserved - ?", vec![r.quantity.amount().into()])
            }
            E::StockPicked(p) => (
                "on_hand = on_hand - ?, reserved = reserved - ?, picked = picked + ?",
                vec![
                    p.quantity.amount().into(),
                    p.quantity.amount().into(),
                    p.quantity.amount().into(),
                ],
            ),
            E::StockAdjusted(a) => ("on_hand = ?", vec![a.counted_on_hand.into()]),
            E::StockWrittenOff(w) => {
                exec(tx, &format!(
                    "INSERT INTO {SPOILAGE}{s} (position, batch_id, sku, warehouse_id, uom, quantity, reason, cost_minor, currency, note, occurred_at) \
                     SELECT ?, batch_id, sku, warehouse_id, uom, ?, ?, ?, ?, ?, ? FROM {t} WHERE batch_id = ?"),
                    &[pos.into(), w.quantity.amount().into(), word::<WriteOffReason>(&w.reason).into(), w.cost.amount_minor().into(),
                      w.cost.currency().to_string().into(), w.note.map(|n| n.to_string()).into(), at.as_str().into(), id.into()]).await?;
                (
                    "on_hand = on_hand - ?, written_off = written_off + ?",
                    vec![w.quantity.amount().into(), w.quantity.amount().into()],
                )
            }
            E::ExpiryWarningRaised(_) => ("warned = 1", vec![]),
            E::BatchExpired(_) => ("expired = 1", vec![]),
        };
        args.extend([pos.into(), id.into()]);
        exec(
            tx,
            &format!("UPDATE {t} SET {set}, position = ? WHERE batch_id = ?"),
            &args,
        )
        .await?;
        Ok(())
    }
}
