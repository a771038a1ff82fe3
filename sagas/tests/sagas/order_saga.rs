//! The order saga never acts twice: rewinding its subscription (its state
//! says what each order has seen) appends nothing, and neither does running
//! every step again with its state lost (each step decides from the
//! aggregates). On SQLite and Postgres.

use chrono::Duration;
use domain::inventory::InventoryBatchCommand as IC;
use domain::order::{OrderCommand as OC, OrderStatus};
use event_schemas::order::{CancellationReason, PaymentMethod};
use event_schemas::values::*;
use sagas::order::{load_state, Phase, SUBSCRIPTION};

use crate::world::{meta, world};

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
