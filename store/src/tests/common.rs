//! Opens a fresh store per test: a temporary SQLite file, or a new Postgres
//! database on the server named by FRESHLEDGER_TEST_PG, so tests run in
//! parallel without seeing each other.

use std::sync::Arc;
use std::time::Duration;

use crate::{Aggregates, Store, StoreConfig};
use chrono::{DateTime, Utc};
use domain::clock::{Clock, FixedClock};
use domain::inventory::{InventoryBatch, InventoryBatchCommand, InventoryServices};
use event_schemas::inventory::ColdChain;
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use uuid::Uuid;

pub use testkit::Kind;
use testkit::TestDb;

pub struct TestStore {
    pub store: Store,
    pub url: String,
    pub kind: Kind,
    db: TestDb,
}

pub fn config(url: &str) -> StoreConfig {
    let mut c = StoreConfig::new(url);
    c.max_connections = 12;
    c.poll_interval = Duration::from_millis(100);
    c
}

pub async fn open(kind: Kind) -> TestStore {
    open_with(kind, |_| {}).await
}

pub async fn open_with(kind: Kind, tweak: impl FnOnce(&mut StoreConfig)) -> TestStore {
    let db = TestDb::new(kind, "test").await;
    let url = db.url.clone();
    let mut cfg = config(&url);
    tweak(&mut cfg);
    let store = Store::connect(cfg).await.unwrap();
    store.migrate().await.unwrap();
    TestStore {
        store,
        url,
        kind,
        db,
    }
}

impl TestStore {
    /// Another, independent connection pool to the same log (another process).
    pub async fn another(&self, tweak: impl FnOnce(&mut StoreConfig)) -> Store {
        let mut cfg = config(&self.url);
        tweak(&mut cfg);
        Store::connect(cfg).await.unwrap()
    }

    pub async fn finish(self) {
        self.store.close().await;
        self.db.remove().await;
    }
}

pub fn now() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

pub fn meta() -> EventMetadata {
    EventMetadata {
        occurred_at: now(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        idempotency_key: None,
    }
}

/// The catalogue the store tests receive batches of: Gala apples, per kg.
pub fn catalog() -> Arc<dyn domain::Catalog> {
    Arc::new(
        domain::InMemoryCatalog::new([domain::Product::new(
            "APL-GALA".parse().unwrap(),
            "Gala apples",
            vec![domain::Category::Fruit],
            Money::new(299, Currency::EUR).unwrap(),
            PricingUnit::PerKg,
            "IT",
            domain::Nutrition::default(),
        )
        .unwrap()])
        .with_samples(&["WH-1"], &["SUP-1"]),
    )
}

pub fn batches(store: &Store) -> Aggregates<InventoryBatch> {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(now()));
    Aggregates::new(
        store,
        InventoryServices {
            clock,
            catalog: catalog(),
        },
    )
}

pub fn receive(batch: BatchId, grams: u64) -> InventoryBatchCommand {
    InventoryBatchCommand::ReceiveBatch {
        batch_id: batch,
        sku: "APL-GALA".parse().unwrap(),
        warehouse_id: "WH-1".parse().unwrap(),
        supplier_id: "SUP-1".parse().unwrap(),
        quantity: Quantity::grams(grams).unwrap(),
        expires_at: now() + chrono::Duration::days(7),
        procurement_cost: Money::new(10_000, Currency::EUR).unwrap(),
        cold_chain: ColdChain::Chilled,
    }
}

/// Appends one event with raw SQL inside a transaction the caller controls,
/// the way postgres-es or our SQLite repository would.
pub fn raw_insert_sql(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('InventoryBatch', $1, 1, 'BatchReceived', '1.0', $2::json, $3::json)",
        Kind::Sqlite => "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, event_id) VALUES ('InventoryBatch', ?, 1, 'BatchReceived', '1.0', ?, ?, ?)",
    }
}

/// A stored BatchReceived payload and metadata for stream `id`.
pub fn raw_event(id: BatchId) -> (String, String, String) {
    let payload = serde_json::json!({"BatchReceived": {
        "batch_id": id, "sku": "APL-GALA", "warehouse_id": "WH-1", "supplier_id": "SUP-1",
        "quantity": {"uom": "gram", "amount": 1000},
        "received_at": now(), "expires_at": now() + chrono::Duration::days(7),
        "procurement_cost": {"amount_minor": 100, "currency": "EUR"},
        "cold_chain": "chilled"
    }});
    let event_id = Uuid::now_v7().to_string();
    let mut m = meta().to_map();
    m.insert("event_id".into(), event_id.clone());
    (
        payload.to_string(),
        serde_json::to_string(&m).unwrap(),
        event_id,
    )
}
