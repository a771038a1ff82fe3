//! The GraphQL query API, black-box: the real binary on SQLite and Postgres.

use crate::common::*;
use chrono::{Duration, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

on_both!(
    read_your_writes_without_sleeping,
    customer_orders_page_through_every_order_once,
    limits_refuse_deep_queries_and_huge_pages,
    storefront_and_back_office_queries_answer,
    the_order_status_subscription_delivers_each_change_once_in_order,
);

async fn gql(app: &App, query: &str, variables: Value) -> Value {
    app.graphql(&json!({"query": query, "variables": variables}))
        .await
}

fn slot() -> Value {
    let start = (Utc::now() + Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .unwrap()
        .and_utc();
    json!({"starts_at": start, "ends_at": start + Duration::hours(2)})
}

fn order(customer: &str, grams: u64) -> Value {
    json!({
        "customer_id": customer, "warehouse_id": "WH-BER-1",
        "lines": [{"sku": "APL-GALA", "quantity": {"uom": "gram", "amount": grams}}],
        "delivery_slot": slot(),
        "delivery_address": {"recipient": "Ada", "line1": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "cash_on_delivery"
    })
}

const ORDER: &str = "query($id: String!, $p: Int) { order(id: $id, minPosition: $p) { id status total { amountMinor currency } lines { sku quantity { uom amount } per } timeline { eventType status } } }";

async fn read_your_writes_without_sleeping(backend: Backend) {
    let app = spawn(backend).await;
    for i in 0..5 {
        let placed = app
            .send(
                "/api/v1/orders",
                order("0192f3a4-0000-7000-8000-0000000000c1", 1_000 + i),
                201,
            )
            .await;
        let id = placed["stream_id"].as_str().unwrap();
        let p = placed["position"].as_i64().unwrap();
        let r = gql(&app, ORDER, json!({"id": id, "p": p})).await;
        assert!(r["errors"].is_null(), "{r}");
        let o = &r["data"]["order"];
        assert_eq!(o["id"], id, "the order is readable at once: {r}");
        assert_eq!(o["status"], "CREATED");
        assert_eq!(o["lines"][0]["quantity"]["amount"], 1_000 + i);
        assert_eq!(o["timeline"][0]["eventType"], "OrderPlaced");
        let cancelled = app
            .send(
                &format!("/api/v1/orders/{id}/cancel"),
                json!({"reason": "customer_request"}),
                200,
            )
            .await;
        let r = gql(&app, ORDER, json!({"id": id, "p": cancelled["position"]})).await;
        assert_eq!(r["data"]["order"]["status"], "CANCELLED", "{r}");
    }
    // A position the log has not reached: a clear, coded error.
    let r = gql(&app, ORDER, json!({"id": "x", "p": 1_000_000_000})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "READ_MODEL_TIMEOUT",
        "{r}"
    );
    app.finish().await;
}

async fn customer_orders_page_through_every_order_once(backend: Backend) {
    let app = spawn_with(backend, &[]).await;
    let customer = "0192f3a4-0000-7000-8000-0000000000c2";
    let mut ids = Vec::new();
    let mut last = 0;
    for i in 0..7 {
        let r = app
            .send("/api/v1/orders", order(customer, 500 + i), 201)
            .await;
        ids.push(r["stream_id"].as_str().unwrap().to_string());
        last = r["position"].as_i64().unwrap();
    }
    app.send(
        "/api/v1/orders",
        order("0192f3a4-0000-7000-8000-0000000000c3", 500),
        201,
    )
    .await;
    let q = "query($c: String!, $after: String, $p: Int) { customerOrders(customerId: $c, first: 3, after: $after, minPosition: $p) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let r = gql(&app, q, json!({"c": customer, "after": after, "p": last})).await;
        assert!(r["errors"].is_null(), "{r}");
        let conn = &r["data"]["customerOrders"];
        for e in conn["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3, "7 orders in pages of 3");
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every order once, newest first");
    let r = gql(
        &app,
        q,
        json!({"c": customer, "after": "not-hex!", "p": null}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_CURSOR");
    app.finish().await;
}

async fn limits_refuse_deep_queries_and_huge_pages(backend: Backend) {
    let app = spawn(backend).await;
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let r = gql(&app, deep, json!({})).await;
    assert!(r["data"].is_null(), "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nested too deep"),
        "{r}"
    );
    let r = gql(
        &app,
        "{ customerOrders(customerId: \"c\", first: 500) { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "PAGE_SIZE_EXCEEDED",
        "{r}"
    );
    let r = gql(&app, "{ delivery { status } }", json!({})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    // GraphiQL for a browser, whole from this server: every script and
    // stylesheet the page loads is same-origin and served, nothing from a
    // CDN (the page works without internet).
    let page = app.get("/graphql").await.text().await.unwrap();
    assert!(page.contains("GraphiQL.createFetcher"), "{page}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap().to_string());
        }
    }
    assert_eq!(assets.len(), 4, "{assets:?}");
    for a in &assets {
        assert!(a.starts_with("/graphiql/"), "{a} is not served here");
        let r = app.get(a).await;
        assert_eq!(r.status(), 200, "{a}");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        let body = r.bytes().await.unwrap();
        assert!(body.len() > 5_000, "{a}: {} bytes", body.len());
        if a.ends_with(".js") {
            assert!(ctype.starts_with("text/javascript"), "{a}: {ctype}");
        } else {
            assert!(ctype.starts_with("text/css"), "{a}: {ctype}");
        }
    }
    let js = app
        .get("/graphiql/graphiql.min.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(js.contains("createFetcher"));
    assert_eq!(app.get("/graphiql/nothing.js").await.status(), 404);
    app.finish().await;
}

async fn storefront_and_back_office_queries_answer(backend: Backend) {
    let app = spawn(backend).await;
    let head = app.log_len().await as i64;
    let r = gql(&app, "query($p: Int) { products(category: FRUIT, warehouseId: \"WH-BER-1\", minShelfLifeDays: 2, first: 100, minPosition: $p) { edges { node { sku per categories availability { warehouseId uom available earliestExpiry } } } } }", json!({"p": head})).await;
    assert!(r["errors"].is_null(), "{r}");
    let products = r["data"]["products"]["edges"].as_array().unwrap();
    assert!(products.len() >= 15, "fruit in the demo catalogue");
    for p in products {
        assert!(p["node"]["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("FRUIT")));
        for a in p["node"]["availability"].as_array().unwrap() {
            assert_eq!(a["warehouseId"], "WH-BER-1");
            assert!(a["available"].as_i64().unwrap() > 0);
        }
    }
    // Stock in FEFO order, then a write-off and the ledger.
    let r = gql(&app, "query($p: Int) { stockByWarehouse(warehouseId: \"WH-BER-1\", sku: \"STR-250\", minPosition: $p) { sku onHand available batches { batchId expiresAt available } } }", json!({"p": head})).await;
    let level = &r["data"]["stockByWarehouse"][0];
    let batches = level["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert!(
        batches[0]["expiresAt"].as_str() < batches[1]["expiresAt"].as_str(),
        "FEFO"
    );
    let batch = batches[0]["batchId"].as_str().unwrap();
    let w = app
        .send(
            &format!("/api/v1/batches/{batch}/write-offs"),
            json!({"quantity": {"uom": "unit", "amount": 3}, "reason": "spoiled", "note": "mould"}),
            200,
        )
        .await;
    let r = gql(&app, "query($p: Int) { spoilageLedger(warehouseId: \"WH-BER-1\", minPosition: $p) { edges { node { sku quantity reason cost { amountMinor currency } note } } } }", json!({"p": w["position"]})).await;
    let e = &r["data"]["spoilageLedger"]["edges"][0]["node"];
    assert_eq!(
        (
            e["sku"].as_str(),
            e["quantity"].as_i64(),
            e["reason"].as_str()
        ),
        (Some("STR-250"), Some(3), Some("spoiled")),
        "{r}"
    );
    assert!(e["cost"]["amountMinor"].as_i64().unwrap() > 0);
    let r = gql(&app, "query($p: Int) { expiringBatches(withinHours: 48, first: 5, minPosition: $p) { edges { node { sku expiresAt } } pageInfo { hasNextPage } } }", json!({"p": head})).await;
    let edges = r["data"]["expiringBatches"]["edges"].as_array().unwrap();
    assert!(!edges.is_empty(), "{r}");
    assert!(edges
        .windows(2)
        .all(|w| w[0]["node"]["expiresAt"].as_str() <= w[1]["node"]["expiresAt"].as_str()));
    app.finish().await;
}

async fn the_order_status_subscription_delivers_each_change_once_in_order(backend: Backend) {
    let app = spawn(backend).await;
    let placed = app
        .send(
            "/api/v1/orders",
            order("0192f3a4-0000-7000-8000-0000000000c4", 1_000),
            201,
        )
        .await;
    let id = placed["stream_id"].as_str().unwrap().to_string();
    let mut req = format!("{}/graphql/ws", app.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        json!({"type": "connection_init",
               "payload": {"Authorization": format!("Bearer {}", app.admin_token)}})
        .to_string(),
    ))
    .await
    .unwrap();
    loop {
        let m = ws.next().await.unwrap().unwrap();
        if m.to_text().unwrap().contains("connection_ack") {
            break;
        }
    }
    ws.send(Message::text(json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($id: String!) { orderStatus(orderId: $id) { position eventType status } }",
        "variables": {"id": id}
    }}).to_string())).await.unwrap();
    // Drive the order through its life while subscribed.
    let batch_q = "query($p: Int) { stockByWarehouse(warehouseId: \"WH-BER-1\", sku: \"APL-GALA\", minPosition: $p) { batches { batchId available } } }";
    let r = gql(&app, batch_q, json!({"p": placed["position"]})).await;
    let batch = r["data"]["stockByWarehouse"][0]["batches"][0]["batchId"]
        .as_str()
        .unwrap()
        .to_string();
    let q = json!({"uom": "gram", "amount": 1000});
    app.send(
        &format!("/api/v1/batches/{batch}/reservations"),
        json!({"order_id": id, "quantity": q}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/orders/{id}/allocation"),
        json!({"allocations": [{"sku": "APL-GALA", "batch_id": batch, "quantity": q}]}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/orders/{id}/pack"),
        json!({"lines": [{"sku": "APL-GALA", "packed_quantity": q}]}),
        200,
    )
    .await;
    let d = "0192f3a4-0000-7000-8000-00000000dd42";
    app.send(
        &format!("/api/v1/orders/{id}/ship"),
        json!({"delivery_id": d}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/orders/{id}/deliver"),
        json!({"delivery_id": d}),
        200,
    )
    .await;
    // A cash-on-delivery order: placed, allocated, packed, shipped, delivered.
    let mut got = Vec::new();
    while got.len() < 5 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("a status change within 20 s")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] == "next" {
            got.push(v["payload"]["data"]["orderStatus"].clone());
        }
    }
    let events: Vec<&str> = got
        .iter()
        .map(|c| c["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "OrderPlaced",
            "AllocationConfirmed",
            "OrderPacked",
            "OrderShipped",
            "OrderDelivered"
        ]
    );
    let statuses: Vec<&str> = got.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["CREATED", "CREATED", "PACKED", "SHIPPED", "DELIVERED"]
    );
    let positions: Vec<i64> = got
        .iter()
        .map(|c| c["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    // Nothing is delivered twice: the stream stays quiet afterwards.
    let extra = tokio::time::timeout(std::time::Duration::from_millis(800), ws.next()).await;
    assert!(extra.is_err(), "an extra message: {extra:?}");
    app.finish().await;
}

/// The GraphQL-over-HTTP specification's own audit (`graphql-http`, the
/// reference implementation, from npm) against the real binary: no error
/// and no warning; and the `graphql-ws` npm client receives an order's
/// first change over `/graphql/ws`. The tools are pinned by
/// `scripts/graphql-audit/package-lock.json` and installed by
/// `scripts/services`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_passes_the_reference_audit() {
    let app = spawn(Backend::Sqlite).await;
    let placed = app
        .send(
            "/api/v1/orders",
            order("0192f3a4-0000-7000-8000-0000000000c7", 500),
            201,
        )
        .await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/graphql-audit");
    assert!(
        dir.join("node_modules/graphql-http").exists(),
        "the audit tools are missing: run scripts/services"
    );
    let out = tokio::process::Command::new("node")
        .arg("audit.mjs")
        .arg(&app.url)
        .arg(placed["stream_id"].as_str().unwrap())
        .arg(&app.admin_token)
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the audit failed:\n{report}");
    assert!(report.contains(", 0 errors, 0 warnings,"), "{report}");
    assert!(report.contains("graphql-ws: subscribed"), "{report}");
    app.finish().await;
}

/// What the edge refuses before executing anything, each with a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_refuses_what_it_must_not_run() {
    let app = spawn(Backend::Sqlite).await;
    let post = |content_type: &'static str, body: String| {
        app.client
            .post(format!("{}/graphql", app.url))
            .header("content-type", content_type)
            .header("accept", "application/graphql-response+json")
            .body(body)
            .send()
    };
    let code = |v: &Value| v["errors"][0]["extensions"]["code"].clone();
    // A form post from another site is never executed.
    let r = post("text/plain", r#"{"query":"{ __typename }"}"#.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(code(&r.json().await.unwrap()), "UNSUPPORTED_MEDIA_TYPE");
    // A body past the limit is not read.
    // (Its own connection: the server answers before reading the body and
    // closes the connection under the client.)
    let huge = format!(r#"{{"query":"{{ {} }}"}}"#, "__typename ".repeat(20_000));
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", app.url))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A document that does not parse: 400, no data, a code, a short message.
    let deep = format!(r#"{{"query":"{}"}}"#, "{ a ".repeat(5_000));
    let r = post("application/json", deep).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("data").is_none(), "{v}");
    assert_eq!(code(&v), "GRAPHQL_PARSE_FAILED");
    assert!(v["errors"][0]["message"].as_str().unwrap().len() <= 600);
    // A document that does not validate.
    let r = post("application/json", r#"{"query":"{ nope }"}"#.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "GRAPHQL_VALIDATION_FAILED");
    // Batches are bounded.
    let batch = serde_json::to_string(&vec![json!({"query": "{ __typename }"}); 11]).unwrap();
    let r = post("application/json", batch).await.unwrap();
    assert_eq!(r.status(), 400);
    // With application/json the spec keeps 200 for request errors.
    let v = gql(&app, "{ nope }", json!({})).await;
    assert_eq!(code(&v), "GRAPHQL_VALIDATION_FAILED");
    app.finish().await;
}

/// Response keys come back in the order the query selected them, however
/// many aliases and whatever order their resolvers finish in (a key map
/// that sorts would put `a10` before `a2`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_keys_follow_the_selection_order() {
    let app = spawn(Backend::Sqlite).await;
    // Reverse-sorted names, fields that read the database between fields
    // that do not.
    let names: Vec<String> = (0..60).rev().map(|i| format!("k{i}")).collect();
    let fields: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i % 3 == 0 {
                format!("{n}: products(first: 1) {{ edges {{ node {{ sku }} }} }}")
            } else {
                format!("{n}: __typename")
            }
        })
        .collect();
    let text = app
        .client
        .post(format!("{}/graphql", app.url))
        .json(&json!({"query": format!("{{ {} }}", fields.join(" "))}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            text.find(&format!("\"{n}\":"))
                .unwrap_or_else(|| panic!("{n} missing: {text}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "keys out of selection order: {text}"
    );
    app.finish().await;
}

/// Every field of a request that asks for an unreachable position shares
/// one bounded wait: the request answers (each field with the same
/// timeout), and a command sent meanwhile is served. GraphQL answers carry
/// the request's correlation id like every other route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_position_waits_once_per_request() {
    let app = spawn(Backend::Sqlite).await;
    let head = app.log_len().await;
    let fields: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "a{i}: order(id: \"x\", minPosition: {}) {{ id }}",
                head + 1_000_000
            )
        })
        .collect();
    let query = format!("{{ {} }}", fields.join(" "));
    let query_text = query.clone();
    let attack = tokio::spawn({
        let (url, token) = (app.url.clone(), app.admin_token.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{url}/graphql"))
                .bearer_auth(&token)
                .header("x-correlation-id", "0192f3a4-0000-7000-8000-0000000000aa")
                .timeout(std::time::Duration::from_secs(60))
                .json(&json!({"query": query}))
                .send()
                .await
                .unwrap()
        }
    });
    // Meanwhile the server serves commands.
    app.send(
        "/api/v1/orders",
        order("0192f3a4-0000-7000-8000-0000000000c8", 500),
        201,
    )
    .await;
    let r = attack.await.unwrap();
    assert_eq!(
        r.headers()["x-correlation-id"],
        "0192f3a4-0000-7000-8000-0000000000aa"
    );
    let v: Value = r.json().await.unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 40, "{v}");
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "READ_MODEL_TIMEOUT"),
        "{v}"
    );
    // The largest request allowed: a batch of 10 operations of 40 such
    // fields each. Still one wait; meanwhile 20 commands are all served,
    // and the server's log stays quiet (each slow poll used to warn: 68 MB
    // in minutes).
    let logged = app.log_lines_with(&[]).len();
    let batch: Vec<Value> = (0..10).map(|_| json!({"query": &query_text})).collect();
    let attack = tokio::spawn({
        let (url, token) = (app.url.clone(), app.admin_token.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{url}/graphql"))
                .bearer_auth(&token)
                .timeout(std::time::Duration::from_secs(60))
                .json(&batch)
                .send()
                .await
                .unwrap()
        }
    });
    for i in 0..20 {
        app.send(
            "/api/v1/orders",
            order(&format!("0192f3a4-0000-7000-8000-0000000001{i:02}"), 100),
            201,
        )
        .await;
    }
    let answers: Value = attack.await.unwrap().json().await.unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 10);
    let timeouts = answers
        .iter()
        .flat_map(|a| a["errors"].as_array().unwrap().clone())
        .filter(|e| e["extensions"]["code"] == "READ_MODEL_TIMEOUT")
        .count();
    assert_eq!(timeouts, 400);
    let lines = app.log_lines_with(&[]).len() - logged;
    assert!(lines < 10, "{lines} log lines during the attack");
    // An absurd horizon is refused, not answered wrongly.
    let v = gql(
        &app,
        "{ expiringBatches(withinHours: 71000000) { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{v}"
    );
    app.finish().await;
}
