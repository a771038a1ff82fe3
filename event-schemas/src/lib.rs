//! Freshledger's published contract: the events of every aggregate, the
//! value objects they carry, the envelope every consumer sees, their JSON
//! Schemas and the upcasters that read old versions. No I/O.

pub mod envelope;
pub mod events;
pub mod integration;
pub mod schema;
pub mod upcast;
pub mod values;

pub use envelope::{Actor, ActorRole, AnyEvent, EventMetadata, RecordedEvent};
pub use events::delivery::{self, DeliveryEvent};
pub use events::inventory::{self, InventoryBatchEvent};
pub use events::order::{self, OrderEvent};
pub use events::payment::{self, PaymentEvent};
pub use events::timer::{self, TimerEvent};

/// The stream types, in the order they are documented.
pub const STREAM_TYPES: [&str; 5] = [
    OrderEvent::STREAM_TYPE,
    InventoryBatchEvent::STREAM_TYPE,
    PaymentEvent::STREAM_TYPE,
    DeliveryEvent::STREAM_TYPE,
    TimerEvent::STREAM_TYPE,
];
