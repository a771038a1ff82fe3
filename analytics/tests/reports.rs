//! Every report against a hand-computed scenario, on a real ClickHouse
//! server (18.16, FRESHLEDGER_TEST_CLICKHOUSE, default
//! http://127.0.0.1:8123), written twice (a batch sent again after a crash
//! must not change a number); then the same tables, views and queries on a
//! current engine (chdb-core, scripts/chdb/run.py), which must answer the
//! same rows.

use std::collections::HashMap;
use std::path::PathBuf;

use analytics::facts::Facts;
use analytics::reports::{self, ReportArgs, ReportTable};
use analytics::{tables, Ch, Mapper, ProductRow, Table};
use chrono::{DateTime, Utc};
use event_schemas::RecordedEvent;
use serde_json::{json, Value};
use uuid::Uuid;

fn url() -> String {
    std::env::var("FRESHLEDGER_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A log written by hand, events in the order given.
#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    versions: HashMap<Uuid, u64>,
}

impl Log {
    fn add(&mut self, stream_type: &str, id: Uuid, event_type: &str, when: &str, payload: Value) {
        let version = self.versions.entry(id).or_default();
        *version += 1;
        let when = at(when);
        self.events.push(RecordedEvent {
            event_id: Uuid::now_v7(),
            global_position: self.events.len() as u64 + 1,
            stream_type: stream_type.into(),
            stream_id: id.to_string(),
            stream_version: *version,
            event_type: event_type.into(),
            event_version: if event_type == "OrderPlaced" {
                "2.0"
            } else {
                "1.0"
            }
            .into(),
            occurred_at: when,
            recorded_at: when,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "system:test".parse().unwrap(),
            trace_parent: None,
            payload,
        });
    }
}

fn money(c: i64) -> Value {
    json!({"amount_minor": c, "currency": "EUR"})
}
fn grams(n: u64) -> Value {
    json!({"uom": "gram", "amount": n})
}
fn units(n: u64) -> Value {
    json!({"uom": "unit", "amount": n})
}
fn apple(g: u64) -> Value {
    json!({"sku": "APPLE-1", "quantity": grams(g), "unit_price": {"amount": money(300), "per": "per_kg"}})
}
fn basil(n: u64) -> Value {
    json!({"sku": "BASIL-1", "quantity": units(n), "unit_price": {"amount": money(150), "per": "per_unit"}})
}
fn slot(from: &str, to: &str) -> Value {
    json!({"starts_at": from, "ends_at": to})
}
fn address() -> Value {
    json!({"recipient": "Ada", "line1": "Main St 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

fn id() -> Uuid {
    Uuid::now_v7()
}

/// The scenario the expected numbers below were computed from by hand.
#[rustfmt::skip] // one event to a line
fn scenario() -> Vec<RecordedEvent> {
    let [c1, c2, c3, c4] = [id(), id(), id(), id()];
    let mut log = Log::default();
    let order = |log: &mut Log, o: Uuid, c: Uuid, wh: &str, when: &str, lines: Vec<Value>| {
        log.add("Order", o, "OrderPlaced", when, json!({
            "order_id": o, "customer_id": c, "warehouse_id": wh, "lines": lines,
            "delivery_slot": slot("2027-01-10T10:00:00Z", "2027-01-10T12:00:00Z"),
            "delivery_address": address(), "payment_method": "card"}));
    };
    #[allow(clippy::too_many_arguments)]
    fn batch(log: &mut Log, b: Uuid, sku: &str, wh: &str, sup: &str, q: Value, recv: &str, exp: &str, cost: i64) {
        log.add("InventoryBatch", b, "BatchReceived", recv, json!({
            "batch_id": b, "sku": sku, "warehouse_id": wh, "supplier_id": sup, "quantity": q,
            "received_at": recv, "expires_at": exp, "procurement_cost": money(cost), "cold_chain": "ambient"}));
    }
    let packed = |sku: &str, q: Value, price: i64| json!({"sku": sku, "packed_quantity": q, "price": money(price)});
    let pin = json!({"proof": {"kind": "pin", "pin_verified": true}});
    let (b1, b2, b3) = (id(), id(), id());
    let (o1, o2, o3, o4, o5, o6, o7, o8, o9) = (id(), id(), id(), id(), id(), id(), id(), id(), id());
    let (d1, d2, d3, d4, p1) = (id(), id(), id(), id(), id());

    // October: C4's first order (WH-B).
    order(&mut log, o7, c4, "WH-B", "2026-10-15T10:00:00Z", vec![apple(1_000)]);
    log.add("Order", o7, "OrderPacked", "2026-10-16T08:00:00Z", json!({"lines": [packed("APPLE-1", grams(1_000), 300)]}));
    // Stock at WH-A.
    batch(&mut log, b1, "APPLE-1", "WH-A", "SUP-1", grams(100_000), "2026-11-02T08:00:00Z", "2026-12-05T00:00:00Z", 10_000);
    batch(&mut log, b2, "BASIL-1", "WH-A", "SUP-2", units(50), "2026-11-02T09:00:00Z", "2026-11-14T00:00:00Z", 2_500);
    // O1: C1, paid by card, packed 100 g over, delivered on time.
    order(&mut log, o1, c1, "WH-A", "2026-11-03T10:00:00Z", vec![apple(2_000), basil(2)]);
    log.add("InventoryBatch", b1, "StockReserved", "2026-11-03T10:00:01Z", json!({"order_id": o1, "quantity": grams(2_000)}));
    log.add("InventoryBatch", b2, "StockReserved", "2026-11-03T10:00:01Z", json!({"order_id": o1, "quantity": units(2)}));
    log.add("Payment", p1, "PaymentInitiated", "2026-11-03T10:00:02Z", json!({"payment_id": p1, "order_id": o1, "method": "card", "gateway": "simulated", "amount_due": money(900)}));
    log.add("Payment", p1, "PaymentAuthorized", "2026-11-03T10:00:03Z", json!({"amount": money(900), "gateway_reference": "auth-1"}));
    log.add("InventoryBatch", b1, "StockPicked", "2026-11-04T08:00:00Z", json!({"order_id": o1, "quantity": grams(2_000)}));
    log.add("InventoryBatch", b2, "StockPicked", "2026-11-04T08:00:00Z", json!({"order_id": o1, "quantity": units(2)}));
    log.add("Order", o1, "OrderPacked", "2026-11-04T08:30:00Z", json!({"lines": [packed("APPLE-1", grams(2_100), 630), packed("BASIL-1", units(2), 300)]}));
    log.add("Delivery", d1, "DeliveryCreated", "2026-11-04T08:31:00Z", json!({"delivery_id": d1, "order_id": o1, "slot": slot("2026-11-04T10:00:00Z", "2026-11-04T12:00:00Z"), "address": address(), "cold_chain": false}));
    log.add("Delivery", d1, "DeliveryCompleted", "2026-11-04T11:30:00Z", pin.clone());
    log.add("Order", o1, "OrderDelivered", "2026-11-04T11:30:01Z", json!({"delivery_id": d1}));
    log.add("Payment", p1, "PaymentCaptured", "2026-11-04T11:30:02Z", json!({"amount": money(930), "gateway_reference": "cap-1"}));
    // O2: C2, cancelled entirely.
    order(&mut log, o2, c2, "WH-A", "2026-11-05T09:00:00Z", vec![apple(1_000)]);
    log.add("InventoryBatch", b1, "StockReserved", "2026-11-05T09:00:01Z", json!({"order_id": o2, "quantity": grams(1_000)}));
    log.add("Order", o2, "OrderCancelled", "2026-11-05T09:30:00Z", json!({"reason": "customer_request"}));
    log.add("InventoryBatch", b1, "ReservationReleased", "2026-11-05T09:30:01Z", json!({"order_id": o2, "quantity": grams(1_000), "reason": "order_cancelled"}));
    // Damage at WH-A.
    log.add("InventoryBatch", b1, "StockWrittenOff", "2026-11-06T12:00:00Z", json!({"quantity": grams(1_000), "reason": "damaged", "cost": money(100)}));
    // O8: C4 again (WH-B).
    order(&mut log, o8, c4, "WH-B", "2026-11-10T11:00:00Z", vec![apple(500)]);
    // The basil spoils, then expires.
    log.add("InventoryBatch", b2, "StockWrittenOff", "2026-11-12T18:00:00Z", json!({"quantity": units(10), "reason": "spoiled", "cost": money(500)}));
    log.add("InventoryBatch", b2, "BatchExpired", "2026-11-14T00:00:00Z", json!({"expires_at": "2026-11-14T00:00:00Z", "on_hand": 38, "reserved": 0}));
    log.add("InventoryBatch", b2, "StockWrittenOff", "2026-11-14T00:05:00Z", json!({"quantity": units(38), "reason": "expired", "cost": money(1_900)}));
    // Stock at WH-B; O4: C3, delivered early.
    batch(&mut log, b3, "APPLE-1", "WH-B", "SUP-1", grams(20_000), "2026-11-16T08:00:00Z", "2026-12-10T00:00:00Z", 3_000);
    order(&mut log, o4, c3, "WH-B", "2026-11-17T15:00:00Z", vec![apple(3_000)]);
    log.add("InventoryBatch", b3, "StockReserved", "2026-11-17T15:00:01Z", json!({"order_id": o4, "quantity": grams(3_000)}));
    log.add("InventoryBatch", b3, "StockPicked", "2026-11-18T08:00:00Z", json!({"order_id": o4, "quantity": grams(3_000)}));
    log.add("Order", o4, "OrderPacked", "2026-11-18T08:30:00Z", json!({"lines": [packed("APPLE-1", grams(3_000), 900)]}));
    log.add("Delivery", d3, "DeliveryCreated", "2026-11-18T08:31:00Z", json!({"delivery_id": d3, "order_id": o4, "slot": slot("2026-11-18T14:00:00Z", "2026-11-18T16:00:00Z"), "address": address(), "cold_chain": false}));
    log.add("Delivery", d3, "DeliveryCompleted", "2026-11-18T13:50:00Z", pin.clone());
    // O3: C1 again; the basil line cancelled; delivered 45 minutes late after a failed attempt.
    order(&mut log, o3, c1, "WH-A", "2026-11-20T12:00:00Z", vec![basil(4), apple(500)]);
    log.add("Order", o3, "OrderLineCancelled", "2026-11-20T12:00:05Z", json!({"sku": "BASIL-1", "price": money(600), "reason": "batch_expired"}));
    log.add("InventoryBatch", b1, "StockReserved", "2026-11-20T12:00:01Z", json!({"order_id": o3, "quantity": grams(500)}));
    log.add("InventoryBatch", b1, "StockPicked", "2026-11-21T08:00:00Z", json!({"order_id": o3, "quantity": grams(500)}));
    log.add("Order", o3, "OrderPacked", "2026-11-21T08:30:00Z", json!({"lines": [packed("APPLE-1", grams(500), 150)]}));
    log.add("Delivery", d2, "DeliveryCreated", "2026-11-21T08:31:00Z", json!({"delivery_id": d2, "order_id": o3, "slot": slot("2026-11-21T10:00:00Z", "2026-11-21T12:00:00Z"), "address": address(), "cold_chain": false}));
    log.add("Delivery", d2, "RiderAssigned", "2026-11-21T09:00:00Z", json!({"rider_id": id()}));
    log.add("Delivery", d2, "DeliveryAttemptFailed", "2026-11-21T11:00:00Z", json!({"reason": "nobody home"}));
    log.add("Delivery", d2, "DeliveryCompleted", "2026-11-21T12:45:00Z", json!({"proof": {"kind": "signature", "signed_by": "Ada"}}));
    log.add("Order", o3, "OrderDelivered", "2026-11-21T12:45:01Z", json!({"delivery_id": d2}));
    // O5: C2's first order that stands.
    order(&mut log, o5, c2, "WH-A", "2026-11-25T09:00:00Z", vec![basil(1)]);
    // December: C1 and C3 again; D4 not delivered yet.
    order(&mut log, o6, c1, "WH-A", "2026-12-02T10:00:00Z", vec![apple(1_000)]);
    log.add("Delivery", d4, "DeliveryCreated", "2026-12-02T10:01:00Z", json!({"delivery_id": d4, "order_id": o6, "slot": slot("2026-12-03T14:00:00Z", "2026-12-03T16:00:00Z"), "address": address(), "cold_chain": true}));
    order(&mut log, o9, c3, "WH-B", "2026-12-30T09:00:00Z", vec![apple(1_000)]);
    log.events
}

fn products() -> Vec<ProductRow> {
    vec![
        ProductRow {
            sku: "APPLE-1".into(),
            name: "Apples".into(),
            category: "fruit".into(),
            unit: "g",
            refreshed: 1,
        },
        ProductRow {
            sku: "BASIL-1".into(),
            name: "Basil".into(),
            category: "herb".into(),
            unit: "unit",
            refreshed: 1,
        },
    ]
}

/// A report run: its name in the results, the report, its arguments, and
/// the rows expected (computed by hand from the scenario).
struct Case {
    label: &'static str,
    report: &'static str,
    args: ReportArgs,
    rows: Value,
}

#[rustfmt::skip] // the rows, one to a line, as computed by hand
fn cases() -> Vec<Case> {
    let all = ReportArgs::default();
    vec![
        Case {
            label: "sales",
            report: "sales",
            args: all.clone(),
            // day, warehouse, sku, category, unit, currency, orders,
            // ordered_quantity, sold_quantity, sold_minor, cancelled_minor, delivered_minor
            rows: json!([
                ["2026-10-15", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 1000, 1000, 300, 0, 0],
                ["2026-11-03", "WH-A", "APPLE-1", "fruit", "g", "EUR", 1, 2000, 2100, 630, 0, 630],
                ["2026-11-03", "WH-A", "BASIL-1", "herb", "unit", "EUR", 1, 2, 2, 300, 0, 300],
                ["2026-11-05", "WH-A", "APPLE-1", "fruit", "g", "EUR", 1, 1000, 0, 0, 300, 0],
                ["2026-11-10", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 500, 500, 150, 0, 0],
                ["2026-11-17", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 3000, 3000, 900, 0, 0],
                ["2026-11-20", "WH-A", "APPLE-1", "fruit", "g", "EUR", 1, 500, 500, 150, 0, 150],
                ["2026-11-20", "WH-A", "BASIL-1", "herb", "unit", "EUR", 1, 4, 0, 0, 600, 0],
                ["2026-11-25", "WH-A", "BASIL-1", "herb", "unit", "EUR", 1, 1, 1, 150, 0, 0],
                ["2026-12-02", "WH-A", "APPLE-1", "fruit", "g", "EUR", 1, 1000, 1000, 300, 0, 0],
                ["2026-12-30", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 1000, 1000, 300, 0, 0],
            ]),
        },
        Case {
            label: "sales_wh_b_november",
            report: "sales",
            args: ReportArgs {
                from: Some(at("2026-11-01T00:00:00Z")),
                to: Some(at("2026-12-01T00:00:00Z")),
                warehouse: Some("WH-B".into()),
            },
            rows: json!([
                ["2026-11-10", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 500, 500, 150, 0, 0],
                ["2026-11-17", "WH-B", "APPLE-1", "fruit", "g", "EUR", 1, 3000, 3000, 900, 0, 0],
            ]),
        },
        Case {
            label: "spoilage",
            report: "spoilage",
            args: all.clone(),
            // week, warehouse, sku, supplier, reason, unit, currency,
            // written_off_quantity, loss_minor, sales_minor, shrink_bp
            rows: json!([
                ["2026-11-02", "WH-A", "APPLE-1", "SUP-1", "damaged", "g", "EUR", 1000, 100, 630, 1587],
                ["2026-11-09", "WH-A", "BASIL-1", "SUP-2", "expired", "unit", "EUR", 38, 1900, 0, null],
                ["2026-11-09", "WH-A", "BASIL-1", "SUP-2", "spoiled", "unit", "EUR", 10, 500, 0, null],
            ]),
        },
        Case {
            label: "inventory_aging_nov_12",
            report: "inventory_aging",
            args: ReportArgs { to: Some(at("2026-11-12T00:00:00Z")), ..Default::default() },
            // warehouse, to_expiry, since_receipt, unit, currency, batches, on_hand, value_minor
            rows: json!([
                ["WH-A", "2-3 days", "8-14 days", "unit", "EUR", 1, 48, 2400],
                ["WH-A", "8+ days", "8-14 days", "g", "EUR", 1, 97000, 9700],
            ]),
        },
        Case {
            label: "inventory_aging_nov_22",
            report: "inventory_aging",
            args: ReportArgs { to: Some(at("2026-11-22T00:00:00Z")), ..Default::default() },
            rows: json!([
                ["WH-A", "8+ days", "15+ days", "g", "EUR", 1, 96500, 9650],
                ["WH-B", "8+ days", "4-7 days", "g", "EUR", 1, 17000, 2550],
            ]),
        },
        Case {
            label: "customers_weekly",
            report: "customers_weekly",
            args: all.clone(),
            // week, orders, customers, new, returning, lines, sold_minor, avg_basket_minor, currency
            rows: json!([
                ["2026-10-12", 1, 1, 1, 0, 1, 300, 300, "EUR"],
                ["2026-11-02", 1, 1, 1, 0, 2, 930, 930, "EUR"],
                ["2026-11-09", 1, 1, 0, 1, 1, 150, 150, "EUR"],
                ["2026-11-16", 2, 2, 1, 1, 2, 1050, 525, "EUR"],
                ["2026-11-23", 1, 1, 1, 0, 1, 150, 150, "EUR"],
                ["2026-11-30", 1, 1, 0, 1, 1, 300, 300, "EUR"],
                ["2026-12-28", 1, 1, 0, 1, 1, 300, 300, "EUR"],
            ]),
        },
        Case {
            label: "cohort_retention",
            report: "cohort_retention",
            args: all.clone(),
            // cohort, months_since, cohort_size, active, retention_bp
            rows: json!([
                ["2026-10-01", 0, 1, 1, 10000],
                ["2026-10-01", 1, 1, 1, 10000],
                ["2026-11-01", 0, 3, 3, 10000],
                ["2026-11-01", 1, 3, 2, 6666],
            ]),
        },
        Case {
            label: "repeat_rate",
            report: "repeat_rate",
            args: all.clone(),
            // cohort, customers, repeat 30/60/90 days, and in basis points
            rows: json!([
                ["2026-10-01", 1, 1, 1, 1, 10000, 10000, 10000],
                ["2026-11-01", 3, 1, 2, 2, 3333, 6666, 6666],
            ]),
        },
        Case {
            label: "delivery_punctuality",
            report: "delivery_punctuality",
            args: all.clone(),
            // slot, deliveries, delivered, on_time, early, late, undelivered,
            // failed_attempts, avg_minutes_late, on_time_bp
            rows: json!([
                ["10:00-12:00", 2, 2, 1, 0, 1, 0, 1, 45, 5000],
                ["14:00-16:00", 2, 1, 0, 1, 0, 1, 0, 0, 0],
            ]),
        },
        Case {
            label: "delivery_punctuality_wh_b",
            report: "delivery_punctuality",
            args: ReportArgs { warehouse: Some("WH-B".into()), ..Default::default() },
            rows: json!([["14:00-16:00", 1, 1, 0, 1, 0, 0, 0, 0, 0]]),
        },
    ]
}

async fn run_all(ch: &Ch) -> Vec<(&'static str, ReportTable)> {
    let mut out = Vec::new();
    for case in cases() {
        let report = reports::find(case.report).unwrap();
        let table = reports::run(ch, report, &case.args).await.unwrap();
        assert_eq!(
            Value::from(table.rows.clone()),
            case.rows,
            "report {} ({}): columns {:?}",
            case.label,
            case.report,
            table.columns
        );
        out.push((case.label, table));
    }
    out
}

async fn checksums(ch: &Ch) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for t in Table::ALL {
        out.push(ch.checksum(t, "").await.unwrap());
    }
    out
}

#[tokio::test]
async fn every_report_matches_the_hand_computed_scenario_on_both_engines() {
    let db = format!("fl_reports_{}", Uuid::now_v7().simple());
    let mut config = analytics::AnalyticsConfig::new(url());
    config.database = db.clone();
    let ch = Ch::new(&config);
    ch.prepare(true)
        .await
        .expect("ClickHouse (run scripts/services)");
    ch.insert(&ch.table(tables::PRODUCTS, ""), &products())
        .await
        .unwrap();

    let events = scenario();
    let after = Table::ALL.iter().map(|t| (*t, 0)).collect();
    let mut facts = Facts::default();
    Mapper::offline(1_000)
        .map(&events, &after, &mut facts)
        .await
        .unwrap();
    assert_eq!(facts.events.len(), events.len());
    assert_eq!(
        facts.payments.iter().map(|p| p.kind).collect::<Vec<_>>(),
        ["initiated", "authorized", "captured"]
    );
    assert_eq!(facts.payments[2].amount_minor, 930);

    analytics::write(&ch, "", &facts).await.unwrap();
    let first = run_all(&ch).await;
    let sums = checksums(&ch).await;
    assert_eq!(
        sums[0].0,
        events.len() as u64,
        "every event once in `events`"
    );

    // The same batch again (a crash before the positions moved), with
    // merges stopped so the copies stay: every number and every table's
    // content stay as they were.
    for t in Table::ALL {
        ch.exec(&format!("SYSTEM STOP MERGES {}", ch.table(t.name(), "")))
            .await
            .unwrap();
    }
    analytics::write(&ch, "", &facts).await.unwrap();
    for t in Table::ALL {
        let raw = ch
            .numbers(&format!("SELECT count() FROM {}", ch.table(t.name(), "")))
            .await
            .unwrap();
        assert_eq!(
            raw[0],
            2 * facts.len(t) as u64,
            "{t}: every row is there twice until merged"
        );
    }
    let second = run_all(&ch).await;
    assert_eq!(first, second);
    assert_eq!(checksums(&ch).await, sums);

    // The same data, views and queries on a current ClickHouse.
    let dir = std::env::temp_dir().join(format!("freshledger-chdb-{}", Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("queries")).unwrap();
    let mut schema = vec![format!("CREATE DATABASE {db}")];
    schema.extend(tables::statements(&db, ""));
    schema.extend(reports::view_statements(&db));
    std::fs::write(dir.join("schema.sql"), schema.join(";\n") + ";\n").unwrap();
    for table in Table::ALL
        .iter()
        .map(|t| t.name())
        .chain([tables::PRODUCTS])
    {
        let rows = ch
            // With the copies: the current engine must not count them either.
            .fetch_bytes(&format!("SELECT * FROM {db}.{table}"), "JSONEachRow")
            .await
            .unwrap();
        std::fs::write(dir.join("data").join(format!("{db}.{table}.jsonl")), rows).unwrap();
    }
    for case in cases() {
        let sql = reports::render(
            reports::find(case.report).unwrap(),
            &db,
            &case.args,
            Utc::now(),
        )
        .unwrap();
        std::fs::write(dir.join("queries").join(format!("{}.sql", case.label)), sql).unwrap();
    }
    // The dashboard's queries, with the values Grafana gives its macros.
    let dashboard = analytics::dashboard::dashboard(&db);
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let sql = panel["targets"][0]["rawSql"]
            .as_str()
            .unwrap()
            .replace("$__fromTime", "toDateTime('2026-01-01 00:00:00', 'UTC')")
            .replace("$__toTime", "toDateTime('2027-06-01 00:00:00', 'UTC')")
            .replace("${warehouse:sqlstring}", "''");
        let label = format!("dashboard_{}", panel["id"]);
        let bytes = ch
            .fetch_bytes(&sql, "JSONCompact")
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        panels.push((label.clone(), reports::parse_json_compact(&bytes).unwrap()));
        std::fs::write(dir.join("queries").join(format!("{label}.sql")), sql).unwrap();
    }
    let sold: i64 = panels[0]
        .1
        .rows
        .iter()
        .map(|r| r[1].as_i64().unwrap())
        .sum();
    assert_eq!(
        sold,
        300 + 630 + 300 + 150 + 900 + 150 + 150 + 300 + 300,
        "the sales trend sums the sales report"
    );
    let python = chdb_python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/chdb/run.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/services to install chdb-core)",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "a current ClickHouse refused our SQL:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut compared: Vec<(String, ReportTable)> = first
        .iter()
        .map(|(l, t)| (l.to_string(), t.clone()))
        .collect();
    compared.extend(panels);
    for (label, table) in &compared {
        let bytes = std::fs::read(dir.join("results").join(format!("{label}.json"))).unwrap();
        let current = reports::parse_json_compact(&bytes).unwrap();
        assert_eq!(
            current.columns, table.columns,
            "{label}: columns on a current engine"
        );
        assert_eq!(
            current.rows, table.rows,
            "{label}: rows on a current engine"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    ch.exec(&format!("DROP DATABASE {db}")).await.unwrap();
}

/// The Python of the cached chdb-core venv (scripts/services).
fn chdb_python() -> PathBuf {
    if let Ok(p) = std::env::var("FRESHLEDGER_CHDB_PYTHON") {
        return p.into();
    }
    let version = include_str!("../../scripts/chdb/VERSION").trim();
    let tools = std::env::var("FRESHLEDGER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/freshledger-tools")
        });
    tools.join(format!("chdb-{version}")).join("bin/python")
}
