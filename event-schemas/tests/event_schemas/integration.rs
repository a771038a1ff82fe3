//! Integration events: each public event type is made from its source
//! event (and the source stream's first event where needed), validates
//! against its committed schema, keeps its source's id, and nothing else
//! becomes public.

use chrono::{DateTime, Utc};
use event_schemas::delivery::*;
use event_schemas::integration::{self, integration_event, needs_origin};
use event_schemas::inventory::*;
use event_schemas::order::*;
use event_schemas::payment::*;
use event_schemas::values::*;
use event_schemas::{Actor, RecordedEvent};
use serde_json::Value;
use uuid::Uuid;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn eur(m: i64) -> Money {
    Money::new(m, Currency::EUR).unwrap()
}

/// An envelope around `body` at `version` of stream (`stream`, `id`).
fn recorded(stream: &str, id: &str, version: u64, event_type: &str, body: Value) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::now_v7(),
        global_position: 100 + version,
        stream_type: stream.into(),
        stream_id: id.into(),
        stream_version: version,
        event_type: event_type.into(),
        event_version: "1.0".into(),
        occurred_at: at("2026-11-30T09:00:00Z"),
        recorded_at: at("2026-11-30T09:00:01Z"),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("test"),
        trace_parent: None,
        payload: body,
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(event_schemas::schema::integration_schema_path(name));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path:?}"));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn slot() -> DeliverySlot {
    DeliverySlot::new(at("2026-12-01T16:00:00Z"), at("2026-12-01T18:00:00Z")).unwrap()
}

/// A source event, its stream's first event (when needed), the public
/// type it becomes, the key, and one field of the data to check.
type Case<'a> = (
    RecordedEvent,
    Option<&'a RecordedEvent>,
    &'static str,
    String,
    (&'static str, Value),
);

#[test]
fn every_public_event_is_made_validated_and_keyed() {
    let order_id = OrderId::new();
    let oid = order_id.as_uuid().to_string();
    let batch_id = BatchId::new();
    let bid = batch_id.as_uuid().to_string();
    let payment_id = PaymentId::new();
    let pid = payment_id.as_uuid().to_string();
    let delivery_id = DeliveryId::new();
    let did = delivery_id.as_uuid().to_string();
    let kg = |m| UnitPrice {
        amount: eur(m),
        per: PricingUnit::PerKg,
    };
    let placed = recorded(
        "Order",
        &oid,
        1,
        "OrderPlaced",
        OrderEvent::from(OrderPlaced {
            order_id,
            customer_id: CustomerId::new(),
            warehouse_id: "WH-BER-1".parse().unwrap(),
            lines: vec![
                OrderLine {
                    sku: "APL-GALA".parse().unwrap(),
                    quantity: Quantity::grams(1_500).unwrap(),
                    unit_price: kg(299),
                },
                OrderLine {
                    sku: "BAN-CAV".parse().unwrap(),
                    quantity: Quantity::grams(1_000).unwrap(),
                    unit_price: kg(199),
                },
            ],
            delivery_slot: slot(),
            delivery_address: Address::new(
                "Ada",
                "Invalidenstrasse 1",
                None,
                "Berlin",
                "10115",
                "DE",
            )
            .unwrap(),
            payment_method: PaymentMethod::Card,
        })
        .body(),
    );
    let received = recorded(
        "InventoryBatch",
        &bid,
        1,
        "BatchReceived",
        InventoryBatchEvent::from(BatchReceived {
            batch_id,
            sku: "APL-GALA".parse().unwrap(),
            warehouse_id: "WH-BER-1".parse().unwrap(),
            supplier_id: "SUP-1".parse().unwrap(),
            quantity: Quantity::grams(10_000).unwrap(),
            received_at: at("2026-11-29T08:00:00Z"),
            expires_at: at("2026-12-05T08:00:00Z"),
            procurement_cost: eur(1_000),
            cold_chain: ColdChain::Chilled,
        })
        .body(),
    );
    let initiated = recorded(
        "Payment",
        &pid,
        1,
        "PaymentInitiated",
        PaymentEvent::from(PaymentInitiated {
            payment_id,
            order_id,
            method: PaymentMethod::Card,
            gateway: Some("simulated".parse().unwrap()),
            amount_due: eur(648),
        })
        .body(),
    );
    let created = recorded(
        "Delivery",
        &did,
        1,
        "DeliveryCreated",
        DeliveryEvent::from(DeliveryCreated {
            delivery_id,
            order_id,
            slot: slot(),
            address: Address::new("Ada", "Invalidenstrasse 1", None, "Berlin", "10115", "DE")
                .unwrap(),
            cold_chain: true,
        })
        .body(),
    );
    let order_event = |v, ty, e: OrderEvent| recorded("Order", &oid, v, ty, e.body());
    let cases: Vec<Case<'_>> = vec![
        (
            placed.clone(),
            None,
            "OrderCreated",
            oid.clone(),
            ("/data/total/amount_minor", 648.into()),
        ),
        (
            order_event(
                2,
                "OrderPaid",
                OrderEvent::from(OrderPaid {
                    payment_id,
                    amount: eur(648),
                }),
            ),
            None,
            "PaymentConfirmed",
            oid.clone(),
            ("/data/payment_id", pid.clone().into()),
        ),
        (
            recorded(
                "InventoryBatch",
                &bid,
                2,
                "StockReserved",
                InventoryBatchEvent::from(StockReserved {
                    order_id,
                    quantity: Quantity::grams(1_500).unwrap(),
                })
                .body(),
            ),
            Some(&received),
            "InventoryReserved",
            oid.clone(),
            ("/data/sku", "APL-GALA".into()),
        ),
        (
            recorded(
                "Delivery",
                &did,
                2,
                "RiderAssigned",
                DeliveryEvent::from(RiderAssigned {
                    rider_id: RiderId::new(),
                })
                .body(),
            ),
            Some(&created),
            "DeliveryAssigned",
            oid.clone(),
            ("/data/delivery_id", did.clone().into()),
        ),
        (
            order_event(
                5,
                "OrderShipped",
                OrderEvent::from(OrderShipped { delivery_id }),
            ),
            None,
            "OrderShipped",
            oid.clone(),
            ("/data/order_id", oid.clone().into()),
        ),
        (
            order_event(
                6,
                "OrderDelivered",
                OrderEvent::from(OrderDelivered { delivery_id }),
            ),
            None,
            "OrderDelivered",
            oid.clone(),
            ("/data/delivery_id", did.clone().into()),
        ),
        (
            order_event(
                3,
                "OrderCancelled",
                OrderEvent::from(OrderCancelled {
                    reason: CancellationReason::OutOfStock,
                    note: None,
                }),
            ),
            None,
            "OrderCancelled",
            oid.clone(),
            ("/data/reason", "out_of_stock".into()),
        ),
        (
            recorded(
                "Payment",
                &pid,
                4,
                "PaymentRefunded",
                PaymentEvent::from(PaymentRefunded {
                    amount: eur(200),
                    gateway_reference: None,
                    note: None,
                })
                .body(),
            ),
            Some(&initiated),
            "RefundIssued",
            oid.clone(),
            ("/data/amount/amount_minor", 200.into()),
        ),
        (
            recorded(
                "InventoryBatch",
                &bid,
                7,
                "BatchExpired",
                InventoryBatchEvent::from(BatchExpired {
                    expires_at: at("2026-12-05T08:00:00Z"),
                    on_hand: 2_500,
                    reserved: 0,
                })
                .body(),
            ),
            Some(&received),
            "ItemExpired",
            bid.clone(),
            ("/data/quantity/amount", 2_500.into()),
        ),
    ];
    let mut made = Vec::new();
    for (source, origin, ty, key, (pointer, want)) in &cases {
        assert_eq!(needs_origin(source), origin.is_some(), "{ty}");
        let public = integration_event(source, *origin)
            .unwrap()
            .unwrap_or_else(|| panic!("{ty}: nothing made"));
        assert_eq!(public.event_type, *ty);
        assert_eq!(&public.key, key, "{ty}");
        assert_eq!(public.value["id"], source.event_id.to_string());
        assert_eq!(public.value["type"], *ty);
        assert_eq!(public.value["version"], integration::VERSION);
        assert_eq!(
            public.value["source"]["global_position"],
            source.global_position
        );
        assert_eq!(
            public.value.pointer(pointer),
            Some(want),
            "{ty}: {}",
            public.value
        );
        let schema = validator(ty);
        assert!(schema.is_valid(&public.value), "{ty}: {}", public.value);
        let mut wrong = public.value.clone();
        wrong["type"] = "SomethingElse".into();
        assert!(!schema.is_valid(&wrong), "{ty} accepts another type");
        let mut extra = public.value.clone();
        extra["data"]["surprise"] = true.into();
        assert!(!schema.is_valid(&extra), "{ty} accepts unknown fields");
        made.push(*ty);
    }
    made.sort();
    let mut all = integration::NAMES.to_vec();
    all.sort();
    assert_eq!(made, all, "every public type is covered");

    // A source that needs its origin fails without it (never guesses), and
    // with another stream's first event.
    let reserved = &cases[2].0;
    assert!(integration_event(reserved, None).is_err());
    assert!(integration_event(reserved, Some(&initiated)).is_err());
    // Internal-only events are not published.
    for internal in [&received, &initiated, &created] {
        assert!(integration_event(internal, None).unwrap().is_none());
    }
}
