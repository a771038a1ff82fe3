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

impl WriteSide {
    pub fn new(store: &Store, clock: Arc<dyn Clock>) -> WriteSide {
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
