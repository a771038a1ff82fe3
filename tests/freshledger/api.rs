//! The command API, black-box: the real binary over HTTP, on SQLite and on
//! Postgres.

use crate::common::*;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

on_both!(
    an_order_goes_from_placed_to_delivered,
    bad_input_is_refused_and_writes_nothing,
    idempotency_keys_replay_and_refuse_reuse,
    correlation_and_actor_reach_the_events,
    demo_data_is_loaded_once_and_survives_restarts,
    a_line_is_cancelled_and_a_hold_voided_by_hand,
    the_shops_bounds_are_enforced_and_write_nothing,
    warehouses_and_suppliers_are_registered_and_listed,
);

fn slot() -> Value {
    let start = (Utc::now() + Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .unwrap()
        .and_utc();
    json!({"starts_at": start, "ends_at": start + Duration::hours(2)})
}

fn address() -> Value {
    json!({"recipient": "Ada Lovelace", "line1": "Invalidenstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

fn order_body(sku: &str, quantity: Value) -> Value {
    json!({
        "customer_id": "0192f3a4-0000-7000-8000-00000000c0de",
        "warehouse_id": "WH-BER-1",
        "lines": [{"sku": sku, "quantity": quantity}],
        "delivery_slot": slot(),
        "delivery_address": address(),
        "payment_method": "card"
    })
}

fn batch_body() -> Value {
    json!({
        "sku": "APL-GALA", "warehouse_id": "WH-BER-1", "supplier_id": "SUP-VENLO-FRESH",
        "quantity": {"uom": "gram", "amount": 10000},
        "expires_at": Utc::now() + Duration::days(10),
        "procurement_cost": {"amount_minor": 1500, "currency": "EUR"},
        "cold_chain": "chilled"
    })
}

async fn an_order_goes_from_placed_to_delivered(backend: Backend) {
    let app = spawn(backend).await;
    let mut last = 0u64;
    let mut step = |v: &Value| {
        let p = v["position"].as_u64().expect("a position");
        assert!(p > last, "positions grow");
        last = p;
    };
    let batch = app.send("/api/v1/batches", batch_body(), 201).await;
    step(&batch);
    let batch_id = batch["stream_id"].as_str().unwrap().to_string();
    let order = app
        .send(
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "gram", "amount": 1500})),
            201,
        )
        .await;
    step(&order);
    let oid = order["stream_id"].as_str().unwrap().to_string();
    let o = |p: &str| format!("/api/v1/orders/{oid}/{p}");
    step(
        &app.send(
            &format!("/api/v1/batches/{batch_id}/reservations"),
            json!({"order_id": oid, "quantity": {"uom": "gram", "amount": 1500}}),
            200,
        )
        .await,
    );
    step(&app.send(&o("allocation"), json!({"allocations": [{"sku": "APL-GALA", "batch_id": batch_id, "quantity": {"uom": "gram", "amount": 1500}}]}), 200).await);
    // 1.5 kg at 2.99/kg = 4.485, rounded half-up to 4.49
    let pay = app.send("/api/v1/payments", json!({"order_id": oid, "method": "card", "gateway": "simulated", "amount_due": {"amount_minor": 449, "currency": "EUR"}}), 201).await;
    step(&pay);
    let pid = pay["stream_id"].as_str().unwrap().to_string();
    step(&app.send(&format!("/api/v1/payments/{pid}/gateway-events"), json!({"type": "authorized", "amount": {"amount_minor": 449, "currency": "EUR"}, "gateway_reference": "auth_1"}), 200).await);
    step(
        &app.send(
            &o("payment"),
            json!({"payment_id": pid, "amount": {"amount_minor": 449, "currency": "EUR"}}),
            200,
        )
        .await,
    );
    step(
        &app.send(
            &format!("/api/v1/batches/{batch_id}/picks"),
            json!({"order_id": oid, "quantity": {"uom": "gram", "amount": 1480}}),
            200,
        )
        .await,
    );
    step(&app.send(&o("pack"), json!({"lines": [{"sku": "APL-GALA", "packed_quantity": {"uom": "gram", "amount": 1480}}]}), 200).await);
    let d = app
        .send(
            "/api/v1/deliveries",
            json!({"order_id": oid, "slot": slot(), "address": address(), "cold_chain": true}),
            201,
        )
        .await;
    step(&d);
    let did = d["stream_id"].as_str().unwrap().to_string();
    let rider = "0192f3a4-0000-7000-8000-0000000041de";
    step(
        &app.send(
            &format!("/api/v1/deliveries/{did}/rider"),
            json!({"rider_id": rider}),
            200,
        )
        .await,
    );
    step(
        &app.send(
            &format!("/api/v1/deliveries/{did}/pickup"),
            json!({"rider_id": rider}),
            200,
        )
        .await,
    );
    step(&app.send(&o("ship"), json!({"delivery_id": did}), 200).await);
    step(
        &app.send(
            &format!("/api/v1/deliveries/{did}/locations"),
            json!({"location": {"lat_micro": 52531000, "lon_micro": 13384000}}),
            200,
        )
        .await,
    );
    step(
        &app.send(
            &format!("/api/v1/deliveries/{did}/complete"),
            json!({"proof": {"kind": "signature", "signed_by": "A. Lovelace"}}),
            200,
        )
        .await,
    );
    step(
        &app.send(&o("deliver"), json!({"delivery_id": did}), 200)
            .await,
    );
    // Packed lighter than paid: capture what was packed (1.48 kg = 4.43).
    step(&app.send(&format!("/api/v1/payments/{pid}/gateway-events"), json!({"type": "captured", "amount": {"amount_minor": 443, "currency": "EUR"}, "gateway_reference": "ch_1"}), 200).await);

    let events = app
        .get_json(&format!("/api/v1/streams/Order/{oid}/events"))
        .await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "AllocationConfirmed",
            "OrderPaid",
            "OrderPacked",
            "OrderShipped",
            "OrderDelivered"
        ]
    );
    assert_eq!(
        events[0]["payload"]["lines"][0]["unit_price"]["amount"]["amount_minor"],
        299
    );
    assert_eq!(
        events[3]["payload"]["lines"][0]["price"]["amount_minor"],
        443
    );
    // The whole log, in order, as the audit endpoint serves it.
    let all = app.get_json("/api/v1/events?after=0&limit=1000").await;
    let positions: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["global_position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    // Every command's event is in the log (timers scheduled for the batch
    // may come after the last one).
    assert!(positions.contains(&last));
    // Illegal transition: a delivered order cannot be cancelled.
    let before = app.log_len().await;
    let e = app
        .send(&o("cancel"), json!({"reason": "customer_request"}), 409)
        .await;
    assert_eq!(e["code"], "illegal_transition");
    assert_eq!(e["details"]["state"], "DELIVERED");
    assert_eq!(
        e["message"], "cannot cancel an order in state DELIVERED",
        "written for a person"
    );
    assert_eq!(app.log_len().await, before);
    app.finish().await;
}

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let app = spawn_with(backend, &["--demo-data", "false"]).await;
    let batch = app.send("/api/v1/batches", batch_body(), 422).await;
    assert_eq!(
        batch["code"], "unknown_sku",
        "no catalogue without demo data"
    );
    // Put one product in the catalogue, then a batch of it.
    app.put_product("APL-GALA", "Gala apples", "per_kg", 299)
        .await;
    // Reference data must exist: the warehouse, one that can keep the
    // batch chilled, and the supplier.
    let refused = app.send("/api/v1/batches", batch_body(), 422).await;
    assert_eq!(refused["code"], "unknown_warehouse", "{refused}");
    app.register_warehouse("WH-BER-1", &["ambient"]).await;
    let refused = app.send("/api/v1/batches", batch_body(), 422).await;
    assert_eq!(refused["code"], "storage_unavailable", "{refused}");
    assert_eq!(
        refused["message"], "warehouse WH-BER-1 has no chilled zone",
        "{refused}"
    );
    app.register_warehouse("WH-BER-1", &["ambient", "chilled"])
        .await;
    let refused = app.send("/api/v1/batches", batch_body(), 422).await;
    assert_eq!(refused["code"], "unknown_supplier", "{refused}");
    app.register_supplier("SUP-VENLO-FRESH").await;
    assert_eq!(app.log_len().await, 0, "nothing refused was written");
    let batch = app.send("/api/v1/batches", batch_body(), 201).await;
    let batch_id = batch["stream_id"].as_str().unwrap().to_string();
    let n = app.log_len().await;
    assert_eq!(n, 3, "the batch, and its expiry warning and expiry timers");

    let send = |path: &str, body: &str, ctype: Option<&str>| {
        let mut r = app
            .client
            .post(format!("{}{path}", app.url))
            .body(body.to_string());
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r.send()
    };
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "/api/v1/orders",
            "{\"customer_id\": ".into(),
            Some("application/json"),
            400,
            "malformed_json",
        ),
        (
            "/api/v1/orders",
            {
                let mut b = order_body("APL-GALA", json!({"uom": "gram", "amount": 100}));
                b["surprise"] = json!(1);
                b.to_string()
            },
            Some("application/json"),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/orders",
            {
                let mut b = order_body("APL-GALA", json!({"uom": "gram", "amount": 100}));
                b.as_object_mut().unwrap().remove("delivery_address");
                b.to_string()
            },
            Some("application/json"),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "gram", "amount": 0})).to_string(),
            Some("application/json"),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "gram", "amount": -250})).to_string(),
            Some("application/json"),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/orders",
            order_body("NOT-SOLD", json!({"uom": "unit", "amount": 1})).to_string(),
            Some("application/json"),
            422,
            "unknown_sku",
        ),
        (
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "unit", "amount": 3})).to_string(),
            Some("application/json"),
            422,
            "unit_mismatch",
        ),
        (
            "/api/v1/orders",
            {
                let mut b = order_body("APL-GALA", json!({"uom": "gram", "amount": 100}));
                b["delivery_address"]["country"] = json!("Germany");
                b.to_string()
            },
            Some("application/json"),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/batches/0192f3a4-0000-7000-8000-00000000beef/write-offs",
            json!({"quantity": {"uom": "gram", "amount": 10}, "reason": "spoiled"}).to_string(),
            Some("application/json"),
            404,
            "batch_not_found",
        ),
        (
            "/api/v1/batches/not-a-uuid/write-offs",
            json!({"quantity": {"uom": "gram", "amount": 10}, "reason": "spoiled"}).to_string(),
            Some("application/json"),
            400,
            "invalid_id",
        ),
        (
            "/api/v1/orders/0192f3a4-0000-7000-8000-00000000beef/ship",
            json!({"delivery_id": "0192f3a4-0000-7000-8000-00000000dd01"}).to_string(),
            Some("application/json"),
            404,
            "order_not_found",
        ),
        (
            "/api/v1/orders",
            "x".repeat(70 * 1024),
            Some("application/json"),
            413,
            "payload_too_large",
        ),
        (
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "gram", "amount": 100})).to_string(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/orders",
            order_body("APL-GALA", json!({"uom": "gram", "amount": 100})).to_string(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            &format!("/api/v1/batches/{batch_id}/write-offs"),
            json!({"quantity": {"uom": "gram", "amount": 10001}, "reason": "spoiled"}).to_string(),
            Some("application/json"),
            409,
            "insufficient_stock",
        ),
        (
            &format!("/api/v1/batches/{batch_id}/expiry"),
            "{}".into(),
            Some("application/json"),
            409,
            "batch_not_yet_expired",
        ),
    ]
    .into_iter()
    .map(|(p, b, c, s, code)| {
        (
            Box::leak(p.to_string().into_boxed_str()) as &str,
            b,
            c,
            s,
            code,
        )
    })
    .collect();
    for (path, body, ctype, status, code) in cases {
        let r = send(path, &body, ctype).await.unwrap();
        let got = r.status().as_u16();
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            (got, e["code"].as_str().unwrap()),
            (status, code),
            "{path}: {e}"
        );
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(app.log_len().await, n, "{path} ({code}) wrote to the log");
    }
    let e = expect(app.get("/api/v1/nowhere").await, 404).await;
    assert_eq!(e["code"], "route_not_found");
    app.finish().await;
}

async fn idempotency_keys_replay_and_refuse_reuse(backend: Backend) {
    let app = spawn(backend).await;
    let before = app.log_len().await;
    let body = order_body("APL-GALA", json!({"uom": "gram", "amount": 500}));
    let send = |b: &Value, key: &str| {
        app.client
            .post(format!("{}/api/v1/orders", app.url))
            .header("Idempotency-Key", key)
            .json(b)
            .send()
    };
    let first = send(&body, "order-42").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send(&body, "order-42").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the first response, not a second order");
    assert_eq!(app.log_len().await, before + 1);
    let mut other = body.clone();
    other["lines"][0]["quantity"]["amount"] = json!(600);
    let e = expect(send(&other, "order-42").await.unwrap(), 422).await;
    assert_eq!(e["code"], "idempotency_key_reused");
    // Another subject with the same key and body is another request: it is
    // refused, never shown the first subject's answer.
    let customer = app.person("customer", &[]).await;
    let e = expect(
        customer
            .client
            .post(format!("{}/api/v1/orders", app.url))
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(e["code"], "idempotency_key_reused", "{e}");
    // A rejected command is remembered too: same key, same answer.
    let bad = order_body("NOT-SOLD", json!({"uom": "unit", "amount": 1}));
    let e1 = expect(send(&bad, "order-43").await.unwrap(), 422).await;
    let e2 = expect(send(&bad, "order-43").await.unwrap(), 422).await;
    assert_eq!(e1, e2);
    assert_eq!(app.log_len().await, before + 1);
    app.finish().await;
}

async fn correlation_and_actor_reach_the_events(backend: Backend) {
    let app = spawn(backend).await;
    let correlation = "0192f3a4-1111-7000-8000-000000000001";
    let occurred = (Utc::now() - Duration::hours(3)).to_rfc3339();
    let r = app
        .client
        .post(format!("{}/api/v1/orders", app.url))
        .header("X-Correlation-Id", correlation)
        .header("X-Occurred-At", &occurred)
        .json(&order_body("PIN-GOLD", json!({"uom": "unit", "amount": 2})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], correlation);
    let body = expect(r, 201).await;
    let flow = app
        .get_json(&format!("/api/v1/correlations/{correlation}/events"))
        .await;
    assert_eq!(flow.as_array().unwrap().len(), 1);
    let e = &flow[0];
    assert_eq!(e["stream_id"], body["stream_id"]);
    // The actor is who signed in.
    let me = app.get_json("/api/v1/auth/me").await;
    assert_eq!(
        e["actor"],
        format!("admin:{}", me["account_id"].as_str().unwrap())
    );
    assert_eq!(e["correlation_id"], correlation);
    assert!(
        e["causation_id"].is_string(),
        "the request id causes the event"
    );
    let recorded: chrono::DateTime<Utc> = e["recorded_at"].as_str().unwrap().parse().unwrap();
    let occurred_at: chrono::DateTime<Utc> = e["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!(recorded - occurred_at > Duration::hours(2), "two timelines");
    // Without a header, a correlation id is generated and returned.
    let r = app
        .post(
            "/api/v1/orders",
            order_body("PIN-GOLD", json!({"uom": "unit", "amount": 1})),
        )
        .await;
    let generated = r.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    expect(r, 201).await;
    let flow = app
        .get_json(&format!("/api/v1/correlations/{generated}/events"))
        .await;
    assert_eq!(flow.as_array().unwrap().len(), 1);
    let e = expect(
        app.client
            .post(format!("{}/api/v1/orders", app.url))
            .header("X-Actor", "admin:someone-else")
            .json(&order_body("PIN-GOLD", json!({"uom": "unit", "amount": 1})))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(
        e["code"], "actor_header_not_accepted",
        "no one acts as someone else"
    );
    app.finish().await;
}

async fn demo_data_is_loaded_once_and_survives_restarts(backend: Backend) {
    let mut app = spawn(backend).await;
    let products = app.get_json("/api/v1/products").await;
    assert!(
        products.as_array().unwrap().len() >= 40,
        "dozens of products"
    );
    let n = app.log_len().await;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get_json(&format!("/api/v1/events?after={after}&limit=1000"))
            .await;
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["global_position"].as_u64().unwrap();
        events.extend(page);
    }
    assert_eq!(events.len() as u64, n);
    let count = |t: &str| events.iter().filter(|e| e["event_type"] == t).count();
    assert!(count("BatchReceived") >= 200, "batches received as events");
    // Every batch gets an expiry warning and an expiry timer, as events.
    assert_eq!(count("TimerScheduled"), 2 * count("BatchReceived"));
    let kinds: std::collections::BTreeSet<String> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"]["per"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.len(), 2, "sold per kg and per unit");
    assert_eq!(expect(app.get("/healthz").await, 200).await, Value::Null);
    app.restart();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.log_len().await,
        n,
        "a restart loads and schedules nothing twice"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.finish().await;
}

async fn a_line_is_cancelled_and_a_hold_voided_by_hand(backend: Backend) {
    let app = spawn(backend).await;
    let mut body = order_body("APL-GALA", json!({"uom": "gram", "amount": 1500}));
    body["lines"]
        .as_array_mut()
        .unwrap()
        .push(json!({"sku": "LIM-TAH", "quantity": {"uom": "unit", "amount": 3}}));
    let oid = app.send("/api/v1/orders", body, 201).await["stream_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = app.log_len().await;
    // Refused, writing nothing: a SKU not on the order, a malformed SKU.
    let e = app
        .send(
            &format!("/api/v1/orders/{oid}/lines/PIN-GOLD/cancel"),
            json!({"reason": "other"}),
            422,
        )
        .await;
    assert_eq!(e["code"], "no_such_line", "{e}");
    let e = app
        .send(
            &format!("/api/v1/orders/{oid}/lines/not%20a%20sku/cancel"),
            json!({"reason": "other"}),
            400,
        )
        .await;
    assert!(e["code"].is_string(), "{e}");
    assert_eq!(app.log_len().await, before);
    // One line goes; the last one cannot.
    app.send(
        &format!("/api/v1/orders/{oid}/lines/LIM-TAH/cancel"),
        json!({"reason": "customer_request"}),
        200,
    )
    .await;
    let e = app
        .send(
            &format!("/api/v1/orders/{oid}/lines/APL-GALA/cancel"),
            json!({"reason": "customer_request"}),
            409,
        )
        .await;
    assert_eq!(e["code"], "last_line", "{e}");
    let events = app
        .get_json(&format!("/api/v1/streams/Order/{oid}/events"))
        .await;
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "OrderLineCancelled");
    // 3 limes at 0.29 no longer count: the order is paid 4.49 for its apples.
    assert_eq!(last["payload"]["price"]["amount_minor"], 87, "{last}");
    assert!(
        last["payload"].get("refund").is_none(),
        "nothing was paid: {last}"
    );
    // A hold voided by the gateway's callback captures nothing afterwards.
    let pay = app.send("/api/v1/payments", json!({"order_id": oid, "method": "card", "gateway": "simulated", "amount_due": {"amount_minor": 449, "currency": "EUR"}}), 201).await;
    let pid = pay["stream_id"].as_str().unwrap().to_string();
    let ev = |v: Value| (format!("/api/v1/payments/{pid}/gateway-events"), v);
    let (path, v) = ev(
        json!({"type": "authorized", "amount": {"amount_minor": 449, "currency": "EUR"}, "gateway_reference": "auth_1"}),
    );
    app.send(&path, v, 200).await;
    let (path, v) = ev(json!({"type": "voided", "gateway_reference": "void_1"}));
    app.send(&path, v, 200).await;
    let (path, v) = ev(
        json!({"type": "captured", "amount": {"amount_minor": 449, "currency": "EUR"}, "gateway_reference": "ch_1"}),
    );
    let e = app.send(&path, v, 409).await;
    assert_eq!(e["code"], "payment_voided", "{e}");
    app.finish().await;
}

async fn the_shops_bounds_are_enforced_and_write_nothing(backend: Backend) {
    let app = spawn_with(
        backend,
        &["--slot-horizon-days", "3", "--backdate-window-hours", "24"],
    )
    .await;
    let n = app.log_len().await;
    let refused = |r: Value, code: &str| {
        assert_eq!(r["code"], code, "{r}");
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    // A slot further ahead than the configured 3 days.
    let mut order = order_body("APL-GALA", json!({"uom": "gram", "amount": 500}));
    let start = Utc::now() + Duration::days(4);
    order["delivery_slot"] = json!({"starts_at": start, "ends_at": start + Duration::hours(2)});
    refused(
        app.send("/api/v1/orders", order, 422).await,
        "slot_too_far_ahead",
    );
    // An order for a warehouse nobody registered.
    let mut order = order_body("APL-GALA", json!({"uom": "gram", "amount": 500}));
    order["warehouse_id"] = json!("WH-NOWHERE");
    refused(
        app.send("/api/v1/orders", order, 422).await,
        "unknown_warehouse",
    );
    // An expiry years after receipt.
    let mut batch = batch_body();
    batch["supplier_id"] = json!("SUP-ALMERIA-COOP");
    batch["expires_at"] = json!(Utc::now() + Duration::days(3650));
    refused(
        app.send("/api/v1/batches", batch, 422).await,
        "expiry_too_far",
    );
    // Nil UUIDs, in a body and in a path.
    let mut order = order_body("APL-GALA", json!({"uom": "gram", "amount": 500}));
    order["customer_id"] = json!("00000000-0000-0000-0000-000000000000");
    let r = app.send("/api/v1/orders", order, 422).await;
    refused(r.clone(), "nil_uuid");
    assert_eq!(r["details"]["field"], "customer_id");
    let r = app
        .send(
            "/api/v1/orders/00000000-0000-0000-0000-000000000000/cancel",
            json!({"reason": "customer_request"}),
            422,
        )
        .await;
    refused(r, "nil_uuid");
    // X-Occurred-At further back than the configured 24 hours; 23 hours is
    // within it.
    let late = |hours: i64| {
        app.client
            .post(format!("{}/api/v1/orders", app.url))
            .header(
                "X-Occurred-At",
                (Utc::now() - Duration::hours(hours)).to_rfc3339(),
            )
            .json(&order_body(
                "APL-GALA",
                json!({"uom": "gram", "amount": 500}),
            ))
            .send()
    };
    let r = expect(late(25).await.unwrap(), 422).await;
    refused(r.clone(), "occurred_too_long_ago");
    assert_eq!(r["details"]["backdate_window_hours"], 24);
    assert_eq!(app.log_len().await, n, "nothing refused was written");
    expect(late(23).await.unwrap(), 201).await;
    app.finish().await;
}

async fn warehouses_and_suppliers_are_registered_and_listed(backend: Backend) {
    let app = spawn(backend).await;
    let demo = app.get_json("/api/v1/warehouses").await;
    let ids: Vec<&str> = demo
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["WH-BER-1", "WH-HAM-1", "WH-MUC-1"]);
    app.register_warehouse("WH-KOE-1", &["ambient", "chilled"])
        .await;
    app.register_supplier("SUP-RHEIN-GEMUESE").await;
    // Invalid registrations: no zones, a zone twice, a bad email.
    let put = |path: String, body: Value| {
        app.client
            .put(format!("{}{path}", app.url))
            .json(&body)
            .send()
    };
    let address = json!({"recipient": "R", "line1": "L 1", "city": "Köln", "postal_code": "50667", "country": "DE"});
    let e = expect(
        put(
            "/api/v1/warehouses/WH-KOE-2".into(),
            json!({"name": "K", "address": address, "zones": []}),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert_eq!(e["code"], "invalid_warehouse", "{e}");
    let twice = json!([{"code": "A", "storage": "ambient"}, {"code": "A", "storage": "chilled"}]);
    let e = expect(
        put(
            "/api/v1/warehouses/WH-KOE-2".into(),
            json!({"name": "K", "address": address, "zones": twice}),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert_eq!(e["code"], "invalid_warehouse", "{e}");
    let e = expect(
        put(
            "/api/v1/suppliers/SUP-X".into(),
            json!({"name": "X", "contact": {"name": "X", "email": "not-an-email"}}),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert_eq!(e["code"], "invalid_supplier", "{e}");

    let listed = app.get_json("/api/v1/suppliers").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "SUP-RHEIN-GEMUESE" && s["contact"]["email"] == "sales@example.com"));
    // GraphQL lists them too, with each warehouse's cold-chain capability.
    let r: Value = app.graphql(&json!({"query": "{ warehouses { id coldChain zones { code storage } address { city } } suppliers { id contact { email phone } } }"})).await;
    assert!(r["errors"].is_null(), "{r}");
    let koe = r["data"]["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "WH-KOE-1")
        .cloned()
        .unwrap();
    assert_eq!(koe["coldChain"], json!(["ambient", "chilled"]));
    assert_eq!(koe["address"]["city"], "Berlin");
    assert_eq!(r["data"]["warehouses"][0]["id"], "WH-BER-1");
    let sup = r["data"]["suppliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "SUP-RHEIN-GEMUESE")
        .cloned()
        .unwrap();
    assert_eq!(sup["contact"]["phone"], "+4930123456");
    // A batch at the new warehouse from the new supplier is received.
    let mut batch = batch_body();
    batch["warehouse_id"] = json!("WH-KOE-1");
    batch["supplier_id"] = json!("SUP-RHEIN-GEMUESE");
    app.send("/api/v1/batches", batch, 201).await;
    app.finish().await;
}

/// The README's walk-through, run as it stands there (only the server's
/// address changed): every command it sends is accepted and the order's
/// story reads as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_runs() {
    // The script signs the first admin in itself.
    let app = spawn_signed_out(Backend::Sqlite, &["--order-saga", "true"]).await;
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### One order from placed to delivered")
        .nth(1)
        .expect("the walk-through section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("its script");
    let script = script.replace("U=http://127.0.0.1:8080", &format!("U={}", app.url));
    assert!(
        script.contains(&app.url),
        "the script names its server as U=..."
    );
    let run = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FRESHLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("FRESHLEDGER_MAIL_DIR", app.mail_dir())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the walk-through finishes")
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("\"code\""),
        "a command was refused:\n{stdout}"
    );
    let story: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_once(' ').is_some_and(|(n, rest)| {
                n.parse::<u32>().is_ok() && !rest.is_empty() && !rest.contains(' ')
            })
        })
        .collect();
    assert_eq!(
        story,
        [
            "1 OrderPlaced",
            "2 AllocationConfirmed",
            "3 OrderPaid",
            "4 OrderPacked",
            "5 OrderShipped",
            "6 OrderDelivered"
        ],
        "{stdout}"
    );
    // Everyone acted in their own role.
    for line in [
        "InventoryBatch BatchReceived by seller",
        "Order OrderPlaced by customer",
        "Order OrderPacked by seller",
        "Delivery DeliveryPickedUp by delivery",
        "Order OrderPaid by system",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    app.finish().await;
}

/// Past its burst a client address is refused with 429, a `Retry-After`
/// and a code, and its refused commands append nothing; probes still
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_with(
        Backend::Sqlite,
        &["--rate-limit-per-second", "1", "--rate-limit-burst", "3"],
    )
    .await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let r = app
            .post(
                "/api/v1/orders",
                order_body("APL-GALA", json!({"uom": "gram", "amount": 500})),
            )
            .await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait = r.headers()["retry-after"].to_str().unwrap().to_string();
            refused = Some((wait, r.json::<Value>().await.unwrap()));
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429], "{statuses:?}");
    let (wait, body) = refused.unwrap();
    assert!(
        wait.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After: {wait}"
    );
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["details"]["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "probes are never limited"
    );
    // After the wait one more request is let through: the log holds the
    // three orders that got through, not the refused one.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let events: Value = app.get_json("/api/v1/events?limit=1000").await;
    let placed = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "OrderPlaced")
        .count();
    assert_eq!(placed, 3);
    app.finish().await;
}

/// With Redis, server processes share one limit per client address: what
/// one let through counts at the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let namespace = format!("fl-test-{}", uuid::Uuid::now_v7());
    let args = [
        "--rate-limit-per-second",
        "1",
        "--rate-limit-burst",
        "4",
        "--redis-url",
        "redis://127.0.0.1:6379/",
        "--redis-namespace",
        &namespace,
    ];
    let a = spawn_with(Backend::Sqlite, &args).await;
    let b = spawn_with(Backend::Sqlite, &args).await;
    let mut statuses = Vec::new();
    for app in [&a, &b, &a, &b, &a, &b] {
        statuses.push(app.get("/api/v1/products").await.status().as_u16());
    }
    // Four in all, then both refuse: each alone would still have had room.
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429], "{statuses:?}");
    a.finish().await;
    b.finish().await;
}

/// Behind a trusted proxy each forwarded client has its own limit; from
/// anyone else `X-Forwarded-For` is ignored (a client cannot pick a fresh
/// key per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_are_limited_apart_only_behind_a_trusted_proxy() {
    let limits = ["--rate-limit-per-second", "1", "--rate-limit-burst", "2"];
    // Signed out (the catalogue is public): only addresses count.
    let statuses = |app: &App, clients: &'static [&'static str]| {
        let (client, url) = (reqwest::Client::new(), app.url.clone());
        async move {
            let mut out = Vec::new();
            for c in clients {
                let r = client
                    .get(format!("{url}/api/v1/products"))
                    .header("x-forwarded-for", format!("{c}, 10.1.2.3"))
                    .send()
                    .await
                    .unwrap();
                out.push(r.status().as_u16());
            }
            out
        }
    };
    let mut trusting = limits.to_vec();
    trusting.extend(["--trusted-proxies", "127.0.0.1, 10.0.0.0/8"]);
    let app = spawn_with(Backend::Sqlite, &trusting).await;
    // 10.1.2.3 is a trusted hop too: the client is the address before it.
    let got = statuses(
        &app,
        &["203.0.113.7", "203.0.113.7", "203.0.113.7", "203.0.113.8"],
    )
    .await;
    assert_eq!(got, [200, 200, 429, 200], "{got:?}");
    // A signed-in subject has one limit wherever it comes from.
    let mut got = Vec::new();
    for c in ["203.0.113.20", "203.0.113.21", "203.0.113.22"] {
        let r = app
            .client
            .get(format!("{}/api/v1/products", app.url))
            .header("x-forwarded-for", format!("{c}, 10.1.2.3"))
            .send()
            .await
            .unwrap();
        got.push(r.status().as_u16());
    }
    assert_eq!(
        got,
        [200, 200, 429],
        "one subject, three addresses: {got:?}"
    );
    app.finish().await;

    let app = spawn_with(Backend::Sqlite, &limits).await;
    let got = statuses(&app, &["203.0.113.7", "203.0.113.8", "203.0.113.9"]).await;
    assert_eq!(got, [200, 200, 429], "{got:?}");
    app.finish().await;
}
