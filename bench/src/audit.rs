//! The audit figures: `audit sync` (building the chain) and `audit verify`
//! over a kept log, beside raw reads of the same log in the same run.

use std::process::Command;
use std::time::Instant;

/// Raw reads of the whole log: `read_all` pages one after another (as
/// subscribers read) and four `read_range`s at once. (events, each's
/// events/s)
async fn raw_reads(db: &str) -> (u64, f64, f64) {
    let store = store::Store::connect(store::StoreConfig::new(db))
        .await
        .expect("the bench database");
    let (events, took) = super::read_all_timed(&store).await;
    let sequential = events as f64 / took.as_secs_f64();
    let head = store.head().await.expect("head");
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    let (mut from, mut n) = (0, 0u64);
    loop {
        while in_flight.len() < 4 && from < head {
            let up_to = (from + 5_000).min(head);
            let s = store.clone();
            in_flight.push_back(tokio::spawn(
                async move { s.read_stored(from, up_to).await },
            ));
            from = up_to;
        }
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        n += next.await.expect("reader").expect("read_stored").len() as u64;
    }
    let parallel = n as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    (events, sequential, parallel)
}

fn run(bin: &std::path::Path, db: &str, args: &[&str]) -> (std::time::Duration, String) {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["--database-url", db, "audit"])
        .args(args)
        .env("FRESHLEDGER_LOG", "warn")
        .output()
        .expect("the server binary");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "audit {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn verify_throughput(bin: &std::path::Path, db: &str) {
    let (took, said) = run(bin, db, &["sync"]);
    println!(
        "audit sync          {} in {:.2} s (what was not chained yet, with the process start)",
        said.trim(),
        took.as_secs_f64()
    );
    let (events, sequential, parallel) = raw_reads(db).await;
    let (took, report) = run(bin, db, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("a JSON report");
    assert_eq!(
        report["events"].as_u64(),
        Some(events),
        "verify read every event"
    );
    let rate = events as f64 / took.as_secs_f64();
    println!(
        "audit verify        {events} events, {} checkpoints: {rate:.0} events/s in {:.2} s (with the process start)",
        report["checkpoints"],
        took.as_secs_f64()
    );
    println!(
        "baseline            raw read_all (sequential, decoded): {sequential:.0} events/s: verify is {:.2}x",
        rate / sequential
    );
    println!(
        "baseline            raw read_stored, 4 ranges at once (as verify reads): {parallel:.0} events/s: verify is {:.2}x",
        rate / parallel
    );
}

/// Times the lot recall of `batch` (which fed `orders` order lines) over
/// HTTP, three times each as JSON and as CSV, once the chain caught up.
pub async fn recall_times(http: &reqwest::Client, url: &str, batch: &str, orders: usize) {
    for format in ["json", "csv"] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let r = http
                .get(format!(
                    "{url}/api/v1/audit/recall?batch_id={batch}&format={format}"
                ))
                .send()
                .await
                .expect("recall");
            assert!(r.status().is_success(), "recall: {}", r.status());
            let body = r.bytes().await.expect("recall body");
            times.push(started.elapsed());
            size = body.len();
            if format == "json" {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                assert_eq!(
                    v["lines"].as_array().map(Vec::len),
                    Some(orders),
                    "every line recalled"
                );
            }
        }
        times.sort();
        println!(
            "lot recall ({format:<4})   {orders} order lines of one batch: median {:.0} ms (runs {:?} ms), {:.1} MiB",
            times[1].as_secs_f64() * 1000.0,
            times.iter().map(|t| t.as_millis()).collect::<Vec<_>>(),
            size as f64 / 1_048_576.0
        );
    }
}
