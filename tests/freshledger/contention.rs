//! Many concurrent reservations against one scarce batch, through the real
//! API: not one unit oversold, no 5xx, and the books add up exactly.

use crate::common::*;
use chrono::{Duration, Utc};
use serde_json::json;

async fn scarce_stock_is_never_oversold(backend: Backend) {
    let app = spawn_with(backend, &["--demo-data", "false"]).await;
    app.put_product("MNG-KNT", "Kent mango", "per_unit", 179)
        .await;
    app.register_warehouse("WH-BER-1", &["ambient"]).await;
    app.register_supplier("SUP-LIMA-EXPORT").await;
    let batch = app.send("/api/v1/batches", json!({
        "sku": "MNG-KNT", "warehouse_id": "WH-BER-1", "supplier_id": "SUP-LIMA-EXPORT",
        "quantity": {"uom": "unit", "amount": 50},
        "expires_at": Utc::now() + Duration::days(5),
        "procurement_cost": {"amount_minor": 5000, "currency": "EUR"}, "cold_chain": "ambient"
    }), 201).await;
    let id = batch["stream_id"].as_str().unwrap().to_string();
    // 200 customers want 1 to 3 mangoes each; there are 50.
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let (client, url, id) = (app.client.clone(), app.url.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let want = 1 + i % 3;
            let r = client
                .post(format!("{url}/api/v1/batches/{id}/reservations"))
                .json(&json!({"order_id": uuid::Uuid::now_v7(), "quantity": {"uom": "unit", "amount": want}}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (want, status, body["code"].as_str().unwrap_or("").to_string())
        }));
    }
    let mut reserved = 0;
    let mut refused = 0;
    for t in tasks {
        let (want, status, code) = t.await.unwrap();
        match (status, code.as_str()) {
            (200, _) => reserved += want,
            (409, "insufficient_stock") | (409, "concurrent_modification") => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(reserved <= 50, "oversold: {reserved} of 50");
    assert!(refused > 0);
    // The aggregate's books agree with what the clients were told.
    let events = app
        .get_json(&format!("/api/v1/streams/InventoryBatch/{id}/events"))
        .await;
    let in_log: u64 = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "StockReserved")
        .map(|e| e["payload"]["quantity"]["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(
        in_log, reserved,
        "every acknowledged reservation, and nothing else"
    );
    let q = json!({"query": "query($p: Int) { stockByWarehouse(warehouseId: \"WH-BER-1\", minPosition: $p) { onHand reserved available } }", "variables": {"p": app.log_len().await}});
    let r: serde_json::Value = app.graphql(&q).await;
    let level = &r["data"]["stockByWarehouse"][0];
    assert_eq!(level["reserved"].as_u64(), Some(reserved), "{r}");
    assert_eq!(level["available"].as_u64(), Some(50 - reserved));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scarce_stock_is_never_oversold_sqlite() {
    scarce_stock_is_never_oversold(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scarce_stock_is_never_oversold_postgres() {
    scarce_stock_is_never_oversold(Backend::Postgres).await
}
