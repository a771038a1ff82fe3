//! `InventoryBatch`: one batch of one SKU in one warehouse, from receipt to
//! the last gram picked, written off or expired.
//!
//! Invariants (checked by property tests):
//! - `available = on_hand - reserved` is never negative;
//! - `reserved <= on_hand`;
//! - nothing is reserved from an expired batch (by the clock, even before
//!   `BatchExpired` is recorded);
//! - after expiry only releases and write-offs are accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use event_schemas::inventory::*;
use event_schemas::values::*;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{DomainError, ErrorKind};

/// The longest a batch may keep from receipt to expiry: fresh produce
/// (even apples in controlled-atmosphere storage) does not keep for a year,
/// so a later expiry is a typing error.
pub const MAX_SHELF_LIFE_DAYS: i64 = 365;

pub struct InventoryServices {
    pub clock: Arc<dyn Clock>,
    /// Only catalogued products can be received, in their unit of measure.
    pub catalog: Arc<dyn Catalog>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InventoryBatchCommand {
    ReceiveBatch {
        batch_id: BatchId,
        sku: Sku,
        warehouse_id: WarehouseId,
        supplier_id: SupplierId,
        quantity: Quantity,
        expires_at: DateTime<Utc>,
        procurement_cost: Money,
        cold_chain: ColdChain,
    },
    /// `quantity` is what the order is to hold on this batch in all.
    /// Idempotent: the same quantity again does nothing; a larger one
    /// reserves the difference (an order topping up a batch it already
    /// holds); a smaller one is refused (that is a release).
    ReserveStock {
        order_id: OrderId,
        quantity: Quantity,
    },
    /// Idempotent: releasing an order with nothing reserved does nothing.
    ReleaseReservation {
        order_id: OrderId,
        reason: ReleaseReason,
    },
    /// Commits (part of) an order's reservation; any rest is released.
    PickStock {
        order_id: OrderId,
        quantity: Quantity,
    },
    /// A physical count: sets on hand to what was counted.
    AdjustStock {
        counted_on_hand: u64,
        note: Option<Note>,
    },
    WriteOffStock {
        quantity: Quantity,
        reason: WriteOffReason,
        note: Option<Note>,
    },
    /// Idempotent.
    RaiseExpiryWarning,
    /// Idempotent; refused before `expires_at`.
    MarkExpired,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "details", rename_all = "snake_case")]
pub enum InventoryError {
    #[error("batch has not been received")]
    NotReceived,
    #[error("batch was already received")]
    AlreadyReceived,
    #[error("expiry {expires_at} is not after receipt {received_at}")]
    ExpiryNotAfterReceipt {
        received_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    #[error(
        "expiry {expires_at} is more than {} days after receipt {received_at}",
        MAX_SHELF_LIFE_DAYS
    )]
    ExpiryTooFar {
        received_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    #[error("unknown SKU {0}")]
    UnknownSku(Sku),
    #[error("unknown warehouse {0}; register it first")]
    UnknownWarehouse(WarehouseId),
    #[error("unknown supplier {0}; register it first")]
    UnknownSupplier(SupplierId),
    #[error(
        "warehouse {warehouse_id} has no {} zone",
        crate::error::spelled(.storage, false)
    )]
    StorageUnavailable {
        warehouse_id: WarehouseId,
        storage: ColdChain,
    },
    #[error("catalogue unavailable: {0}")]
    CatalogUnavailable(String),
    #[error("batch is counted in {batch}, not {given}")]
    UnitMismatch {
        batch: UnitOfMeasure,
        given: UnitOfMeasure,
    },
    #[error("batch has expired")]
    Expired,
    #[error("only {available} available, {requested} requested")]
    InsufficientStock { requested: u64, available: u64 },
    #[error("order {order_id} already holds {existing}, not {requested}")]
    ReservationMismatch {
        order_id: OrderId,
        existing: u64,
        requested: u64,
    },
    #[error("order {order_id} holds no reservation on this batch")]
    NoReservation { order_id: OrderId },
    #[error("cannot pick {requested}, order holds {reserved}")]
    PickExceedsReservation { requested: u64, reserved: u64 },
    #[error("counted {counted} is below the {reserved} reserved; release first")]
    CountBelowReserved { counted: u64, reserved: u64 },
    #[error("batch expires at {expires_at}, not yet")]
    NotYetExpired { expires_at: DateTime<Utc> },
}

impl DomainError for InventoryError {
    const CODES: &'static [(&'static str, ErrorKind)] = &[
        ("batch_not_found", ErrorKind::NotFound),
        ("batch_already_received", ErrorKind::Conflict),
        ("unknown_sku", ErrorKind::Invalid),
        ("unknown_warehouse", ErrorKind::Invalid),
        ("unknown_supplier", ErrorKind::Invalid),
        ("storage_unavailable", ErrorKind::Invalid),
        ("catalog_unavailable", ErrorKind::Unavailable),
        ("expiry_not_after_receipt", ErrorKind::Invalid),
        ("expiry_too_far", ErrorKind::Invalid),
        ("unit_mismatch", ErrorKind::Invalid),
        ("batch_expired", ErrorKind::Conflict),
        ("insufficient_stock", ErrorKind::Conflict),
        ("reservation_mismatch", ErrorKind::Conflict),
        ("no_reservation", ErrorKind::Conflict),
        ("pick_exceeds_reservation", ErrorKind::Conflict),
        ("count_below_reserved", ErrorKind::Conflict),
        ("batch_not_yet_expired", ErrorKind::Conflict),
    ];
    fn code(&self) -> &'static str {
        use InventoryError::*;
        match self {
            NotReceived => "batch_not_found",
            AlreadyReceived => "batch_already_received",
            UnknownSku(_) => "unknown_sku",
            UnknownWarehouse(_) => "unknown_warehouse",
            UnknownSupplier(_) => "unknown_supplier",
            StorageUnavailable { .. } => "storage_unavailable",
            CatalogUnavailable(_) => "catalog_unavailable",
            ExpiryNotAfterReceipt { .. } => "expiry_not_after_receipt",
            ExpiryTooFar { .. } => "expiry_too_far",
            UnitMismatch { .. } => "unit_mismatch",
            Expired => "batch_expired",
            InsufficientStock { .. } => "insufficient_stock",
            ReservationMismatch { .. } => "reservation_mismatch",
            NoReservation { .. } => "no_reservation",
            PickExceedsReservation { .. } => "pick_exceeds_reservation",
            CountBelowReserved { .. } => "count_below_reserved",
            NotYetExpired { .. } => "batch_not_yet_expired",
        }
    }
    fn kind(&self) -> ErrorKind {
        use InventoryError::*;
        match self {
            NotReceived => ErrorKind::NotFound,
            CatalogUnavailable(_) => ErrorKind::Unavailable,
            ExpiryNotAfterReceipt { .. }
            | ExpiryTooFar { .. }
            | UnitMismatch { .. }
            | UnknownSku(_)
            | UnknownWarehouse(_)
            | UnknownSupplier(_)
            | StorageUnavailable { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Conflict,
        }
    }
}

/// What a received batch is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInfo {
    pub batch_id: BatchId,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub supplier_id: SupplierId,
    pub uom: UnitOfMeasure,
    pub received: u64,
    pub expires_at: DateTime<Utc>,
    pub procurement_cost: Money,
    pub cold_chain: ColdChain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryBatch {
    info: Option<BatchInfo>,
    on_hand: u64,
    reservations: BTreeMap<OrderId, u64>,
    picked_orders: BTreeSet<OrderId>,
    picked: u64,
    written_off: u64,
    adjusted_in: u64,
    adjusted_out: u64,
    warned: bool,
    expired: bool,
}

impl InventoryBatch {
    pub fn info(&self) -> Option<&BatchInfo> {
        self.info.as_ref()
    }
    pub fn on_hand(&self) -> u64 {
        self.on_hand
    }
    pub fn reserved(&self) -> u64 {
        self.reservations.values().sum()
    }
    /// Open reservations, by order.
    pub fn reservations(&self) -> impl Iterator<Item = (OrderId, u64)> + '_ {
        self.reservations.iter().map(|(o, q)| (*o, *q))
    }
    pub fn reserved_for(&self, order_id: &OrderId) -> u64 {
        self.reservations.get(order_id).copied().unwrap_or(0)
    }
    /// On hand less reserved. Never negative (an invariant, not a clamp).
    pub fn available(&self) -> u64 {
        self.on_hand - self.reserved()
    }
    pub fn picked(&self) -> u64 {
        self.picked
    }
    pub fn written_off(&self) -> u64 {
        self.written_off
    }
    pub fn is_expired(&self) -> bool {
        self.expired
    }
    /// received + counted gains - counted losses = on hand + picked + written off.
    pub fn books_balance(&self) -> bool {
        match &self.info {
            None => self.on_hand == 0,
            Some(i) => {
                i.received + self.adjusted_in
                    == self.on_hand + self.picked + self.written_off + self.adjusted_out
            }
        }
    }

    fn quantity(&self, amount: u64) -> Quantity {
        let uom = self.info.as_ref().expect("received").uom;
        Quantity::new(uom, amount).expect("positive amounts from the batch's own books")
    }

    fn check_uom(info: &BatchInfo, q: Quantity) -> Result<u64, InventoryError> {
        q.expect_uom(info.uom)
            .map_err(|_| InventoryError::UnitMismatch {
                batch: info.uom,
                given: q.uom(),
            })
    }

    fn cost_of(&self, amount: u64) -> Money {
        let i = self.info.as_ref().expect("received");
        let total = i.procurement_cost.amount_minor() as i128;
        let cost = (total * amount as i128 * 2 + i.received as i128) / (2 * i.received as i128);
        Money::new(cost as i64, i.procurement_cost.currency()).expect("pro-rated cost is >= 0")
    }
}

impl Aggregate for InventoryBatch {
    const TYPE: &'static str = "InventoryBatch";
    type Command = InventoryBatchCommand;
    type Event = InventoryBatchEvent;
    type Error = InventoryError;
    type Services = InventoryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use InventoryBatchCommand as C;
        use InventoryError as E;
        let now = services.clock.now();

        if let C::ReceiveBatch {
            batch_id,
            sku,
            warehouse_id,
            supplier_id,
            quantity,
            expires_at,
            procurement_cost,
            cold_chain,
        } = command
        {
            if self.info.is_some() {
                return Err(E::AlreadyReceived);
            }
            let product = services
                .catalog
                .product(&sku)
                .await
                .map_err(|e| E::CatalogUnavailable(e.0))?
                .ok_or_else(|| E::UnknownSku(sku.clone()))?;
            let uom = product.price.per.unit_of_measure();
            if quantity.uom() != uom {
                return Err(E::UnitMismatch {
                    batch: uom,
                    given: quantity.uom(),
                });
            }
            if expires_at <= now {
                return Err(E::ExpiryNotAfterReceipt {
                    received_at: now,
                    expires_at,
                });
            }
            if expires_at - now > chrono::Duration::days(MAX_SHELF_LIFE_DAYS) {
                return Err(E::ExpiryTooFar {
                    received_at: now,
                    expires_at,
                });
            }
            let unavailable = |e: crate::catalog::CatalogUnavailable| E::CatalogUnavailable(e.0);
            let warehouse = services
                .catalog
                .warehouse(&warehouse_id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| E::UnknownWarehouse(warehouse_id.clone()))?;
            if !warehouse.keeps(cold_chain) {
                return Err(E::StorageUnavailable {
                    warehouse_id,
                    storage: cold_chain,
                });
            }
            services
                .catalog
                .supplier(&supplier_id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| E::UnknownSupplier(supplier_id.clone()))?;
            let e = BatchReceived {
                batch_id,
                sku,
                warehouse_id,
                supplier_id,
                quantity,
                received_at: now,
                expires_at,
                procurement_cost,
                cold_chain,
            };
            sink.write(e.into(), self).await;
            return Ok(());
        }

        let info = self.info.clone().ok_or(E::NotReceived)?;
        let expired = self.expired || now >= info.expires_at;

        match command {
            C::ReceiveBatch { .. } => unreachable!("handled above"),
            C::ReserveStock { order_id, quantity } => {
                let amount = Self::check_uom(&info, quantity)?;
                let existing = self.reserved_for(&order_id);
                if existing == amount {
                    return Ok(());
                }
                if existing > amount {
                    return Err(E::ReservationMismatch {
                        order_id,
                        existing,
                        requested: amount,
                    });
                }
                if expired {
                    return Err(E::Expired);
                }
                let more = amount - existing;
                if more > self.available() {
                    return Err(E::InsufficientStock {
                        requested: more,
                        available: self.available(),
                    });
                }
                let quantity = Quantity::new(quantity.uom(), more).expect("a positive amount");
                sink.write(StockReserved { order_id, quantity }.into(), self)
                    .await;
            }
            C::ReleaseReservation { order_id, reason } => {
                let held = self.reserved_for(&order_id);
                if held > 0 {
                    let quantity = self.quantity(held);
                    let e = ReservationReleased {
                        order_id,
                        quantity,
                        reason,
                    };
                    sink.write(e.into(), self).await;
                }
            }
            C::PickStock { order_id, quantity } => {
                let amount = Self::check_uom(&info, quantity)?;
                if self.picked_orders.contains(&order_id) {
                    return Ok(());
                }
                if expired {
                    return Err(E::Expired);
                }
                let held = self.reserved_for(&order_id);
                if held == 0 {
                    return Err(E::NoReservation { order_id });
                }
                if amount > held {
                    return Err(E::PickExceedsReservation {
                        requested: amount,
                        reserved: held,
                    });
                }
                sink.write(StockPicked { order_id, quantity }.into(), self)
                    .await;
                if held > amount {
                    let rest = ReservationReleased {
                        order_id,
                        quantity: self.quantity(held - amount),
                        reason: ReleaseReason::PickedShort,
                    };
                    sink.write(rest.into(), self).await;
                }
            }
            C::AdjustStock {
                counted_on_hand,
                note,
            } => {
                if expired {
                    return Err(E::Expired);
                }
                let reserved = self.reserved();
                if counted_on_hand < reserved {
                    return Err(E::CountBelowReserved {
                        counted: counted_on_hand,
                        reserved,
                    });
                }
                if counted_on_hand > MAX_QUANTITY {
                    return Err(E::InsufficientStock {
                        requested: counted_on_hand,
                        available: MAX_QUANTITY,
                    });
                }
                let e = StockAdjusted {
                    previous_on_hand: self.on_hand,
                    counted_on_hand,
                    note,
                };
                sink.write(e.into(), self).await;
            }
            C::WriteOffStock {
                quantity,
                reason,
                note,
            } => {
                let amount = Self::check_uom(&info, quantity)?;
                if amount > self.available() {
                    return Err(E::InsufficientStock {
                        requested: amount,
                        available: self.available(),
                    });
                }
                let e = StockWrittenOff {
                    quantity,
                    reason,
                    cost: self.cost_of(amount),
                    note,
                };
                sink.write(e.into(), self).await;
            }
            C::RaiseExpiryWarning => {
                // Past expiry (by the clock) a warning is moot: expiry itself follows.
                if !self.warned && !expired {
                    let e = ExpiryWarningRaised {
                        expires_at: info.expires_at,
                        on_hand: self.on_hand,
                    };
                    sink.write(e.into(), self).await;
                }
            }
            C::MarkExpired => {
                if self.expired {
                    return Ok(());
                }
                if now < info.expires_at {
                    return Err(E::NotYetExpired {
                        expires_at: info.expires_at,
                    });
                }
                let e = BatchExpired {
                    expires_at: info.expires_at,
                    on_hand: self.on_hand,
                    reserved: self.reserved(),
                };
                sink.write(e.into(), self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use InventoryBatchEvent as Ev;
        match event {
            Ev::BatchReceived(e) => {
                self.on_hand = e.quantity.amount();
                self.info = Some(BatchInfo {
                    batch_id: e.batch_id,
                    sku: e.sku,
                    warehouse_id: e.warehouse_id,
                    supplier_id: e.supplier_id,
                    uom: e.quantity.uom(),
                    received: e.quantity.amount(),
                    expires_at: e.expires_at,
                    procurement_cost: e.procurement_cost,
                    cold_chain: e.cold_chain,
                });
            }
            Ev::StockReserved(e) => {
                *self.reservations.entry(e.order_id).or_default() += e.quantity.amount();
            }
            Ev::ReservationReleased(e) => {
                let held = self.reservations.entry(e.order_id).or_default();
                *held = held.saturating_sub(e.quantity.amount());
                if *held == 0 {
                    self.reservations.remove(&e.order_id);
                }
            }
            Ev::StockPicked(e) => {
                let amount = e.quantity.amount();
                if let Some(held) = self.reservations.get_mut(&e.order_id) {
                    *held = held.saturating_sub(amount);
                    if *held == 0 {
                        self.reservations.remove(&e.order_id);
                    }
                }
                self.picked_orders.insert(e.order_id);
                self.on_hand -= amount;
                self.picked += amount;
            }
            Ev::StockAdjusted(e) => {
                if e.counted_on_hand >= e.previous_on_hand {
                    self.adjusted_in += e.counted_on_hand - e.previous_on_hand;
                } else {
                    self.adjusted_out += e.previous_on_hand - e.counted_on_hand;
                }
                self.on_hand = e.counted_on_hand;
            }
            Ev::StockWrittenOff(e) => {
                self.on_hand -= e.quantity.amount();
                self.written_off += e.quantity.amount();
            }
            Ev::ExpiryWarningRaised(_) => self.warned = true,
            Ev::BatchExpired(_) => self.expired = true,
        }
    }
}
