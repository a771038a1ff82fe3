//! The committed JSON Schemas are exactly what the code generates.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p event-schemas --test event_schemas`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use event_schemas::schema::all_schema_files;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn committed_files() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = schemas_dir();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.insert(
                    p.strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out
}

#[test]
fn committed_schemas_match_the_code() {
    let generated = all_schema_files();
    let dir = schemas_dir();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, body) in &generated {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }
    let mut drift = Vec::new();
    for (path, body) in &generated {
        match std::fs::read_to_string(dir.join(path)) {
            Ok(committed) if &committed == body => {}
            Ok(_) => drift.push(format!("{path}: differs from the code")),
            Err(_) => drift.push(format!("{path}: missing")),
        }
    }
    for path in committed_files() {
        if !generated.contains_key(&path) {
            drift.push(format!("{path}: committed but no longer generated"));
        }
    }
    assert!(
        drift.is_empty(),
        "event schemas drifted from the code (run UPDATE_SCHEMAS=1 cargo test -p event-schemas --test event_schemas):\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_event_type_has_a_schema_with_its_version() {
    let files = all_schema_files();
    for (stream, types) in [
        ("Order", event_schemas::OrderEvent::EVENT_TYPES),
        (
            "InventoryBatch",
            event_schemas::InventoryBatchEvent::EVENT_TYPES,
        ),
        ("Payment", event_schemas::PaymentEvent::EVENT_TYPES),
        ("Delivery", event_schemas::DeliveryEvent::EVENT_TYPES),
        ("Timer", event_schemas::TimerEvent::EVENT_TYPES),
    ] {
        for (ty, version) in types {
            let path = format!("{stream}/{ty}.v{version}.json");
            let body = files.get(&path).unwrap_or_else(|| panic!("{path} missing"));
            let schema: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(schema["x-event-version"], *version);
            assert_eq!(schema["type"], "object", "{path}");
        }
    }
}

fn validator(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(schemas_dir().join(path)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Real events, serialised by the code, validate against the committed
/// schemas; tampered ones do not. Downstream teams rely on both.
#[test]
fn serialised_events_validate_against_their_committed_schemas() {
    use event_schemas::delivery::*;
    use event_schemas::inventory::*;
    use event_schemas::order::OrderEvent;
    use event_schemas::payment::*;
    use event_schemas::values::*;

    let v1: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/OrderPlaced.v1.0.json")).unwrap();
    assert!(validator("Order/OrderPlaced.v1.0.json").is_valid(&v1["OrderPlaced"]));
    let (_, v2) = event_schemas::upcast::upcast("OrderPlaced", "1.0".into(), v1).unwrap();
    let placed: OrderEvent = serde_json::from_value(v2).unwrap();
    let body = placed.body();
    let schema = validator("Order/OrderPlaced.v2.0.json");
    assert!(schema.is_valid(&body), "{body}");
    let mut bad = body.clone();
    bad["lines"][0]["unit_price"]["per"] = "per_pound".into();
    assert!(!schema.is_valid(&bad));
    let mut bad = body.clone();
    bad["payment_method"] = serde_json::Value::Null;
    assert!(!schema.is_valid(&bad));

    let eur = |m| Money::new(m, Currency::EUR).unwrap();
    let samples: Vec<(&str, serde_json::Value)> = vec![
        (
            "InventoryBatch/BatchReceived.v1.0.json",
            InventoryBatchEvent::from(BatchReceived {
                batch_id: BatchId::new(),
                sku: "APL-GALA".parse().unwrap(),
                warehouse_id: "WH-1".parse().unwrap(),
                supplier_id: "SUP-1".parse().unwrap(),
                quantity: Quantity::grams(10_000).unwrap(),
                received_at: "2026-11-24T08:00:00Z".parse().unwrap(),
                expires_at: "2026-11-30T08:00:00Z".parse().unwrap(),
                procurement_cost: eur(1_000),
                cold_chain: ColdChain::Chilled,
            })
            .body(),
        ),
        (
            "InventoryBatch/StockWrittenOff.v1.0.json",
            InventoryBatchEvent::from(StockWrittenOff {
                quantity: Quantity::grams(250).unwrap(),
                reason: WriteOffReason::Spoiled,
                cost: eur(25),
                note: Some("mould".parse().unwrap()),
            })
            .body(),
        ),
        (
            "Payment/PaymentInitiated.v1.0.json",
            PaymentEvent::from(PaymentInitiated {
                payment_id: PaymentId::new(),
                order_id: OrderId::new(),
                method: event_schemas::order::PaymentMethod::CashOnDelivery,
                gateway: None,
                amount_due: eur(1_147),
            })
            .body(),
        ),
        (
            "Delivery/DeliveryCompleted.v1.0.json",
            DeliveryEvent::from(DeliveryCompleted {
                proof: ProofOfDelivery::Photo {
                    reference: "s3://proofs/1.jpg".parse().unwrap(),
                },
            })
            .body(),
        ),
        (
            "Delivery/LocationReported.v1.0.json",
            DeliveryEvent::from(LocationReported {
                location: GeoPoint::new(52_531_000, 13_384_000).unwrap(),
            })
            .body(),
        ),
    ];
    for (path, body) in samples {
        let v = validator(path);
        assert!(v.is_valid(&body), "{path}: {body}");
        let mut extra = body.clone();
        extra["unexpected"] = true.into();
        assert!(!v.is_valid(&extra), "{path} accepts unknown fields");
    }
}
