//! The log on Postgres waits only for transactions that can still add
//! events, and a wait for one that stays open is never silent: operators'
//! reads answer with what is safe, readiness answers, and the stall is
//! reported with the blocking session. Postgres only (SQLite has one writer
//! and cannot stall this way).

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::common::*;

/// A client whose requests fail instead of hanging: what a readiness probe
/// or an operator's script does.
fn impatient(app: &App) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", app.admin_token).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, app: &App, path: &str) -> (u16, Value) {
    let resp = client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} did not answer: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn receive_batch(app: &App) -> Value {
    app.send(
        "/api/v1/batches",
        json!({
            "sku": "APL-GALA", "warehouse_id": "WH-BER-1", "supplier_id": "SUP-ALMERIA-COOP",
            "quantity": {"uom": "gram", "amount": 5000},
            "expires_at": Utc::now() + chrono::Duration::days(5),
            "procurement_cost": {"amount_minor": 900, "currency": "EUR"},
            "cold_chain": "ambient"
        }),
        201,
    )
    .await
}

async fn open_transaction(url: &str) -> PgConnection {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_open_transactions_stall_nothing() {
    let app = spawn(Backend::Postgres).await;
    let before = app.log_len().await;
    // Another database of the same server: a transaction with an xid, idle.
    let mut elsewhere = open_transaction(&testkit::admin_url()).await;
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    // Our own database, a write to the catalogue left open.
    let mut catalogue = open_transaction(&app.database_url).await;
    sqlx::query(
        "UPDATE products SET updated_at = now() WHERE sku = (SELECT min(sku) FROM products)",
    )
    .execute(&mut catalogue)
    .await
    .unwrap();

    receive_batch(&app).await;
    // Every subscriber reaches the new event (and the expiry timers it
    // schedules) while both stay open.
    let settled = app.log_len_within(Duration::from_secs(20)).await;
    assert!(settled > before);
    let client = impatient(&app);
    let (status, ready) = get(&client, &app, "/readyz").await;
    assert_eq!(status, 200);
    assert!(ready["log_stall"].is_null(), "{ready}");
    let (_, events) = get(&client, &app, "/api/v1/events?limit=1000").await;
    assert_eq!(events.as_array().unwrap().len() as u64, settled);

    sqlx::query("ROLLBACK")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    sqlx::query("ROLLBACK")
        .execute(&mut catalogue)
        .await
        .unwrap();
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_appender_is_reported_and_nothing_hangs() {
    let app = spawn(Backend::Postgres).await;
    let before = app.log_len().await;
    // An appender that takes a position and never finishes.
    let mut stuck = open_transaction(&app.database_url).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut stuck)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('InventoryBatch', gen_random_uuid()::text, 1, 'BatchReceived', '1.0', '{}', \
                 json_build_object('event_id', gen_random_uuid()))",
    )
    .execute(&mut stuck)
    .await
    .unwrap();
    // A command after it: its event lies above the stuck position.
    receive_batch(&app).await;

    // Readers must wait (the stuck event may still commit), but the wait
    // shows, with the session holding it; nothing an operator asks hangs.
    let client = impatient(&app);
    let blocked_by_it = |v: &Value| {
        v["blockers"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["pid"] == pid))
    };
    let mut log = Value::Null;
    for _ in 0..200 {
        let (status, body) = get(&client, &app, "/api/v1/log").await;
        assert_eq!(status, 200);
        log = body;
        if blocked_by_it(&log["stall"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(blocked_by_it(&log["stall"]), "no stall reported: {log}");
    assert_eq!(
        log["head_position"].as_u64(),
        Some(before),
        "the head stays below the open append"
    );
    for s in log["subscriptions"].as_array().unwrap() {
        assert!(s["position"].as_u64().unwrap() <= before, "skipped: {s}");
    }
    let (status, ready) = get(&client, &app, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(blocked_by_it(&ready["log_stall"]), "{ready}");
    let (status, events) = get(&client, &app, "/api/v1/events?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(
        events.as_array().unwrap().len() as u64,
        before,
        "only what is safe to read"
    );
    // Then a warning names the session.
    let pid_text = pid.to_string();
    let mut warned = Vec::new();
    for _ in 0..200 {
        warned = app.log_lines_with(&["the event log is stalled", &pid_text]);
        if !warned.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!warned.is_empty(), "no warning naming pid {pid}");

    // Rolled back: the log moves on, nothing skipped, nothing stalled.
    sqlx::query("ROLLBACK").execute(&mut stuck).await.unwrap();
    let settled = app.log_len().await;
    assert!(settled > before);
    let (_, events) = get(&client, &app, "/api/v1/events?limit=1000").await;
    assert_eq!(events.as_array().unwrap().len() as u64, settled);
    let (_, log) = get(&client, &app, "/api/v1/log").await;
    assert!(log["stall"].is_null(), "{log}");
    app.finish().await;
}
