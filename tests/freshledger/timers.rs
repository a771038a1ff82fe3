//! Perishable stock through the running binary on a manual clock: two days
//! of a batch's life in a second, on SQLite and Postgres.

use crate::common::*;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

async fn event_types(app: &App, stream: &str, id: &str) -> Vec<String> {
    let r = app
        .get(&format!("/api/v1/streams/{stream}/{id}/events"))
        .await;
    if r.status() != 200 {
        return Vec::new();
    }
    let v: Value = r.json().await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_for_event(app: &App, id: &str, event: &str) {
    for _ in 0..500 {
        if event_types(app, "InventoryBatch", id)
            .await
            .iter()
            .any(|t| t == event)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "no {event} on batch {id}: {:?}",
        event_types(app, "InventoryBatch", id).await
    );
}

async fn a_batch_is_warned_then_expired_and_written_off(backend: Backend) {
    let app = spawn_with(backend, &["--demo-data", "false", "--clock", "manual"]).await;
    let now: DateTime<Utc> = app
        .send("/api/v1/clock", json!({"advance_seconds": 0}), 200)
        .await["now"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.register_places().await;
    app.put_product("STR-250", "Strawberries", "per_unit", 299)
        .await;
    let batch = app.send("/api/v1/batches", json!({
        "sku": "STR-250", "warehouse_id": "WH-BER-1", "supplier_id": "SUP-ALMERIA-COOP",
        "quantity": {"uom": "unit", "amount": 100},
        "expires_at": now + Duration::days(2),
        "procurement_cost": {"amount_minor": 10000, "currency": "EUR"}, "cold_chain": "chilled"
    }), 201).await;
    let id = batch["stream_id"].as_str().unwrap().to_string();
    app.send(&format!("/api/v1/batches/{id}/reservations"), json!({"order_id": "0192f3a4-0000-7000-8000-0000000000aa", "quantity": {"uom": "unit", "amount": 30}}), 200).await;
    app.log_len().await; // timers scheduled
    assert_eq!(
        event_types(&app, "InventoryBatch", &id).await,
        ["BatchReceived", "StockReserved"]
    );

    // A day and a minute later: the warning (24 h before expiry).
    app.send("/api/v1/clock", json!({"advance_seconds": 86_460}), 200)
        .await;
    wait_for_event(&app, &id, "ExpiryWarningRaised").await;
    assert!(!event_types(&app, "InventoryBatch", &id)
        .await
        .contains(&"BatchExpired".to_string()));
    // Another day: expired, and the 70 unreserved units written off.
    app.send("/api/v1/clock", json!({"advance_seconds": 86_400}), 200)
        .await;
    wait_for_event(&app, &id, "StockWrittenOff").await;
    let n = app.log_len().await;
    assert_eq!(
        event_types(&app, "InventoryBatch", &id).await,
        [
            "BatchReceived",
            "StockReserved",
            "ExpiryWarningRaised",
            "BatchExpired",
            "StockWrittenOff"
        ]
    );
    let r = app.graphql(&json!({"query": "query($p: Int) { spoilageLedger(minPosition: $p) { edges { node { quantity reason } } } }", "variables": {"p": n}})).await;
    assert_eq!(
        r["data"]["spoilageLedger"]["edges"][0]["node"],
        json!({"quantity": 70, "reason": "expired"}),
        "{r}"
    );
    // Time only moves forward.
    let e = app.send("/api/v1/clock", json!({"set": now}), 422).await;
    assert_eq!(e["code"], "clock_backwards");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_warned_then_expired_and_written_off_sqlite() {
    a_batch_is_warned_then_expired_and_written_off(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_warned_then_expired_and_written_off_postgres() {
    a_batch_is_warned_then_expired_and_written_off(Backend::Postgres).await
}

#[tokio::test]
async fn the_system_clock_cannot_be_moved() {
    let app = spawn_with(Backend::Sqlite, &["--demo-data", "false"]).await;
    let e = app
        .send("/api/v1/clock", json!({"advance_seconds": 60}), 404)
        .await;
    assert_eq!(e["code"], "clock_not_controllable");
    app.finish().await;
}

/// The manual clock resumes where it stood after a restart: time never
/// runs backwards relative to what was recorded.
async fn the_manual_clock_survives_a_restart(backend: Backend) {
    let mut app = spawn_with(backend, &["--demo-data", "false", "--clock", "manual"]).await;
    let reached = app
        .send("/api/v1/clock", json!({"advance_seconds": 3 * 86_400}), 200)
        .await["now"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    app.restart_with(&["--demo-data", "false", "--clock", "manual"]);
    let now = app
        .send("/api/v1/clock", json!({"advance_seconds": 0}), 200)
        .await["now"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    assert_eq!(now, reached);
    app.finish().await;
}

#[tokio::test]
async fn the_manual_clock_survives_a_restart_sqlite() {
    the_manual_clock_survives_a_restart(Backend::Sqlite).await
}

#[tokio::test]
async fn the_manual_clock_survives_a_restart_postgres() {
    the_manual_clock_survives_a_restart(Backend::Postgres).await
}
