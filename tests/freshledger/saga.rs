//! The order saga through the running binary: a full day of orders on a
//! manual clock, a thousand concurrent orders for scarce stock, and a
//! SIGKILL in the middle of hundreds of sagas.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub(crate) const WH: &str = "WH-BER-1";
pub(crate) const CUSTOMER: &str = "0192f3a4-0000-7000-8000-00000000c0de";
const RIDER: &str = "0192f3a4-0000-7000-8000-0000000041de";

async fn gql(app: &App, query: &str, variables: Value) -> Value {
    let r = app
        .post("/graphql", json!({"query": query, "variables": variables}))
        .await;
    let v = expect(r, 200).await;
    assert!(v.get("errors").is_none(), "{v}");
    v["data"].clone()
}

async fn now(app: &App) -> DateTime<Utc> {
    app.send("/api/v1/clock", json!({"advance_seconds": 0}), 200)
        .await["now"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) async fn receive(
    app: &App,
    sku: &str,
    uom: &str,
    amount: u64,
    expires_at: DateTime<Utc>,
) -> String {
    app.send(
        "/api/v1/batches",
        json!({
            "sku": sku, "warehouse_id": WH, "supplier_id": "SUP-ALMERIA-COOP",
            "quantity": {"uom": uom, "amount": amount}, "expires_at": expires_at,
            "procurement_cost": {"amount_minor": 1000, "currency": "EUR"}, "cold_chain": "chilled"
        }),
        201,
    )
    .await["stream_id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) fn order_body(
    sku: &str,
    uom: &str,
    amount: u64,
    method: &str,
    slot: DateTime<Utc>,
) -> Value {
    json!({
        "customer_id": CUSTOMER, "warehouse_id": WH,
        "lines": [{"sku": sku, "quantity": {"uom": uom, "amount": amount}}],
        "delivery_slot": {"starts_at": slot, "ends_at": slot + chrono::Duration::hours(2)},
        "delivery_address": {"recipient": "Ada Lovelace", "line1": "Invalidenstrasse 1",
                             "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": method
    })
}

async fn place(
    app: &App,
    sku: &str,
    uom: &str,
    amount: u64,
    method: &str,
    slot: DateTime<Utc>,
) -> String {
    app.send(
        "/api/v1/orders",
        order_body(sku, uom, amount, method, slot),
        201,
    )
    .await["stream_id"]
        .as_str()
        .unwrap()
        .to_string()
}

const ORDER: &str =
    "query($id: String!) { order(id: $id) { status cancelReason paid { amountMinor } \
    refundRequested { amountMinor } allocated payments { paymentId status captured { amountMinor } \
    collected { amountMinor } failureCode } delivery { deliveryId status } } }";

/// The order once the log has settled.
async fn order(app: &App, id: &str) -> Value {
    app.log_len().await;
    gql(app, ORDER, json!({"id": id})).await["order"].clone()
}

/// Waits until the order reaches `status` (timers fire in the background
/// after the clock moves, so settling the log alone is not enough).
async fn order_reaches(app: &App, id: &str, status: &str) -> Value {
    for _ in 0..1_000 {
        let o = order(app, id).await;
        if o["status"] == status {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "order {id} never reached {status}: {}",
        order(app, id).await
    );
}

pub(crate) async fn batches(app: &App) -> Vec<Value> {
    app.log_len().await;
    let d = gql(
        app,
        "query($w: String!) { stockByWarehouse(warehouseId: $w) { batches { batchId sku received onHand reserved available picked writtenOff expired } } }",
        json!({"w": WH}),
    )
    .await;
    d["stockByWarehouse"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["batches"].as_array().unwrap().clone())
        .collect()
}

pub(crate) fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every batch's books balance: received = available + reserved + picked +
/// written off (no stock counts in these tests).
pub(crate) fn assert_books_balance(batches: &[Value]) {
    for b in batches {
        assert_eq!(
            n(&b["received"]),
            n(&b["available"]) + n(&b["reserved"]) + n(&b["picked"]) + n(&b["writtenOff"]),
            "books of {b}"
        );
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Books {
    received: u64,
    reserved: u64,
    picked: u64,
    written_off: u64,
}

/// A batch's books, folded from its own stream (read models hide expired
/// batches).
async fn batch_books(app: &App, id: &str) -> Books {
    let events = app
        .get_json(&format!("/api/v1/streams/InventoryBatch/{id}/events"))
        .await;
    let mut b = Books::default();
    for e in events.as_array().unwrap() {
        let q = || n(&e["payload"]["quantity"]["amount"]);
        match e["event_type"].as_str().unwrap() {
            "BatchReceived" => b.received += q(),
            "StockReserved" => b.reserved += q(),
            "ReservationReleased" => b.reserved -= q(),
            "StockPicked" => {
                b.reserved -= q();
                b.picked += q();
            }
            "StockWrittenOff" => b.written_off += q(),
            _ => {}
        }
    }
    b
}

pub(crate) async fn all_events(app: &App) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get_json(&format!("/api/v1/events?after={after}&limit=1000"))
            .await;
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["global_position"].as_u64().unwrap();
        out.extend(page);
    }
    out
}

/// No timer fired twice.
/// What the paid orders bought (each `wants` its line's amount); every
/// other order was refused for want of stock.
pub(crate) fn sold(statuses: &[(String, Option<String>)], wants: &[u64]) -> u64 {
    let mut sold = 0;
    for ((status, reason), want) in statuses.iter().zip(wants) {
        match (status.as_str(), reason.as_deref()) {
            ("PAID", None) => sold += want,
            ("CANCELLED", Some("out_of_stock")) => {}
            other => panic!("an order ended as {other:?}"),
        }
    }
    sold
}

/// One reservation per order and batch, one authorization per payment
/// (and one per paid order), one firing per timer.
pub(crate) fn assert_nothing_twice(events: &[Value], statuses: &[(String, Option<String>)]) {
    let mut reservations: HashMap<(&str, &str), usize> = HashMap::new();
    for (batch, p) in of_type(events, "StockReserved") {
        *reservations
            .entry((batch, p["order_id"].as_str().unwrap()))
            .or_default() += 1;
    }
    assert!(reservations.values().all(|&c| c == 1), "reserved twice");
    let mut authorized: HashMap<&str, usize> = HashMap::new();
    for (payment, _) in of_type(events, "PaymentAuthorized") {
        *authorized.entry(payment).or_default() += 1;
    }
    assert!(authorized.values().all(|&c| c == 1), "authorized twice");
    assert_eq!(
        authorized.len(),
        statuses.iter().filter(|(s, _)| s == "PAID").count()
    );
    assert_timers_fired_once(events);
}

pub(crate) fn assert_timers_fired_once(events: &[Value]) {
    let mut fired: HashMap<&str, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "TimerFired") {
        *fired.entry(e["stream_id"].as_str().unwrap()).or_default() += 1;
    }
    assert!(
        fired.values().all(|&c| c == 1),
        "a timer fired twice: {fired:?}"
    );
}

/// Packs an order as ordered (or `weighed`), then the rider takes it to the
/// door; the saga ships and delivers the order as the delivery moves.
async fn pack_and_deliver(app: &App, id: &str, sku: &str, uom: &str, weighed: u64) {
    app.send(
        &format!("/api/v1/orders/{id}/pack"),
        json!({"lines": [{"sku": sku, "packed_quantity": {"uom": uom, "amount": weighed}}]}),
        200,
    )
    .await;
    let o = order(app, id).await;
    assert_eq!(o["status"], "PACKED", "{o}");
    let delivery = o["delivery"]["deliveryId"]
        .as_str()
        .expect("the saga created the delivery")
        .to_string();
    app.send(
        &format!("/api/v1/deliveries/{delivery}/rider"),
        json!({"rider_id": RIDER}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/deliveries/{delivery}/pickup"),
        json!({"rider_id": RIDER}),
        200,
    )
    .await;
    assert_eq!(order(app, id).await["status"], "SHIPPED");
    app.send(
        &format!("/api/v1/deliveries/{delivery}/complete"),
        json!({"proof": {"kind": "signature", "signed_by": "A. Lovelace"}}),
        200,
    )
    .await;
}

async fn a_full_day(backend: Backend) {
    let app = spawn_with(
        backend,
        &[
            "--demo-data",
            "false",
            "--clock",
            "manual",
            "--order-saga",
            "true",
            "--gateway-outcome",
            "by-amount",
            "--reservation-hold-minutes",
            "15",
            "--shelf-life-margin-hours",
            "0",
            // One shard working on one order at a time: which of two
            // orders competing for the last stock of a batch wins is then
            // their order in the log.
            "--saga-shards",
            "1",
            "--saga-concurrency",
            "1",
        ],
    )
    .await;
    let t0 = now(&app).await;
    let h = chrono::Duration::hours;
    app.register_places().await;
    app.put_product("APL-1", "Apples", "per_unit", 100).await;
    app.put_product("DEC-1", "Declined", "per_unit", 151).await; // test amount: declined
    app.put_product("SLO-1", "Slow", "per_unit", 252).await; // test amount: times out
    app.put_product("CAR-KG", "Carrots", "per_kg", 250).await;
    app.put_product("BER-1", "Berries", "per_unit", 300).await;
    app.put_product("HRB-1", "Basil", "per_unit", 300).await;
    receive(&app, "APL-1", "unit", 100, t0 + h(240)).await;
    receive(&app, "DEC-1", "unit", 10, t0 + h(240)).await;
    receive(&app, "SLO-1", "unit", 10, t0 + h(240)).await;
    receive(&app, "CAR-KG", "gram", 5_000, t0 + h(72)).await;
    receive(&app, "CAR-KG", "gram", 5_000, t0 + h(240)).await;
    let ber_short = receive(&app, "BER-1", "unit", 10, t0 + h(30)).await;
    let ber_long = receive(&app, "BER-1", "unit", 8, t0 + h(240)).await;
    let basil = receive(&app, "HRB-1", "unit", 5, t0 + h(30)).await;
    let slot = t0 + h(20);

    let card = place(&app, "APL-1", "unit", 3, "card", slot).await;
    let cod = place(&app, "APL-1", "unit", 2, "cash_on_delivery", slot).await;
    let carrots = place(&app, "CAR-KG", "gram", 7_000, "card", slot).await;
    let declined = place(&app, "DEC-1", "unit", 1, "card", slot).await;
    let slow = place(&app, "SLO-1", "unit", 1, "card", slot).await;
    let regret = place(&app, "APL-1", "unit", 5, "card", slot).await;
    let greedy = place(&app, "APL-1", "unit", 1_000, "card", slot).await;
    let berries = place(&app, "BER-1", "unit", 4, "card", slot).await;
    let more_berries = place(&app, "BER-1", "unit", 8, "card", slot).await;
    // Two lines: 3 basil (only one short-lived batch) and 2 apples: 11.00.
    let mut body = order_body("HRB-1", "unit", 3, "card", slot);
    body["lines"]
        .as_array_mut()
        .unwrap()
        .push(json!({"sku": "APL-1", "quantity": {"uom": "unit", "amount": 2}}));
    let mixed = app.send("/api/v1/orders", body, 201).await["stream_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Morning: the saga allocated, charged and compensated on its own.
    for (id, status) in [
        (&card, "PAID"),
        (&cod, "CREATED"),
        (&carrots, "PAID"),
        (&regret, "PAID"),
        (&berries, "PAID"),
        (&more_berries, "PAID"),
        (&slow, "CREATED"),
        (&mixed, "PAID"),
    ] {
        let o = order(&app, id).await;
        assert_eq!(o["status"], status, "{o}");
        assert_eq!(o["allocated"], true, "{o}");
    }
    let o = order(&app, &declined).await;
    assert_eq!(
        (o["status"].as_str(), o["cancelReason"].as_str()),
        (Some("CANCELLED"), Some("payment_failed")),
        "{o}"
    );
    assert_eq!(o["payments"][0]["failureCode"], "card_declined");
    let o = order(&app, &greedy).await;
    assert_eq!(
        (o["status"].as_str(), o["cancelReason"].as_str()),
        (Some("CANCELLED"), Some("out_of_stock")),
        "{o}"
    );
    assert_eq!(
        o["payments"],
        json!([]),
        "no payment for an order never allocated"
    );
    assert_eq!(
        order(&app, &slow).await["payments"][0]["status"],
        "INITIATED"
    );
    // 7 kg of carrots span both batches, first-expiring first.
    let stock = batches(&app).await;
    let carrot: Vec<&Value> = stock.iter().filter(|b| b["sku"] == "CAR-KG").collect();
    assert_eq!(
        (n(&carrot[0]["reserved"]), n(&carrot[1]["reserved"])),
        (5_000, 2_000)
    );

    // The customer changes their mind: released, and the hold voided.
    app.send(
        &format!("/api/v1/orders/{regret}/cancel"),
        json!({"reason": "customer_request"}),
        200,
    )
    .await;
    let o = order(&app, &regret).await;
    assert_eq!(o["status"], "CANCELLED");
    assert_eq!(o["refundRequested"]["amountMinor"], 500, "{o}");
    assert_eq!(o["payments"][0]["status"], "VOIDED", "{o}");

    // Packing and delivery.
    pack_and_deliver(&app, &card, "APL-1", "unit", 3).await;
    pack_and_deliver(&app, &cod, "APL-1", "unit", 2).await;
    pack_and_deliver(&app, &carrots, "CAR-KG", "gram", 6_900).await;
    let o = order_reaches(&app, &cod, "DELIVERED").await;
    let pid = o["payments"][0]["paymentId"].as_str().unwrap().to_string();
    app.send(
        &format!("/api/v1/payments/{pid}/cash-collections"),
        json!({"amount": {"amount_minor": 200, "currency": "EUR"}, "rider_id": RIDER}),
        200,
    )
    .await;

    // Sixteen minutes on: the unpaid order's hold runs out.
    app.send("/api/v1/clock", json!({"advance_seconds": 16 * 60}), 200)
        .await;
    let o = order_reaches(&app, &slow, "CANCELLED").await;
    assert_eq!(o["cancelReason"], "payment_timeout");
    assert_eq!(o["payments"][0]["failureCode"], "timeout");

    // Evening of the next day: the short-lived berries expire under two
    // paid orders. One moves to the other batch; the other cannot, and is
    // cancelled and its hold voided.
    app.send("/api/v1/clock", json!({"advance_seconds": 31 * 3600}), 200)
        .await;
    let o = order_reaches(&app, &more_berries, "CANCELLED").await;
    assert_eq!(o["cancelReason"], "batch_expired");
    assert_eq!(o["payments"][0]["status"], "VOIDED");
    assert_eq!(order(&app, &berries).await["status"], "PAID");
    pack_and_deliver(&app, &berries, "BER-1", "unit", 4).await;
    // The basil expired too, with no other batch: the mixed order goes on
    // with its apples, the basil line cancelled and its 9.00 refunded.
    let o = gql(&app, "query($id: String!) { order(id: $id) { status total { amountMinor } refundRequested { amountMinor } lines { sku cancelled } } }", json!({"id": mixed})).await["order"].clone();
    assert_eq!(o["status"], "PAID", "{o}");
    assert_eq!(o["total"]["amountMinor"], 200, "{o}");
    assert_eq!(o["refundRequested"]["amountMinor"], 900, "{o}");
    assert_eq!(
        o["lines"],
        json!([{"sku": "HRB-1", "cancelled": true}, {"sku": "APL-1", "cancelled": false}])
    );
    pack_and_deliver(&app, &mixed, "APL-1", "unit", 2).await;

    // Night: everything has ended in the right state.
    for (id, status, reason) in [
        (&card, "DELIVERED", None),
        (&cod, "DELIVERED", None),
        (&carrots, "DELIVERED", None),
        (&berries, "DELIVERED", None),
        (&mixed, "DELIVERED", None),
        (&declined, "CANCELLED", Some("payment_failed")),
        (&slow, "CANCELLED", Some("payment_timeout")),
        (&regret, "CANCELLED", Some("customer_request")),
        (&greedy, "CANCELLED", Some("out_of_stock")),
        (&more_berries, "CANCELLED", Some("batch_expired")),
    ] {
        let o = order_reaches(&app, id, status).await;
        assert_eq!(o["cancelReason"].as_str(), reason, "{o}");
    }
    // Card orders are captured for what was packed (6.9 kg: 17.25 EUR).
    for (id, captured) in [
        (&card, 300),
        (&carrots, 1_725),
        (&berries, 1_200),
        (&mixed, 200),
    ] {
        let p = &order(&app, id).await["payments"][0];
        assert_eq!(
            (p["status"].as_str(), p["captured"]["amountMinor"].as_i64()),
            (Some("CAPTURED"), Some(captured)),
            "{p}"
        );
    }
    assert_eq!(
        order(&app, &cod).await["payments"][0]["collected"]["amountMinor"],
        200
    );

    // Stock adds up, nothing is left reserved, and expiry wrote off what the
    // cancelled order gave back.
    let stock = batches(&app).await;
    assert_books_balance(&stock);
    let by_id: HashMap<&str, &Value> = stock
        .iter()
        .map(|b| (b["batchId"].as_str().unwrap(), b))
        .collect();
    assert!(
        stock.iter().all(|b| n(&b["reserved"]) == 0),
        "a reservation leaked: {stock:?}"
    );
    assert!(
        !by_id.contains_key(ber_short.as_str()),
        "expired batches leave the stock view"
    );
    let short = batch_books(&app, &ber_short).await;
    assert_eq!(
        short,
        Books {
            received: 10,
            reserved: 0,
            picked: 0,
            written_off: 10
        }
    );
    let long = by_id[ber_long.as_str()];
    assert_eq!((n(&long["picked"]), n(&long["available"])), (4, 4));
    let apples: u64 = stock
        .iter()
        .filter(|b| b["sku"] == "APL-1")
        .map(|b| n(&b["picked"]))
        .sum();
    assert_eq!(apples, 7);
    let basil = batch_books(&app, &basil).await;
    assert_eq!(
        basil,
        Books {
            received: 5,
            reserved: 0,
            picked: 0,
            written_off: 5
        }
    );
    let carrots_picked: Vec<u64> = stock
        .iter()
        .filter(|b| b["sku"] == "CAR-KG")
        .map(|b| n(&b["picked"]))
        .collect();
    assert_eq!(
        carrots_picked,
        [5_000, 1_900],
        "first-expiring first; the rest released"
    );

    assert_timers_fired_once(&all_events(&app).await);
    app.finish().await;
}

#[tokio::test]
async fn a_full_day_sqlite() {
    a_full_day(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_full_day_postgres() {
    a_full_day(Backend::Postgres).await;
}

/// A batch expiring under a paid order: every command the saga sends about
/// the order (cancellation, release, void, refund) carries the order's own
/// correlation id, so its flow shows the whole story; the expiry timer's
/// flow is only their cause.
async fn an_expiry_refund_stays_in_the_orders_flow(backend: Backend) {
    let app = spawn_with(
        backend,
        &[
            "--demo-data",
            "false",
            "--clock",
            "manual",
            "--order-saga",
            "true",
            "--shelf-life-margin-hours",
            "0",
        ],
    )
    .await;
    let t0 = now(&app).await;
    let h = chrono::Duration::hours;
    app.register_places().await;
    app.put_product("BER-1", "Berries", "per_unit", 300).await;
    receive(&app, "BER-1", "unit", 10, t0 + h(30)).await;
    let flow = "0192f3a4-0000-7000-8000-00000000f10e";
    let resp = app
        .client
        .post(format!("{}/api/v1/orders", app.url))
        .header("x-correlation-id", flow)
        .json(&order_body("BER-1", "unit", 4, "card", t0 + h(20)))
        .send()
        .await
        .unwrap();
    let id = expect(resp, 201).await["stream_id"]
        .as_str()
        .unwrap()
        .to_string();
    order_reaches(&app, &id, "PAID").await;
    app.send("/api/v1/clock", json!({"advance_seconds": 31 * 3600}), 200)
        .await;
    let o = order_reaches(&app, &id, "CANCELLED").await;
    assert_eq!(o["cancelReason"], "batch_expired");
    app.log_len().await;
    let events = app
        .get_json(&format!("/api/v1/correlations/{flow}/events"))
        .await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "OrderPlaced",
        "OrderPaid",
        "OrderCancelled",
        "ReservationReleased",
        "PaymentVoided",
        "RefundRequested",
    ] {
        assert!(
            types.contains(&t),
            "{t} missing from the order's flow: {types:?}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn an_expiry_refund_stays_in_the_orders_flow_sqlite() {
    an_expiry_refund_stays_in_the_orders_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_expiry_refund_stays_in_the_orders_flow_postgres() {
    an_expiry_refund_stays_in_the_orders_flow(Backend::Postgres).await;
}

/// Places `orders` concurrently; each is (sku, uom, amount). Returns their
/// ids in the same order. Every placement must succeed.
async fn place_concurrently(
    app: &App,
    orders: &[(&str, &str, u64)],
    slot: DateTime<Utc>,
) -> Vec<String> {
    let tasks: Vec<_> = orders
        .iter()
        .map(|(sku, uom, amount)| {
            let (client, url) = (app.client.clone(), app.url.clone());
            let body = order_body(sku, uom, *amount, "card", slot);
            tokio::spawn(async move {
                let r = client
                    .post(format!("{url}/api/v1/orders"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                assert_eq!(status, 201, "{v}");
                v["stream_id"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

/// Every order's status and cancel reason, once the log has settled.
pub(crate) async fn statuses(app: &App, ids: &[String]) -> Vec<(String, Option<String>)> {
    // Hundreds of sagas take a while in a debug build on a small machine.
    app.log_len_within(Duration::from_secs(300)).await;
    let mut out = Vec::new();
    for chunk in ids.chunks(50) {
        // One query per 50 orders (aliases), well inside the complexity limit.
        let q: String = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| format!("o{i}: order(id: \"{id}\") {{ status cancelReason }} "))
            .collect();
        let d = gql(app, &format!("{{ {q} }}"), json!({})).await;
        for i in 0..chunk.len() {
            let o = &d[format!("o{i}")];
            out.push((
                o["status"].as_str().unwrap().to_string(),
                o["cancelReason"].as_str().map(str::to_string),
            ));
        }
    }
    out
}

/// Events of one type, as (stream id, payload).
pub(crate) fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<(&'a str, &'a Value)> {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .map(|e| (e["stream_id"].as_str().unwrap(), &e["payload"]))
        .collect()
}

async fn a_thousand_concurrent_orders_never_oversell(backend: Backend) {
    let app = spawn_with(backend, &["--demo-data", "false", "--order-saga", "true"]).await;
    app.register_places().await;
    app.put_product("FIG-KG", "Figs", "per_kg", 1_200).await;
    for days in [4, 6, 8] {
        receive(
            &app,
            "FIG-KG",
            "gram",
            50_000,
            Utc::now() + chrono::Duration::days(days),
        )
        .await;
    }
    // 1,000 customers want 300 to 900 g each (about 600 kg); there are 150 kg.
    let wants: Vec<u64> = (0..1_000u64).map(|i| 300 + (i * 37) % 601).collect();
    let orders: Vec<(&str, &str, u64)> = wants.iter().map(|&g| ("FIG-KG", "gram", g)).collect();
    let slot = Utc::now() + chrono::Duration::days(1);
    let ids = place_concurrently(&app, &orders, slot).await;
    let statuses = statuses(&app, &ids).await;

    let sold = sold(&statuses, &wants);
    let stock = batches(&app).await;
    assert_books_balance(&stock);
    let reserved: u64 = stock.iter().map(|b| n(&b["reserved"])).sum();
    assert_eq!(reserved, sold, "what the paid orders hold, to the gram");
    assert!(sold <= 150_000, "oversold: {sold} g of 150,000");
    assert!(stock.iter().all(|b| n(&b["reserved"]) <= n(&b["received"])));
    // Allocation stopped only when (almost) no order could fit any more:
    // with 4 saga shards, a refusal can race a partial reservation another
    // shard is about to give back, so at most one order per shard (900 g)
    // may be left unsold.
    let smallest_refused = statuses
        .iter()
        .zip(&wants)
        .filter(|((s, _), _)| s == "CANCELLED")
        .map(|(_, w)| *w)
        .min()
        .unwrap();
    assert!(
        150_000 - sold < smallest_refused.max(4 * 900),
        "{sold} g sold, yet an order of {smallest_refused} g was refused"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_thousand_concurrent_orders_never_oversell_sqlite() {
    a_thousand_concurrent_orders_never_oversell(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_thousand_concurrent_orders_never_oversell_postgres() {
    a_thousand_concurrent_orders_never_oversell(Backend::Postgres).await;
}

async fn sagas_survive_sigkill(backend: Backend) {
    let flags = [
        "--demo-data",
        "false",
        "--clock",
        "manual",
        "--order-saga",
        "true",
        "--gateway-outcome",
        "by-amount",
        "--gateway-latency-ms",
        "2",
        "--reservation-hold-minutes",
        "15",
    ];
    let mut app = spawn_with(backend, &flags).await;
    app.register_places().await;
    app.put_product("KIW-1", "Kiwi", "per_unit", 100).await;
    app.put_product("LIM-1", "Lime", "per_unit", 252).await; // the gateway never answers
    let t0 = now(&app).await;
    for days in [5, 7] {
        receive(
            &app,
            "KIW-1",
            "unit",
            150,
            t0 + chrono::Duration::days(days),
        )
        .await;
    }
    receive(&app, "LIM-1", "unit", 100, t0 + chrono::Duration::days(5)).await;
    // 300 kiwi orders of 1 or 2 (about 450 wanted, 300 in stock) and 60 lime
    // orders that will wait for their hold to run out.
    let mut orders: Vec<(&str, &str, u64)> =
        (0..300u64).map(|i| ("KIW-1", "unit", 1 + i % 2)).collect();
    orders.extend((0..60).map(|_| ("LIM-1", "unit", 1)));
    let ids = place_concurrently(&app, &orders, t0 + chrono::Duration::days(1)).await;

    // Kill the server while the saga is part-way through the orders.
    let log = app.get_json("/api/v1/log").await;
    let saga = log["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "order-saga")
        .unwrap()
        .clone();
    let (at, head) = (n(&saga["position"]), n(&log["head_position"]));
    assert!(
        at < head,
        "the saga should still be working: {at} of {head}"
    );
    app.kill();
    app.restart_with(&flags);
    // Once every saga has caught up, the holds run out for the orders
    // nobody paid.
    statuses(&app, &ids).await;
    app.send("/api/v1/clock", json!({"advance_seconds": 16 * 60}), 200)
        .await;
    let mut statuses = statuses(&app, &ids).await;
    for _ in 0..500 {
        if statuses.iter().all(|(s, _)| s != "CREATED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        statuses = self::statuses(&app, &ids).await;
    }

    // Every saga finished, in a state that fits what it wanted.
    let mut sold = 0;
    for ((status, reason), (sku, _, want)) in statuses.iter().zip(&orders) {
        match (*sku, status.as_str(), reason.as_deref()) {
            ("KIW-1", "PAID", None) => sold += want,
            ("KIW-1", "CANCELLED", Some("out_of_stock")) => {}
            ("LIM-1", "CANCELLED", Some("payment_timeout")) => {}
            other => panic!("an order ended as {other:?}"),
        }
    }
    // No reservation leaked, nothing sold twice.
    let stock = batches(&app).await;
    assert_books_balance(&stock);
    let kiwi: u64 = stock
        .iter()
        .filter(|b| b["sku"] == "KIW-1")
        .map(|b| n(&b["reserved"]))
        .sum();
    let lime: u64 = stock
        .iter()
        .filter(|b| b["sku"] == "LIM-1")
        .map(|b| n(&b["reserved"]))
        .sum();
    assert_eq!((kiwi, lime), (sold, 0));
    assert!(sold <= 300);

    // Nothing happened twice: one reservation per order and batch, one
    // authorization per payment, one firing per timer, one hold per lime.
    let events = all_events(&app).await;
    assert_nothing_twice(&events, &statuses);
    assert_eq!(
        of_type(&events, "TimerFired").len(),
        60,
        "one hold per unpaid order fired"
    );
    app.finish().await;
}

#[tokio::test]
async fn sagas_survive_sigkill_sqlite() {
    sagas_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test]
async fn sagas_survive_sigkill_postgres() {
    sagas_survive_sigkill(Backend::Postgres).await;
}
