//! Idempotency keys survive crashes: after kill -9, a resend with the same
//! key and body gets the original outcome (its command committed) or runs
//! the command now (it did not), never both, and never "in progress" for
//! ever. A claim held by a live request still answers 409.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::common::*;

fn order_body(amount: u64) -> Value {
    let starts = Utc::now() + chrono::Duration::days(1);
    json!({
        "customer_id": "0192f3a4-0000-7000-8000-00000000c0de",
        "warehouse_id": "WH-BER-1",
        "lines": [{"sku": "APL-GALA", "quantity": {"uom": "gram", "amount": amount}}],
        "delivery_slot": {"starts_at": starts, "ends_at": starts + chrono::Duration::hours(2)},
        "delivery_address": {"recipient": "Ada Lovelace", "line1": "Invalidenstrasse 1",
                             "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "card"
    })
}

async fn send(
    url: &str,
    token: &str,
    body: &Value,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .timeout(Duration::from_secs(30))
        .json(body)
        .send()
        .await
}

/// Runs one statement straight on the server's database (a crash's
/// leftovers, made on purpose); returns the rows' first columns as text.
async fn sql(database_url: &str, statement: &str) -> Vec<String> {
    use sqlx::Row;
    if database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
        let rows = sqlx::query(statement).fetch_all(&mut c).await.unwrap();
        rows.iter()
            .filter_map(|r| r.try_get::<Option<String>, _>(0).ok().flatten())
            .collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        let rows = sqlx::query(statement).fetch_all(&mut c).await.unwrap();
        rows.iter()
            .filter_map(|r| r.try_get::<Option<String>, _>(0).ok().flatten())
            .collect()
    }
}

/// How many orders each idempotency key placed, from the log itself.
async fn orders_per_key(app: &App) -> HashMap<String, usize> {
    let key = if app.database_url.starts_with("postgres") {
        "metadata ->> 'idempotency_key'"
    } else {
        "json_extract(metadata, '$.idempotency_key')"
    };
    let rows = sql(
        &app.database_url,
        &format!("SELECT {key} FROM events WHERE event_type = 'OrderPlaced'"),
    )
    .await;
    let mut per = HashMap::new();
    for k in rows {
        *per.entry(k).or_insert(0) += 1;
    }
    per
}

async fn start(backend: Backend) -> App {
    let app = spawn_with(backend, &["--demo-data", "false"]).await;
    app.put_product("APL-GALA", "Gala apples", "per_kg", 299)
        .await;
    app.register_places().await;
    app
}

/// The two states a crash leaves, made by hand: a claim whose process is
/// gone, once after its command committed and once before.
async fn a_claim_its_process_left_is_recovered(backend: Backend) {
    let app = start(backend).await;
    let (url, token) = (app.url.clone(), app.admin_token.clone());
    let body = order_body(500);

    // Committed, then the process died before recording its answer.
    let first = send(&url, &token, &body, "crash-after").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    sql(
        &app.database_url,
        "UPDATE idempotency_keys SET status = NULL, response_body = NULL, \
         owner = 'freshledger/00000000-dead-4000-8000-000000000000' WHERE key = 'crash-after'",
    )
    .await;
    let again = send(&url, &token, &body, "crash-after").await.unwrap();
    assert_eq!(again.status(), 201, "the original outcome");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "same stream, version and position");

    // Claimed, then the process died before its command committed.
    let probe = send(&url, &token, &body, "probe").await.unwrap();
    assert_eq!(probe.status(), 201);
    let hash = sql(
        &app.database_url,
        "SELECT request_hash FROM idempotency_keys WHERE key = 'probe'",
    )
    .await
    .remove(0);
    sql(
        &app.database_url,
        &format!(
            "INSERT INTO idempotency_keys (key, request_hash, owner) \
             VALUES ('crash-before', '{hash}', 'freshledger/00000000-dead-4000-8000-000000000000')"
        ),
    )
    .await;
    let now = send(&url, &token, &body, "crash-before").await.unwrap();
    assert_eq!(now.status(), 201, "run now");
    assert!(now.headers().get("idempotent-replayed").is_none());
    let now: Value = now.json().await.unwrap();
    let replayed = send(&url, &token, &body, "crash-before").await.unwrap();
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.json::<Value>().await.unwrap(), now);

    let per = orders_per_key(&app).await;
    assert_eq!(per.len(), 3, "{per:?}");
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_its_process_left_is_recovered_sqlite() {
    a_claim_its_process_left_is_recovered(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_its_process_left_is_recovered_postgres() {
    a_claim_its_process_left_is_recovered(Backend::Postgres).await
}

/// The reproduction, literally: the append waits on a lock after the key
/// is claimed, the server is killed, the lock released, the server
/// restarted, and the request sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_blocked_append_is_recovered_postgres() {
    let mut app = start(Backend::Postgres).await;
    let before = app.log_len().await;
    let body = order_body(700);
    let mut lock = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let blocked = tokio::spawn({
        let (url, token, body) = (app.url.clone(), app.admin_token.clone(), body.clone());
        async move { send(&url, &token, &body, "repro-1").await }
    });
    // Until the server's append waits on the lock, its key claimed.
    let mut waiting = false;
    for _ in 0..500 {
        let w = sql(
            &app.database_url,
            "SELECT application_name FROM pg_stat_activity \
             WHERE application_name LIKE 'freshledger/%' AND wait_event_type = 'Lock'",
        )
        .await;
        if !w.is_empty() {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "the append never blocked");
    app.kill();
    let _ = blocked.await;
    app.restart_with(&["--demo-data", "false"]);
    // The dead process's statement is still in the database and may yet
    // commit: the key is not free.
    let busy = send(&app.url, &app.admin_token, &body, "repro-1")
        .await
        .unwrap();
    assert_eq!(busy.status(), 409);
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    // Now it either committed or never will: the truth, not "in progress".
    let mut answer = None;
    for _ in 0..500 {
        let r = send(&app.url, &app.admin_token, &body, "repro-1")
            .await
            .unwrap();
        if r.status() != 409 {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = answer.expect("the key stayed in progress");
    assert_eq!(answer.status(), 201);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(app.log_len().await, before + 1, "one order, not two");
    let per = orders_per_key(&app).await;
    assert_eq!(per.get("repro-1"), Some(&1));
    let placed = app
        .get_json(&format!(
            "/api/v1/streams/Order/{}/events",
            answer["stream_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(placed.as_array().unwrap().len(), 1);
    app.finish().await;
}

/// Clients place orders with keys and retry until they get an answer while
/// the server is killed and restarted under them: every key ends with
/// exactly one order, and every answer a key got names that order.
async fn keyed_retries_through_kill_9(backend: Backend) {
    const ORDERS: usize = 120;
    const CLIENTS: usize = 4;
    let mut app = start(backend).await;
    let url = Arc::new(RwLock::new(app.url.clone()));
    let token = app.admin_token.clone();
    let body = order_body(100);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (url, token, body) = (url.clone(), token.clone(), body.clone());
        clients.push(tokio::spawn(async move {
            let mut answers: HashMap<String, Vec<String>> = HashMap::new();
            for i in (c..ORDERS).step_by(CLIENTS) {
                let key = format!("load-{i}");
                let mut done = false;
                for _ in 0..2_000 {
                    let u = url.read().unwrap().clone();
                    match send(&u, &token, &body, &key).await {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap();
                            answers
                                .entry(key.clone())
                                .or_default()
                                .push(v["stream_id"].as_str().unwrap().to_string());
                            done = true;
                            break;
                        }
                        Ok(r) => assert!(
                            r.status() == 409 || r.status().is_server_error(),
                            "{key}: {}",
                            r.status()
                        ),
                        Err(_) => {} // the server is down: try again
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(done, "{key} never got an answer");
                // Ask once more: the same order, replayed.
                let u = url.read().unwrap().clone();
                if let Ok(r) = send(&u, &token, &body, &key).await {
                    if r.status().is_success() {
                        let v: Value = r.json().await.unwrap();
                        answers
                            .entry(key.clone())
                            .or_default()
                            .push(v["stream_id"].as_str().unwrap().to_string());
                    }
                }
            }
            answers
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.kill();
        app.restart_with(&["--demo-data", "false"]);
        *url.write().unwrap() = app.url.clone();
    }
    let mut answers = HashMap::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    assert_eq!(answers.len(), ORDERS);
    app.log_len().await;
    let per = orders_per_key(&app).await;
    assert_eq!(per.len(), ORDERS, "every key placed an order");
    assert!(per.values().all(|&n| n == 1), "a key placed two: {per:?}");
    for (key, ids) in &answers {
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "{key} was answered with different orders: {ids:?}"
        );
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_retries_through_kill_9_sqlite() {
    keyed_retries_through_kill_9(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_retries_through_kill_9_postgres() {
    keyed_retries_through_kill_9(Backend::Postgres).await
}
