//! Freshledger's write model: the four cqrs-es aggregates and the catalogue
//! they price from. Pure: no database, network or file access. Time and
//! prices come in through each aggregate's `Services`.

pub mod allocation;
pub mod catalog;
pub mod clock;
pub mod delivery;
pub mod error;
pub mod inventory;
pub mod order;
pub mod payment;
pub mod registry;
pub mod timer;

pub use catalog::{Catalog, Category, InMemoryCatalog, Nutrition, Product};
pub use clock::{Clock, FixedClock, SystemClock};
pub use registry::{Supplier, Warehouse};

pub use delivery::Delivery;
pub use error::{DomainError, ErrorKind};
pub use inventory::InventoryBatch;
pub use order::Order;
pub use payment::Payment;

/// The value objects, re-exported from the published contract.
pub use event_schemas::values;
