//! Several `freshledger serve` processes on one Postgres database: they
//! share the leased work (every subscriber, the timer scheduler, the audit
//! chain), all of them serve commands and queries, and when processes are
//! killed under load the survivors take their leases over and finish
//! everything exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::projections::cli;
use crate::saga::{
    all_events, assert_books_balance, assert_nothing_twice, batches, n, of_type, order_body,
    receive, sold, statuses,
};
use chrono::Utc;
use serde_json::Value;

/// The leases part of a process's `/readyz`.
async fn leases(app: &App) -> Value {
    app.get_json("/readyz").await["leases"].clone()
}

/// The works a process holds the lease of.
fn active(leases: &Value) -> Vec<String> {
    leases["works"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "active")
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the live processes `apps` count each other as members and
/// every leased work is held by exactly one of them, each holding at most
/// its fair share (and, with several, at least one). Returns who holds
/// what.
async fn spread(apps: &[&App]) -> Vec<Vec<String>> {
    let mut last = Vec::new();
    for _ in 0..600 {
        let mut all = Vec::new();
        for app in apps {
            all.push(leases(app).await);
        }
        let works = all[0]["works"].as_array().unwrap().len();
        let held: Vec<Vec<String>> = all.iter().map(active).collect();
        let distinct: HashSet<&String> = held.iter().flatten().collect();
        let settled = all.iter().all(|l| n(&l["members"]) == apps.len() as u64)
            && distinct.len() == works
            && held.iter().map(Vec::len).sum::<usize>() == works
            && all
                .iter()
                .zip(&held)
                .all(|(l, h)| !h.is_empty() && h.len() as u64 <= n(&l["fair_share"]));
        if settled {
            return held;
        }
        last = all;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the leases never settled across {} processes: {last:?}",
        apps.len()
    );
}

/// Places `wants.len()` orders, each to the next process in turn, each
/// with its own `Idempotency-Key`: a request that fails (its process was
/// killed) or finds its key busy (the dead process's claim) is sent again
/// to the next process, until it is acknowledged. Counts acknowledgements
/// in `acked`. Returns the order ids.
async fn place_everywhere(
    urls: Vec<String>,
    token: String,
    wants: Vec<u64>,
    acked: Arc<AtomicUsize>,
) -> Vec<String> {
    let client = client_with(&token);
    let slot = Utc::now() + chrono::Duration::days(1);
    let limit = Arc::new(tokio::sync::Semaphore::new(24));
    let tasks: Vec<_> = wants
        .into_iter()
        .enumerate()
        .map(|(i, want)| {
            let (client, urls, acked, limit) =
                (client.clone(), urls.clone(), acked.clone(), limit.clone());
            let body = order_body("KIW-1", "unit", want, "card", slot);
            let key = format!("replicas-order-{i}");
            tokio::spawn(async move {
                let _permit = limit.acquire().await.unwrap();
                for attempt in 0..200 {
                    let url = &urls[(i + attempt) % urls.len()];
                    let sent = client
                        .post(format!("{url}/api/v1/orders"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let Ok(r) = sent else {
                        continue; // that process is gone: the next one
                    };
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or_default();
                    match status {
                        201 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            return v["stream_id"].as_str().unwrap().to_string();
                        }
                        // The dead process's claim, until it is seen dead.
                        409 if v["code"] == "idempotency_request_in_progress" => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        _ => panic!("order {i}: {status} {v}"),
                    }
                }
                panic!("order {i} was never acknowledged");
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

/// Waits until `acked` reaches `n`.
async fn acknowledged(acked: &AtomicUsize, count: usize) {
    for _ in 0..6_000 {
        if acked.load(Ordering::SeqCst) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} orders acknowledged", acked.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_work_and_survive_sigkill() {
    let flags = [
        "--demo-data",
        "false",
        "--order-saga",
        "true",
        "--gateway-latency-ms",
        "2",
    ];
    let first = spawn_with(Backend::Postgres, &flags).await;
    first.register_places().await;
    first.put_product("KIW-1", "Kiwi", "per_unit", 100).await;
    for days in [5, 7] {
        receive(
            &first,
            "KIW-1",
            "unit",
            150,
            Utc::now() + chrono::Duration::days(days),
        )
        .await;
    }
    // Alone, the first process holds every lease.
    let alone = spread(&[&first]).await;
    let works = alone[0].len();
    assert!(
        alone[0].contains(&"order-saga".to_string())
            && alone[0].contains(&"timer-scheduler".to_string())
            && alone[0].contains(&"orders".to_string())
            && alone[0].contains(&"audit-chain".to_string()),
        "{alone:?}"
    );
    let mut second = App::attach(&first, &flags).await;
    let mut third = App::attach(&first, &flags).await;
    // Three: the work is spread, each lease held once.
    let held = spread(&[&first, &second, &third]).await;
    assert!(
        held.iter().all(|h| h.len() <= works.div_ceil(3)),
        "{held:?}"
    );

    // 360 orders of 1 or 2 kiwis (about 540 wanted, 300 in stock), spread
    // over the three processes; kill one after a third is acknowledged and
    // another after two thirds.
    let wants: Vec<u64> = (0..360u64).map(|i| 1 + i % 2).collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let placing = tokio::spawn(place_everywhere(
        vec![first.url.clone(), second.url.clone(), third.url.clone()],
        first.admin_token.clone(),
        wants.clone(),
        acked.clone(),
    ));
    acknowledged(&acked, 120).await;
    second.kill();
    acknowledged(&acked, 240).await;
    third.kill();
    let ids = placing.await.unwrap();

    // The survivor takes every lease over and finishes every saga.
    let survivor = spread(&[&first]).await;
    assert_eq!(survivor[0].len(), works);
    let statuses = statuses(&first, &ids).await;
    let sold = sold(&statuses, &wants);
    let stock = batches(&first).await;
    assert_books_balance(&stock);
    let reserved: u64 = stock.iter().map(|b| n(&b["reserved"])).sum();
    assert_eq!(reserved, sold, "what the paid orders hold, to the unit");
    assert!(sold <= 300, "oversold: {sold} of 300");

    // Every acknowledged order is there once (a resend after a kill got
    // the truth, never a second order); nothing was reserved or authorized
    // twice; every timer fired at most once.
    let events = all_events(&first).await;
    let placed: Vec<&str> = of_type(&events, "OrderPlaced")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(placed.len(), ids.len(), "one order per request");
    let placed: HashSet<&str> = placed.into_iter().collect();
    assert!(ids.iter().all(|id| placed.contains(id.as_str())));
    assert_nothing_twice(&events, &statuses);

    // One trace per order across processes (the request in one, the
    // saga's reservation in whichever held its shard), whatever the log
    // level (these servers log warnings only).
    let trace = |e: &Value| {
        e["trace_parent"]
            .as_str()
            .and_then(|t| t.split('-').nth(1))
            .map(str::to_string)
    };
    let order_trace: HashMap<&str, String> = events
        .iter()
        .filter(|e| e["event_type"] == "OrderPlaced")
        .map(|e| (e["stream_id"].as_str().unwrap(), trace(e).expect("traced")))
        .collect();
    for e in events.iter().filter(|e| e["event_type"] == "StockReserved") {
        let order = e["payload"]["order_id"].as_str().unwrap();
        assert_eq!(trace(e).as_ref(), order_trace.get(order), "{e}");
    }

    // The read models equal a rebuild from the log.
    let live = cli(&first, &["projections", "checksum"]);
    cli(&first, &["projections", "rebuild"]);
    assert_eq!(cli(&first, &["projections", "checksum"]), live);
    first.finish().await;
}

/// A process that stops gracefully leaves the members and releases its
/// leases; the other process then holds everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_hands_its_leases_over() {
    let flags = ["--demo-data", "false"];
    let first = spawn_with(Backend::Postgres, &flags).await;
    let mut second = App::attach(&first, &flags).await;
    let held = spread(&[&first, &second]).await;
    let works = held.iter().map(Vec::len).sum::<usize>();
    assert!(!held[1].is_empty());
    assert!(second.terminate().success());
    let now = spread(&[&first]).await;
    assert_eq!(now[0].len(), works);
    first.finish().await;
}

/// Processes with different settings (one runs the order saga, one does
/// not): every work is still held by some process, though the saga
/// process then holds more than its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_work_is_left_without_a_process() {
    let first = spawn_with(
        Backend::Postgres,
        &["--demo-data", "false", "--order-saga", "true"],
    )
    .await;
    let second = App::attach(&first, &["--demo-data", "false"]).await;
    let mut last = Value::Null;
    for _ in 0..600 {
        let (a, b) = (leases(&first).await, leases(&second).await);
        let works: HashSet<String> = a["works"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect();
        let held_a = active(&a);
        let held_b = active(&b);
        let held: HashSet<&String> = held_a.iter().chain(&held_b).collect();
        // Each lease held once (the two reports are read one after the
        // other: the first must not have changed meanwhile, or a lease
        // handed over between the reads shows in both).
        let settled = n(&a["members"]) == 2
            && held.len() == works.len()
            && held_a.len() + held_b.len() == works.len()
            && !held_b.is_empty();
        if settled && leases(&first).await == a {
            first.finish().await;
            return;
        }
        last = serde_json::json!([a, b]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("some work has no process: {last}");
}
