//! A rebuilt read model equals the live one, compared by checksum, after a
//! long random workload; and a rebuild runs while the live projections and
//! appends go on.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::catalog::{Category, InMemoryCatalog, Nutrition, Product};
use domain::clock::{Clock, SystemClock};
use domain::delivery::{Delivery, DeliveryCommand as DC};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC, InventoryServices};
use domain::order::{LineRequest, Order, OrderCommand as OC, OrderServices, PackRequest};
use domain::payment::{Payment, PaymentCommand as PC};
use event_schemas::delivery::ProofOfDelivery;
use event_schemas::inventory::{ColdChain, ReleaseReason, WriteOffReason};
use event_schemas::order::{Allocation, CancellationReason, PaymentMethod};
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use projections::Model;
use rand::{Rng, SeedableRng};
use store::{Aggregates, Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn open(pg: bool) -> (Store, testkit::TestDb) {
    let kind = if pg {
        testkit::Kind::Postgres
    } else {
        testkit::Kind::Sqlite
    };
    let db = testkit::TestDb::new(kind, "proj").await;
    let mut cfg = StoreConfig::new(db.url.clone());
    cfg.poll_interval = Duration::from_millis(20);
    let store = Store::connect(cfg).await.unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

async fn close(store: Store, db: testkit::TestDb) {
    store.close().await;
    db.remove().await;
}

fn meta() -> EventMetadata {
    EventMetadata {
        occurred_at: Utc::now(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        idempotency_key: None,
    }
}

fn eur(m: i64) -> Money {
    Money::new(m, Currency::EUR).unwrap()
}

struct World {
    orders: Aggregates<Order>,
    batches: Aggregates<InventoryBatch>,
    payments: Aggregates<Payment>,
    deliveries: Aggregates<Delivery>,
}

fn world(store: &Store) -> World {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = InMemoryCatalog::new([
        Product::new(
            "APL-GALA".parse().unwrap(),
            "Gala apples",
            vec![Category::Fruit],
            eur(299),
            PricingUnit::PerKg,
            "IT",
            Nutrition::default(),
        )
        .unwrap(),
        Product::new(
            "PIN-GOLD".parse().unwrap(),
            "Pineapple",
            vec![Category::Fruit],
            eur(349),
            PricingUnit::PerUnit,
            "CR",
            Nutrition::default(),
        )
        .unwrap(),
    ])
    .with_samples(&["WH-1"], &["SUP-1"]);
    let catalog: Arc<dyn domain::Catalog> = Arc::new(catalog);
    World {
        orders: Aggregates::new(
            store,
            OrderServices {
                catalog: catalog.clone(),
                clock: clock.clone(),
                slot_horizon: chrono::Duration::days(14),
            },
        ),
        batches: Aggregates::new(store, InventoryServices { clock, catalog }),
        payments: Aggregates::new(store, ()),
        deliveries: Aggregates::new(store, ()),
    }
}

/// Random but plausible traffic: batches received, orders placed and moved
/// along (or not), payments, deliveries, write-offs. Rejections are fine.
async fn workload(w: &World, seed: u64, steps: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut batches: Vec<BatchId> = Vec::new();
    let mut orders: Vec<(OrderId, BatchId, Option<PaymentId>, Option<DeliveryId>)> = Vec::new();
    let slot = DeliverySlot::new(
        Utc::now() + chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(1) + chrono::Duration::hours(2),
    )
    .unwrap();
    let address = Address::new("Ada", "Main 1", None, "Berlin", "10115", "DE").unwrap();
    let rider: RiderId = RiderId::new();
    for _ in 0..steps {
        let roll = rng.random_range(0..100);
        if batches.is_empty() || roll < 8 {
            let id = BatchId::new();
            let _ = w
                .batches
                .execute(
                    &id.to_string(),
                    IC::ReceiveBatch {
                        batch_id: id,
                        sku: "APL-GALA".parse().unwrap(),
                        warehouse_id: "WH-1".parse().unwrap(),
                        supplier_id: "SUP-1".parse().unwrap(),
                        quantity: Quantity::grams(20_000).unwrap(),
                        expires_at: Utc::now() + chrono::Duration::days(rng.random_range(1..20)),
                        procurement_cost: eur(4_000),
                        cold_chain: ColdChain::Chilled,
                    },
                    &meta(),
                )
                .await;
            batches.push(id);
            continue;
        }
        let batch = batches[rng.random_range(0..batches.len())];
        match roll {
            8..=30 => {
                let id = OrderId::new();
                let grams = rng.random_range(100..3_000);
                let method = if rng.random_bool(0.3) {
                    PaymentMethod::CashOnDelivery
                } else {
                    PaymentMethod::Card
                };
                if w.orders
                    .execute(
                        &id.to_string(),
                        OC::PlaceOrder {
                            order_id: id,
                            customer_id: CustomerId::from_uuid(Uuid::from_u128(
                                rng.random_range(1..6),
                            )),
                            warehouse_id: "WH-1".parse().unwrap(),
                            lines: vec![LineRequest {
                                sku: "APL-GALA".parse().unwrap(),
                                quantity: Quantity::grams(grams).unwrap(),
                            }],
                            delivery_slot: slot,
                            delivery_address: address.clone(),
                            payment_method: method,
                        },
                        &meta(),
                    )
                    .await
                    .is_ok()
                    && w.batches
                        .execute(
                            &batch.to_string(),
                            IC::ReserveStock {
                                order_id: id,
                                quantity: Quantity::grams(grams).unwrap(),
                            },
                            &meta(),
                        )
                        .await
                        .is_ok()
                {
                    let _ = w
                        .orders
                        .execute(
                            &id.to_string(),
                            OC::ConfirmAllocation {
                                allocations: vec![Allocation {
                                    sku: "APL-GALA".parse().unwrap(),
                                    batch_id: batch,
                                    quantity: Quantity::grams(grams).unwrap(),
                                }],
                            },
                            &meta(),
                        )
                        .await;
                    orders.push((id, batch, None, None));
                }
            }
            31..=85 if !orders.is_empty() => {
                let i = rng.random_range(0..orders.len());
                let (oid, b, pay, del) = orders[i];
                let (order, _) = w.orders.load(&oid.to_string()).await.unwrap();
                let total = order.total().unwrap();
                let sid = oid.to_string();
                match rng.random_range(0..7) {
                    0 if pay.is_none() => {
                        let p = PaymentId::new();
                        let _ = w
                            .payments
                            .execute(
                                &p.to_string(),
                                PC::InitiatePayment {
                                    payment_id: p,
                                    order_id: oid,
                                    method: PaymentMethod::Card,
                                    gateway: Some("simulated".parse().unwrap()),
                                    amount_due: total,
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .payments
                            .execute(
                                &p.to_string(),
                                PC::AuthorizePayment {
                                    amount: total,
                                    gateway_reference: "a".parse().unwrap(),
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .orders
                            .execute(
                                &sid,
                                OC::MarkPaid {
                                    payment_id: p,
                                    amount: total,
                                },
                                &meta(),
                            )
                            .await;
                        orders[i].2 = Some(p);
                    }
                    1 => {
                        let q = order.placed().unwrap().lines[0].quantity;
                        let _ = w
                            .batches
                            .execute(
                                &b.to_string(),
                                IC::PickStock {
                                    order_id: oid,
                                    quantity: q,
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .orders
                            .execute(
                                &sid,
                                OC::PackOrder {
                                    lines: vec![PackRequest {
                                        sku: "APL-GALA".parse().unwrap(),
                                        packed_quantity: q,
                                    }],
                                },
                                &meta(),
                            )
                            .await;
                    }
                    2 if del.is_none() => {
                        let d = DeliveryId::new();
                        let _ = w
                            .deliveries
                            .execute(
                                &d.to_string(),
                                DC::CreateDelivery {
                                    delivery_id: d,
                                    order_id: oid,
                                    slot,
                                    address: address.clone(),
                                    cold_chain: true,
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .deliveries
                            .execute(&d.to_string(), DC::AssignRider { rider_id: rider }, &meta())
                            .await;
                        let _ = w
                            .deliveries
                            .execute(&d.to_string(), DC::PickUp { rider_id: rider }, &meta())
                            .await;
                        let _ = w
                            .orders
                            .execute(&sid, OC::ShipOrder { delivery_id: d }, &meta())
                            .await;
                        orders[i].3 = Some(d);
                    }
                    3 if del.is_some() => {
                        let d = del.unwrap();
                        let _ = w
                            .deliveries
                            .execute(
                                &d.to_string(),
                                DC::ReportLocation {
                                    location: GeoPoint::new(
                                        52_500_000 + rng.random_range(0..10_000),
                                        13_400_000,
                                    )
                                    .unwrap(),
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .deliveries
                            .execute(
                                &d.to_string(),
                                DC::CompleteDelivery {
                                    proof: ProofOfDelivery::Pin { pin_verified: true },
                                },
                                &meta(),
                            )
                            .await;
                        let _ = w
                            .orders
                            .execute(&sid, OC::MarkDelivered { delivery_id: d }, &meta())
                            .await;
                        if let Some(p) = pay {
                            let _ = w
                                .payments
                                .execute(
                                    &p.to_string(),
                                    PC::CapturePayment {
                                        amount: total,
                                        gateway_reference: "c".parse().unwrap(),
                                    },
                                    &meta(),
                                )
                                .await;
                        }
                    }
                    4 => {
                        if w.orders
                            .execute(
                                &sid,
                                OC::CancelOrder {
                                    reason: CancellationReason::CustomerRequest,
                                    note: None,
                                },
                                &meta(),
                            )
                            .await
                            .is_ok()
                        {
                            let _ = w
                                .batches
                                .execute(
                                    &b.to_string(),
                                    IC::ReleaseReservation {
                                        order_id: oid,
                                        reason: ReleaseReason::OrderCancelled,
                                    },
                                    &meta(),
                                )
                                .await;
                        }
                    }
                    5 if pay.is_some() => {
                        let _ = w
                            .payments
                            .execute(
                                &pay.unwrap().to_string(),
                                PC::RefundPayment {
                                    amount: eur(1),
                                    gateway_reference: None,
                                    note: None,
                                },
                                &meta(),
                            )
                            .await;
                    }
                    _ => {
                        let _ = w
                            .orders
                            .execute(
                                &sid,
                                OC::RequestRefund {
                                    amount: eur(1),
                                    reason: event_schemas::order::RefundReason::CustomerComplaint,
                                },
                                &meta(),
                            )
                            .await;
                    }
                }
            }
            _ => {
                let _ = w
                    .batches
                    .execute(
                        &batch.to_string(),
                        IC::WriteOffStock {
                            quantity: Quantity::grams(rng.random_range(1..500)).unwrap(),
                            reason: [
                                WriteOffReason::Spoiled,
                                WriteOffReason::Damaged,
                                WriteOffReason::Quality,
                            ][rng.random_range(0..3)],
                            note: None,
                        },
                        &meta(),
                    )
                    .await;
            }
        }
    }
}

async fn rebuilt_equals_live(pg: bool) {
    let (store, db) = open(pg).await;
    projections::ensure(&store).await.unwrap();
    let w = world(&store);
    // Live projections run while the workload appends.
    let stop = CancellationToken::new();
    let runners = projections::spawn(&store, stop.clone());
    workload(&w, 7, 600).await;
    let head = store.head().await.unwrap();
    assert!(head > 500, "a long workload: {head} events");
    projections::wait_for(&store, head, Duration::from_secs(60))
        .await
        .unwrap();
    // Rebuild each model while appends continue and the live runners run.
    let more = workload(&w, 8, 150);
    let rebuilds = async {
        for m in Model::ALL {
            projections::rebuild(&store, m, |_, _| {}).await.unwrap();
        }
    };
    tokio::join!(more, rebuilds);
    let head = store.head().await.unwrap();
    if let Err(low) = projections::wait_for(&store, head, Duration::from_secs(60)).await {
        panic!(
            "projections stuck at {low} of {head}: {:?}",
            store.subscriptions().await.unwrap()
        );
    }
    stop.cancel();
    for r in runners {
        r.await.unwrap();
    }
    let live: Vec<String> = futures_checksums(&store).await;
    // Now rebuild again, quietly, and compare.
    for m in Model::ALL {
        let reported = std::sync::Mutex::new(Vec::new());
        projections::rebuild(&store, m, |done, total| {
            reported.lock().unwrap().push((done, total))
        })
        .await
        .unwrap();
        let r = reported.into_inner().unwrap();
        assert_eq!(
            r.last().map(|(d, t)| d == t),
            Some(true),
            "progress ends at 100%"
        );
    }
    let rebuilt = futures_checksums(&store).await;
    assert_eq!(
        live, rebuilt,
        "a rebuilt read model differs from the live one"
    );
    // At start, models stored at another schema version are rebuilt (in
    // one read of the log) and come back the same, at the current version.
    store::sql::exec_pool(
        &store,
        "UPDATE projection_versions SET version = 0 WHERE name IN ('orders', 'stock')",
        &[],
    )
    .await
    .unwrap();
    projections::ensure(&store).await.unwrap();
    assert_eq!(futures_checksums(&store).await, live, "rebuilt at start");
    let stale = store::sql::fetch(
        &store,
        "SELECT name FROM projection_versions WHERE version <> ?",
        &[projections::SCHEMA_VERSION.into()],
    )
    .await
    .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
    // And the content is what the aggregates say.
    let rows = store::sql::fetch(
        &store,
        "SELECT batch_id, on_hand, reserved FROM rm_batches",
        &[],
    )
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for r in rows.iter().take(10) {
        let (batch, _) = w
            .batches
            .load(r["batch_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(r["on_hand"].as_i64().unwrap() as u64, batch.on_hand());
        assert_eq!(r["reserved"].as_i64().unwrap() as u64, batch.reserved());
    }
    let statuses = store::sql::fetch(
        &store,
        "SELECT status, count(*) AS n FROM rm_orders GROUP BY status",
        &[],
    )
    .await
    .unwrap();
    assert!(
        statuses.len() >= 3,
        "orders in several states: {statuses:?}"
    );
    close(store, db).await;
}

async fn futures_checksums(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for m in Model::ALL {
        out.push(projections::checksum(store, m).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilt_read_models_equal_live_ones_sqlite() {
    rebuilt_equals_live(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilt_read_models_equal_live_ones_postgres() {
    rebuilt_equals_live(true).await
}
