//! The write side, composed once: one command handler ([`Aggregates`]) per
//! aggregate, the clock they decide by, and the catalogue orders are priced
//! from. The composition root builds one [`WriteSide`]; the command API and
//! the process managers take it, so every command in the process goes
//! through the same handlers (and their caches).

mod catalog;

use std::sync::Arc;

use domain::clock::Clock;
use domain::delivery::Delivery;
use domain::inventory::{InventoryBatch, InventoryServices};
use domain::order::{Order, OrderServices};
use domain::payment::Payment;
use domain::timer::{Timer, TimerServices};
use store::{Aggregates, Store};

pub use catalog::StoreCatalog;

/// Everything that decides and appends; cheap to clone.
#[derive(Clone)]
pub struct WriteSide {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub catalog: Arc<StoreCatalog>,
    pub orders: Arc<Aggregates<Order>>,
    pub batches: Arc<Aggregates<InventoryBatch>>,
    pub payments: Arc<Aggregates<Payment>>,
    pub deliveries: Arc<Aggregates<Delivery>>,
    pub timers: Arc<Aggregates<Timer>>,
}

/// The bounds a shop sets on what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How far ahead a delivery slot may start.
    pub slot_horizon: chrono::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            slot_horizon: chrono::Duration::days(domain::order::DEFAULT_SLOT_HORIZON_DAYS.into()),
        }
    }
}

impl WriteSide {
    /// The write side with the default [`Limits`].
    pub fn new(store: &Store, clock: Arc<dyn Clock>) -> WriteSide {
        Self::with_limits(store, clock, Limits::default())
    }

    pub fn with_limits(store: &Store, clock: Arc<dyn Clock>, limits: Limits) -> WriteSide {
        let catalog = Arc::new(StoreCatalog::new(store));
        WriteSide {
            store: store.clone(),
            clock: clock.clone(),
            catalog: catalog.clone(),
            orders: Arc::new(Aggregates::new(
                store,
                OrderServices {
                    catalog: catalog.clone(),
                    clock: clock.clone(),
                    slot_horizon: limits.slot_horizon,
                },
            )),
            batches: Arc::new(Aggregates::new(
                store,
                InventoryServices {
                    clock: clock.clone(),
                    catalog,
                },
            )),
            payments: Arc::new(Aggregates::new(store, ())),
            deliveries: Arc::new(Aggregates::new(store, ())),
            timers: Arc::new(Aggregates::new(store, TimerServices { clock })),
        }
    }
}
