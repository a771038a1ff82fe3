//! A process killed with SIGKILL in the middle of appends: after restart,
//! every append that returned success is there and nothing partial is.
//!
//! The test re-runs its own binary as the child (`crash_child`, ignored in
//! normal runs), which appends commands of 1, 1 and 2 events per batch
//! stream and prints a line after each success.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::common::*;
use domain::inventory::InventoryBatchCommand as IC;
use event_schemas::values::*;

#[test]
#[ignore = "run by the crash tests as their child process"]
fn crash_child() {
    let Ok(url) = std::env::var("FL_CRASH_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = crate::Store::connect(config(&url)).await.unwrap();
        let agg = batches(&store);
        loop {
            let id = BatchId::new();
            let sid = id.to_string();
            let order = OrderId::new();
            agg.execute(&sid, receive(id, 1_000), &meta())
                .await
                .unwrap();
            println!("committed {sid} 1");
            agg.execute(
                &sid,
                IC::ReserveStock {
                    order_id: order,
                    quantity: Quantity::grams(800).unwrap(),
                },
                &meta(),
            )
            .await
            .unwrap();
            println!("committed {sid} 2");
            // Picks 500 and releases the other 300: two events, one commit.
            agg.execute(
                &sid,
                IC::PickStock {
                    order_id: order,
                    quantity: Quantity::grams(500).unwrap(),
                },
                &meta(),
            )
            .await
            .unwrap();
            println!("committed {sid} 4");
        }
    });
}

async fn sigkill_during_appends(kind: Kind) {
    let ts = open(kind).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::crash::crash_child",
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FL_CRASH_URL", &ts.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < 150 {
        let line = lines.next().expect("child died early").unwrap();
        if let Some(rest) = line.strip_prefix("committed ") {
            let (id, v) = rest.split_once(' ').unwrap();
            reported.insert(id.to_string(), v.parse().unwrap());
            seen += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // "Restart": a fresh connection to the same log.
    let store = ts.another(|_| {}).await;
    for (id, version) in &reported {
        let events = store.read_stream("InventoryBatch", id).await.unwrap();
        assert!(
            events.len() as u64 >= *version,
            "{id}: acknowledged version {version} but only {} events survived",
            events.len()
        );
    }
    // Nothing partial anywhere: every stream is 1, 2 or 4 events long, never 3
    // (the two-event pick commits whole or not at all), with no holes.
    let all = store.read_all(0, 1_000_000).await.unwrap();
    let mut per_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &all {
        per_stream
            .entry(&e.stream_id)
            .or_default()
            .push(e.stream_version);
    }
    for (id, versions) in &per_stream {
        let n = versions.len() as u64;
        assert!(matches!(n, 1 | 2 | 4), "{id}: {n} events, a partial commit");
        assert_eq!(versions, &(1..=n).collect::<Vec<_>>(), "{id}: holes");
    }
    assert!(all.len() >= 150);
    store.close().await;
    ts.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_appends_sqlite() {
    sigkill_during_appends(Kind::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_appends_postgres() {
    sigkill_during_appends(Kind::Postgres).await
}
