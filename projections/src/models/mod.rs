//! The read models, one file each: its tables, which events it wants, how
//! each event changes it, and the typed readers everyone else calls. Only
//! this crate names a read-model table (`scripts/check-deps` enforces it).
//!
//! Adding a model is adding a file here and one line in [`Model::ALL`].

mod deliveries;
mod orders;
mod payments;
mod stock;
mod timers;

pub use deliveries::{delivery, delivery_of_order, DeliveryRow};
pub use orders::{customer_orders, order, timeline, OrderRow, TimelineRow};
pub use payments::{payments_of_order, PaymentRow};
pub use stock::{
    all_batches, availability, batch_ids, batches_in_warehouse, expiring_batches, spoilage,
    AvailabilityRow, BatchRow, SpoilageRow,
};
pub use timers::{due_timers, next_due, scheduled_timers, TimerRow};

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use store::sql::JsonRow;
use store::{StoreError, StoreTx};

/// A table of a read model, with the columns that order its rows (for
/// checksums).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub order_by: &'static str,
}

/// What every read model says about itself.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    /// Its name, also its subscription's.
    fn name(&self) -> &'static str;
    /// Its tables; the first is the one whose presence means "created".
    fn tables(&self) -> &'static [Table];
    /// DDL for its tables with `suffix` appended to every table name; `tag`
    /// makes index names unique across rebuilds.
    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String>;
    /// Whether `event` can change anything it holds.
    fn wants(&self, event: &RecordedEvent) -> bool;
    /// Applies one event it wants to its tables (with `suffix`). Its rows
    /// for a stream depend only on that stream's events (a rebuild applies
    /// streams in parallel).
    async fn apply(
        &self,
        tx: &mut StoreTx,
        suffix: &str,
        event: &RecordedEvent,
    ) -> Result<(), StoreError>;
}

/// A handle on one read model: cheap to copy, compared by name.
#[derive(Clone, Copy)]
pub struct Model(&'static dyn ReadModel);

impl Model {
    pub const ORDERS: Model = Model(&orders::Orders);
    pub const STOCK: Model = Model(&stock::Stock);
    pub const DELIVERIES: Model = Model(&deliveries::Deliveries);
    pub const PAYMENTS: Model = Model(&payments::Payments);
    pub const TIMERS: Model = Model(&timers::Timers);

    /// Every read model the server keeps.
    pub const ALL: [Model; 5] = [
        Model::ORDERS,
        Model::STOCK,
        Model::DELIVERIES,
        Model::PAYMENTS,
        Model::TIMERS,
    ];

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    pub(crate) fn tables(self) -> &'static [Table] {
        self.0.tables()
    }

    pub(crate) fn ddl(self, suffix: &str, tag: &str) -> Vec<String> {
        self.0.ddl(suffix, tag)
    }

    pub(crate) fn wants(self, event: &RecordedEvent) -> bool {
        self.0.wants(event)
    }

    /// Applies `event` if the model wants it.
    pub(crate) async fn apply(
        self,
        tx: &mut StoreTx,
        suffix: &str,
        event: &RecordedEvent,
    ) -> Result<(), StoreError> {
        if !self.wants(event) {
            return Ok(());
        }
        self.0.apply(tx, suffix, event).await
    }
}

impl PartialEq for Model {
    fn eq(&self, other: &Model) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Model {}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Model({})", self.name())
    }
}

/// RFC 3339 UTC with fixed microseconds, so text order is time order: how
/// the read models store every timestamp.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The word a serde enum serialises to (`chilled`, `per_kg`, …): how the
/// read models store enums, and how the API shows them.
pub fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The event, decoded, or a corrupt-event error naming its position.
pub(crate) fn decode(e: &RecordedEvent) -> Result<AnyEvent, StoreError> {
    e.decode().map_err(|err| StoreError::Corrupt {
        position: e.global_position as i64,
        reason: err.to_string(),
    })
}

pub(crate) use store::sql::typed;

/// Rows read back into their typed form.
pub(crate) fn all_typed<T: DeserializeOwned>(
    table: &'static str,
    rows: Vec<JsonRow>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(|r| typed(table, r)).collect()
}

/// The tables store flags as 0/1 integers (portable SQL has no boolean).
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

/// A JSON document stored in a TEXT column, read back into its type.
pub(crate) fn json_text<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}
