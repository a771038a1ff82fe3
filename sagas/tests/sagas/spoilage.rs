//! Batches expire on a controllable clock: warning, expiry, write-off of
//! what is not reserved; each timer fires once even with two schedulers;
//! a replay fires nothing again. On SQLite and Postgres.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::{Clock, FixedClock};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC, InventoryServices};
use domain::timer::{Timer, TimerServices};
use event_schemas::inventory::ColdChain;
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use sagas::spoilage::Spoilage;
use store::{Aggregates, Store, StoreConfig, Subscription};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn connect(url: &str) -> Store {
    let mut cfg = StoreConfig::new(url);
    cfg.poll_interval = Duration::from_millis(20);
    Store::connect(cfg).await.unwrap()
}

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn types(store: &Store, stream: &str, id: &str) -> Vec<String> {
    store
        .read_stream(stream, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn batches_expire_on_time_once(pg: bool) {
    let db = testkit::TestDb::new(
        if pg {
            testkit::Kind::Postgres
        } else {
            testkit::Kind::Sqlite
        },
        "saga",
    )
    .await;
    let url = db.url.clone();
    let store = connect(&url).await;
    store.migrate().await.unwrap();
    projections::ensure(&store).await.unwrap();
    let clock = Arc::new(FixedClock::at(t0()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    // "Two server processes": two stores, each with its scheduler.
    let other = connect(&url).await;
    let stop = CancellationToken::new();
    let mut tasks = projections::spawn(&store, stop.clone());
    for s in [&store, &other] {
        let timers = Arc::new(Aggregates::<Timer>::new(
            s,
            TimerServices {
                clock: dyn_clock.clone(),
            },
        ));
        tasks.push(tokio::spawn(sagas::timers::run(
            s.clone(),
            timers,
            dyn_clock.clone(),
            Duration::from_millis(20),
            stop.clone(),
        )));
    }
    let batches = Arc::new(Aggregates::<InventoryBatch>::new(
        &store,
        InventoryServices {
            clock: dyn_clock.clone(),
            catalog: Arc::new(
                domain::InMemoryCatalog::new([domain::Product::new(
                    "STR-250".parse().unwrap(),
                    "Strawberries, 250 g",
                    vec![domain::Category::Fruit],
                    Money::new(299, Currency::EUR).unwrap(),
                    PricingUnit::PerUnit,
                    "DE",
                    domain::Nutrition::default(),
                )
                .unwrap()])
                .with_samples(&["WH-1"], &["SUP-1"]),
            ),
        },
    ));
    let spoilage = Arc::new(Spoilage {
        batches: batches.clone(),
        timers: Arc::new(Aggregates::new(
            &store,
            TimerServices {
                clock: dyn_clock.clone(),
            },
        )),
        warn_before: chrono::Duration::hours(24),
    });
    let sub = Subscription::reactor("spoilage", &store, spoilage.clone());
    tasks.push(tokio::spawn({
        let stop = stop.clone();
        async move { sub.run(stop).await.unwrap() }
    }));

    let meta = EventMetadata {
        occurred_at: t0(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        idempotency_key: None,
    };
    let batch = BatchId::new();
    let bid = batch.to_string();
    batches
        .execute(
            &bid,
            IC::ReceiveBatch {
                batch_id: batch,
                sku: "STR-250".parse().unwrap(),
                warehouse_id: "WH-1".parse().unwrap(),
                supplier_id: "SUP-1".parse().unwrap(),
                quantity: Quantity::units(100).unwrap(),
                expires_at: t0() + chrono::Duration::days(2),
                procurement_cost: Money::new(10_000, Currency::EUR).unwrap(),
                cold_chain: ColdChain::Chilled,
            },
            &meta,
        )
        .await
        .unwrap();
    batches
        .execute(
            &bid,
            IC::ReserveStock {
                order_id: OrderId::new(),
                quantity: Quantity::units(30).unwrap(),
            },
            &meta,
        )
        .await
        .unwrap();

    // Both timers get scheduled; nothing fires before its time.
    wait_until("two timers scheduled", || async {
        projections::models::scheduled_timers(&store)
            .await
            .unwrap()
            .len()
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        types(&store, "InventoryBatch", &bid).await,
        ["BatchReceived", "StockReserved"]
    );

    // A day later: the warning.
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::minutes(1));
    wait_until("the expiry warning", || async {
        types(&store, "InventoryBatch", &bid)
            .await
            .contains(&"ExpiryWarningRaised".to_string())
    })
    .await;
    // Another day: expiry, and the 70 unreserved units written off.
    clock.advance(chrono::Duration::hours(24));
    wait_until("expiry and write-off", || async {
        types(&store, "InventoryBatch", &bid)
            .await
            .contains(&"StockWrittenOff".to_string())
    })
    .await;
    assert_eq!(
        types(&store, "InventoryBatch", &bid).await,
        [
            "BatchReceived",
            "StockReserved",
            "ExpiryWarningRaised",
            "BatchExpired",
            "StockWrittenOff"
        ]
    );
    let (b, _) = batches.load(&bid).await.unwrap();
    assert_eq!((b.written_off(), b.reserved(), b.available()), (70, 30, 0));
    let written = store.read_stream("InventoryBatch", &bid).await.unwrap();
    assert_eq!(written.last().unwrap().payload["reason"], "expired");

    // Each timer fired exactly once, though two schedulers ran.
    let all = store.read_all(0, 10_000).await.unwrap();
    let fired = all.iter().filter(|e| e.event_type == "TimerFired").count();
    assert_eq!(fired, 2, "each timer fires once");

    // A replay of the spoilage manager acts on nothing again.
    let before = store.count().await.unwrap();
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    store.reset_subscription("spoilage", 0).await.unwrap();
    Subscription::reactor("spoilage", &store, spoilage)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(
        store.count().await.unwrap(),
        before,
        "a replay appended events"
    );

    other.close().await;
    store.close().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_expire_on_time_once_sqlite() {
    batches_expire_on_time_once(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_expire_on_time_once_postgres() {
    batches_expire_on_time_once(true).await
}
