//! A store with the read models and the order saga on a fixed clock, a
//! warehouse, a supplier and a product: what the saga tests drive. Shared
//! by the test binaries through `#[path]`.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::catalog::{Category, Nutrition, Product};
use domain::clock::{Clock, FixedClock};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC};
use domain::order::{LineRequest, Order, OrderCommand as OC, OrderStatus};
use event_schemas::inventory::ColdChain;
use event_schemas::order::PaymentMethod;
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use sagas::gateway::{Outcome, SimulatedGateway};
use sagas::order::{OrderSaga, SagaConfig, SUBSCRIPTION};
use store::{Aggregates, Store, StoreConfig, Subscription};
use uuid::Uuid;
use write_side::WriteSide;

pub fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

pub fn meta() -> EventMetadata {
    EventMetadata {
        occurred_at: t0(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        idempotency_key: None,
    }
}

pub struct World {
    pub clock: Arc<FixedClock>,
    pub store: Store,
    pub orders: Arc<Aggregates<Order>>,
    pub batches: Arc<Aggregates<InventoryBatch>>,
    pub saga: Subscription,
}

impl World {
    /// Read models and the saga, until neither has anything left to do.
    pub async fn settle(&self) {
        loop {
            projections::catch_up(&self.store).await.unwrap();
            let s = self.saga.catch_up().await.unwrap();
            assert!(!s.parked, "saga parked: {:?}", s.last_error);
            if s.position == self.store.head().await.unwrap() {
                projections::catch_up(&self.store).await.unwrap();
                return;
            }
        }
    }

    pub async fn place(&self, units: u64, method: PaymentMethod) -> OrderId {
        let order_id = OrderId::new();
        let slot_start = t0() + Duration::hours(20);
        self.orders
            .execute(
                &order_id.to_string(),
                OC::PlaceOrder {
                    order_id,
                    customer_id: CustomerId::new(),
                    warehouse_id: "WH-BER-1".parse().unwrap(),
                    lines: vec![LineRequest {
                        sku: "PIN-GOLD".parse().unwrap(),
                        quantity: Quantity::units(units).unwrap(),
                    }],
                    delivery_slot: DeliverySlot::new(slot_start, slot_start + Duration::hours(2))
                        .unwrap(),
                    delivery_address: serde_json::from_value(serde_json::json!({
                        "recipient": "Ada Lovelace", "line1": "Invalidenstrasse 1",
                        "city": "Berlin", "postal_code": "10115", "country": "DE"
                    }))
                    .unwrap(),
                    payment_method: method,
                },
                &meta(),
            )
            .await
            .unwrap();
        order_id
    }

    pub async fn receive(&self, units: u64, expires_in: Duration) -> BatchId {
        let batch_id = BatchId::new();
        self.batches
            .execute(
                &batch_id.to_string(),
                IC::ReceiveBatch {
                    batch_id,
                    sku: "PIN-GOLD".parse().unwrap(),
                    warehouse_id: "WH-BER-1".parse().unwrap(),
                    supplier_id: "SUP-1".parse().unwrap(),
                    quantity: Quantity::units(units).unwrap(),
                    expires_at: t0() + expires_in,
                    procurement_cost: Money::new(500, Currency::EUR).unwrap(),
                    cold_chain: ColdChain::Ambient,
                },
                &meta(),
            )
            .await
            .unwrap();
        batch_id
    }

    pub async fn status(&self, id: OrderId) -> Option<OrderStatus> {
        self.orders.load(&id.to_string()).await.unwrap().0.status()
    }
}

pub async fn world(db: &testkit::TestDb) -> World {
    let store = Store::connect(StoreConfig::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    projections::ensure(&store).await.unwrap();
    let fixed = Arc::new(FixedClock::at(t0()));
    let clock: Arc<dyn Clock> = fixed.clone();
    let write = WriteSide::new(&store, clock);
    write
        .catalog
        .register_warehouse(&domain::registry::sample_warehouse("WH-BER-1"))
        .await
        .unwrap();
    write
        .catalog
        .register_supplier(&domain::registry::sample_supplier("SUP-1"))
        .await
        .unwrap();
    write
        .catalog
        .upsert(
            &Product::new(
                "PIN-GOLD".parse().unwrap(),
                "Golden pineapple",
                vec![Category::Fruit],
                Money::new(349, Currency::EUR).unwrap(),
                PricingUnit::PerUnit,
                "CR",
                Nutrition::default(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let saga = OrderSaga::new(
        &write,
        Arc::new(SimulatedGateway::new(
            Outcome::ByAmount,
            std::time::Duration::ZERO,
        )),
        SagaConfig {
            shelf_life_margin: Duration::zero(),
            ..Default::default()
        },
    );
    let (orders, batches) = (write.orders.clone(), write.batches.clone());
    World {
        clock: fixed,
        saga: Subscription::reactor(SUBSCRIPTION, &store, Arc::new(saga)),
        store,
        orders,
        batches,
    }
}
