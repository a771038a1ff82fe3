//! The order saga never acts twice: rewinding its subscription (its state
//! says what each order has seen) appends nothing, and neither does running
//! every step again with its state lost (each step decides from the
//! aggregates). On SQLite and Postgres.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::catalog::{Category, Nutrition, Product};
use domain::clock::{Clock, FixedClock};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC};
use domain::order::{LineRequest, Order, OrderCommand as OC, OrderStatus};
use event_schemas::inventory::ColdChain;
use event_schemas::order::{CancellationReason, PaymentMethod};
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use sagas::gateway::{Outcome, SimulatedGateway};
use sagas::order::{load_state, OrderSaga, Phase, SagaConfig, SUBSCRIPTION};
use store::{Aggregates, Store, StoreConfig, Subscription};
use uuid::Uuid;
use write_side::WriteSide;

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn meta() -> EventMetadata {
    EventMetadata {
        occurred_at: t0(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        idempotency_key: None,
    }
}

struct World {
    clock: Arc<FixedClock>,
    store: Store,
    orders: Arc<Aggregates<Order>>,
    batches: Arc<Aggregates<InventoryBatch>>,
    saga: Subscription,
}

impl World {
    /// Read models and the saga, until neither has anything left to do.
    async fn settle(&self) {
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

    async fn place(&self, units: u64, method: PaymentMethod) -> OrderId {
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

    async fn receive(&self, units: u64, expires_in: Duration) -> BatchId {
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

    async fn status(&self, id: OrderId) -> Option<OrderStatus> {
        self.orders.load(&id.to_string()).await.unwrap().0.status()
    }
}

async fn world(db: &testkit::TestDb) -> World {
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

async fn the_saga_never_acts_twice(kind: testkit::Kind) {
    let db = testkit::TestDb::new(kind, "order_saga").await;
    let w = world(&db).await;
    for (units, days) in [(3, 2), (4, 5)] {
        w.receive(units, Duration::days(days)).await;
    }
    // 7 pineapples: one paid, one on delivery, four across both batches
    // (first-expiring first), then 2 wanted and 1 left; the paid one is
    // cancelled by the customer.
    let paid = w.place(1, PaymentMethod::Card).await;
    let cod = w.place(1, PaymentMethod::CashOnDelivery).await;
    let spans = w.place(4, PaymentMethod::Card).await;
    let late = w.place(2, PaymentMethod::Card).await;
    w.settle().await;
    w.orders
        .execute(
            &paid.to_string(),
            OC::CancelOrder {
                reason: CancellationReason::CustomerRequest,
                note: None,
            },
            &meta(),
        )
        .await
        .unwrap();
    w.settle().await;
    assert_eq!(w.status(paid).await, Some(OrderStatus::Cancelled));
    assert_eq!(w.status(cod).await, Some(OrderStatus::Created));
    assert_eq!(w.status(spans).await, Some(OrderStatus::Paid));
    assert_eq!(w.status(late).await, Some(OrderStatus::Cancelled));
    let phases = |s: Option<sagas::order::SagaState>| s.map(|s| s.phase);
    assert_eq!(
        phases(load_state(&w.store, paid).await.unwrap()),
        Some(Phase::Cancelled)
    );
    assert_eq!(
        phases(load_state(&w.store, cod).await.unwrap()),
        Some(Phase::ReadyToPack)
    );
    assert_eq!(
        phases(load_state(&w.store, spans).await.unwrap()),
        Some(Phase::ReadyToPack)
    );
    let spans_state = load_state(&w.store, spans).await.unwrap().unwrap();
    assert_eq!(
        spans_state.allocations.len(),
        2,
        "4 units across both batches"
    );
    let events = w.store.count().await.unwrap();

    // Rewound, the saga recognises every event it has applied.
    w.store.reset_subscription(SUBSCRIPTION, 0).await.unwrap();
    w.settle().await;
    assert_eq!(
        w.store.count().await.unwrap(),
        events,
        "a rewind acted again"
    );

    // With its state lost too, every step runs again and finds its work
    // done in the aggregates.
    store::sql::exec_pool(&w.store, "DELETE FROM saga_orders", &[])
        .await
        .unwrap();
    w.store.reset_subscription(SUBSCRIPTION, 0).await.unwrap();
    w.settle().await;
    assert_eq!(
        w.store.count().await.unwrap(),
        events,
        "a step run again acted again"
    );
    assert_eq!(
        load_state(&w.store, spans).await.unwrap(),
        Some(spans_state)
    );
    db.remove().await;
}

#[tokio::test]
async fn the_saga_never_acts_twice_sqlite() {
    the_saga_never_acts_twice(testkit::Kind::Sqlite).await;
}

#[tokio::test]
async fn the_saga_never_acts_twice_postgres() {
    the_saga_never_acts_twice(testkit::Kind::Postgres).await;
}

/// A line spanning two batches whose first-expiring one expires moves
/// wholly to the other, topping up what the order already holds there,
/// rather than being cancelled while stock is available.
async fn a_spanning_line_moves_to_the_batch_it_already_holds(kind: testkit::Kind) {
    let db = testkit::TestDb::new(kind, "order_saga").await;
    let w = world(&db).await;
    let early = w.receive(3, Duration::hours(30)).await;
    let late = w.receive(10, Duration::days(5)).await;
    let spans = w.place(4, PaymentMethod::Card).await;
    w.settle().await;
    assert_eq!(w.status(spans).await, Some(OrderStatus::Paid));
    let held = |b: BatchId| {
        let batches = w.batches.clone();
        async move {
            batches
                .load(&b.to_string())
                .await
                .unwrap()
                .0
                .reserved_for(&spans)
        }
    };
    assert_eq!((held(early).await, held(late).await), (3, 1), "FEFO");

    w.clock.advance(Duration::hours(31));
    w.batches
        .execute(&early.to_string(), IC::MarkExpired, &meta())
        .await
        .unwrap();
    w.settle().await;
    assert_eq!(
        w.status(spans).await,
        Some(OrderStatus::Paid),
        "not cancelled"
    );
    assert_eq!((held(early).await, held(late).await), (0, 4));
    let (order, _) = w.orders.load(&spans.to_string()).await.unwrap();
    let allocated: Vec<(BatchId, u64)> = order
        .allocations()
        .iter()
        .map(|a| (a.batch_id, a.quantity.amount()))
        .collect();
    assert_eq!(allocated, vec![(late, 4)]);
    db.remove().await;
}

#[tokio::test]
async fn a_spanning_line_moves_to_the_batch_it_already_holds_sqlite() {
    a_spanning_line_moves_to_the_batch_it_already_holds(testkit::Kind::Sqlite).await
}

#[tokio::test]
async fn a_spanning_line_moves_to_the_batch_it_already_holds_postgres() {
    a_spanning_line_moves_to_the_batch_it_already_holds(testkit::Kind::Postgres).await
}

/// One order's flow is one trace: the command that places it runs in a
/// span, its events carry that span's W3C context, the saga's reactions
/// continue it (their spans are children of it), and the commands they send
/// carry it on, through payment. Seen through the SDK's in-memory exporter.
#[tokio::test]
async fn the_saga_continues_the_trace_of_the_command_it_reacts_to() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _installed = tracing::subscriber::set_default(subscriber);

    let db = testkit::TestDb::new(testkit::Kind::Sqlite, "order_saga").await;
    let w = world(&db).await;
    // Outside any span: no context to carry.
    w.receive(5, Duration::days(3)).await;
    let command = tracing::info_span!("command", trace_id = tracing::field::Empty);
    telemetry::follow(&command, None);
    let trace = telemetry::trace_id(&command).expect("a trace");
    let order = w
        .place(1, PaymentMethod::Card)
        .instrument(command.clone())
        .await;
    drop(command);
    w.settle().await;
    assert_eq!(w.status(order).await, Some(OrderStatus::Paid));

    let log = w.store.read_all(0, 1_000).await.unwrap();
    let placed = log
        .iter()
        .find(|e| e.event_type == "OrderPlaced")
        .expect("placed");
    let flow: Vec<_> = w
        .store
        .read_correlation(placed.correlation_id)
        .await
        .unwrap();
    let types: Vec<&str> = flow.iter().map(|e| e.event_type.as_str()).collect();
    for t in [
        "OrderPlaced",
        "StockReserved",
        "PaymentAuthorized",
        "OrderPaid",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }
    for e in &flow {
        let tp = e.trace_parent.as_deref().unwrap_or_else(|| {
            panic!("{} carries no trace context", e.event_type);
        });
        assert_eq!(
            tp.split('-').nth(1),
            Some(trace.as_str()),
            "{}",
            e.event_type
        );
    }
    assert!(log
        .iter()
        .filter(|e| e.event_type == "BatchReceived")
        .all(|e| e.trace_parent.is_none()));

    let spans = exporter.get_finished_spans().unwrap();
    let reactions: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "react" && s.span_context.trace_id().to_string() == trace)
        .collect();
    // At least the placement (allocation, payment) and the payment (the
    // hold timer cancelled) were reacted to within the trace.
    assert!(
        reactions.len() >= 2,
        "{} reactions in the trace",
        reactions.len()
    );
    let command_span = spans.iter().find(|s| s.name == "command").unwrap();
    assert!(reactions
        .iter()
        .any(|s| s.parent_span_id == command_span.span_context.span_id()));
    db.remove().await;
}
