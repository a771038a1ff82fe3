//! Event-log throughput, with raw-INSERT baselines in the same run.
//!
//!   cargo bench -p store --bench log                 # both backends
//!   FL_BENCH_N=20000 FL_BENCH_CONCURRENCY=16 cargo bench -p store --bench log
//!
//! For each backend: appends/s through the full command path (load the
//! aggregate, decide, append through cqrs-es, look up the position), a raw
//! INSERT of the same rows (same payload and metadata, one row per
//! transaction, same concurrency) into a plain table of the same shape, and
//! read-all events/s (the safe global read, decoded into envelopes).
//! Postgres: FRESHLEDGER_TEST_PG names the server (a scratch database is
//! created and dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::clock::{Clock, FixedClock};
use domain::inventory::{InventoryBatch, InventoryBatchCommand, InventoryServices};
use event_schemas::inventory::ColdChain;
use event_schemas::values::*;
use event_schemas::{Actor, EventMetadata};
use sqlx::Connection;
use store::{Aggregates, Store, StoreConfig};
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn receive(batch: BatchId) -> InventoryBatchCommand {
    InventoryBatchCommand::ReceiveBatch {
        batch_id: batch,
        sku: "APL-GALA".parse().unwrap(),
        warehouse_id: "WH-1".parse().unwrap(),
        supplier_id: "SUP-1".parse().unwrap(),
        quantity: Quantity::grams(1_000).unwrap(),
        expires_at: now() + chrono::Duration::days(7),
        procurement_cost: Money::new(10_000, Currency::EUR).unwrap(),
        cold_chain: ColdChain::Chilled,
    }
}

fn meta() -> EventMetadata {
    EventMetadata {
        occurred_at: now(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("bench"),
        idempotency_key: None,
    }
}

struct Figures {
    backend: &'static str,
    appends: f64,
    raw: f64,
    read_all: f64,
}

fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks * 10.0
}

async fn run_concurrently<F, Fut>(n: usize, c: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let cpu0 = cpu_ms();
    let mut tasks = Vec::new();
    for w in 0..c {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                f(i).await;
                i += c;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    if std::env::var_os("FL_BENCH_CPU").is_some() {
        eprintln!(
            "client CPU per op: {:.0} µs",
            (cpu_ms() - cpu0) * 1000.0 / n as f64
        );
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn cfg_connections(c: usize) -> u32 {
    (c as u32 + 2).max(4)
}

/// The baseline's own connection pool to the same database: plain sqlx,
/// none of the store's machinery.
#[derive(Clone)]
enum RawPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl RawPool {
    async fn open(url: &str, connections: u32) -> RawPool {
        use std::str::FromStr;
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(connections)
                .connect(url)
                .await
                .unwrap();
            RawPool::Postgres(pool)
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(connections.clamp(1, 8))
                .connect_with(opts)
                .await
                .unwrap();
            RawPool::Sqlite(pool)
        }
    }
}

async fn bench(backend: &'static str, url: &str, n: usize, c: usize) -> Figures {
    let mut cfg = StoreConfig::new(url);
    cfg.max_connections = cfg_connections(c);
    let store = Store::connect(cfg).await.unwrap();
    store.migrate().await.unwrap();
    let raw_table = "CREATE TABLE raw_events (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, \
        sequence BIGINT NOT NULL, event_type TEXT NOT NULL, event_version TEXT NOT NULL, payload TEXT NOT NULL, \
        metadata TEXT NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))";
    let raw_pool = RawPool::open(url, cfg_connections(c)).await;
    match &raw_pool {
        RawPool::Postgres(p) => sqlx::query(raw_table).execute(p).await.map(|_| ()),
        RawPool::Sqlite(p) => sqlx::query(raw_table).execute(p).await.map(|_| ()),
    }
    .unwrap();

    // Warm-up: connections opened, statements prepared.
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(now()));
    let catalog = domain::InMemoryCatalog::new([domain::Product::new(
        "APL-GALA".parse().unwrap(),
        "Gala apples",
        vec![domain::Category::Fruit],
        Money::new(299, Currency::EUR).unwrap(),
        PricingUnit::PerKg,
        "IT",
        domain::Nutrition::default(),
    )
    .unwrap()])
    .with_samples(&["WH-1"], &["SUP-1"]);
    let agg = Arc::new(Aggregates::<InventoryBatch>::new(
        &store,
        InventoryServices {
            clock,
            catalog: Arc::new(catalog),
        },
    ));
    for _ in 0..c * 4 {
        let id = BatchId::new();
        agg.execute(&id.to_string(), receive(id), &meta())
            .await
            .unwrap();
    }

    let appends = run_concurrently(n, c, {
        let agg = agg.clone();
        move |_| {
            let agg = agg.clone();
            async move {
                let id = BatchId::new();
                agg.execute(&id.to_string(), receive(id), &meta())
                    .await
                    .unwrap();
            }
        }
    })
    .await;

    // The same rows, raw.
    let sample = store.read_all(0, 1).await.unwrap().remove(0);
    let payload = serde_json::json!({ "BatchReceived": sample.payload }).to_string();
    let mut m = meta().to_map();
    m.insert("event_id".into(), Uuid::now_v7().to_string());
    let metadata = serde_json::to_string(&m).unwrap();
    let raw = run_concurrently(n, c, {
        let raw_pool = raw_pool.clone();
        move |_| {
            let (raw_pool, payload, metadata) = (raw_pool.clone(), payload.clone(), metadata.clone());
            async move {
                let id = Uuid::now_v7().to_string();
                match &raw_pool {
                    RawPool::Postgres(p) => sqlx::query("INSERT INTO raw_events VALUES ('InventoryBatch', $1, 1, 'BatchReceived', '1.0', $2, $3)")
                        .bind(id).bind(payload).bind(metadata).execute(p).await.map(|_| ()),
                    RawPool::Sqlite(p) => sqlx::query("INSERT INTO raw_events VALUES ('InventoryBatch', ?, 1, 'BatchReceived', '1.0', ?, ?)")
                        .bind(id).bind(payload).bind(metadata).execute(p).await.map(|_| ()),
                }
                .unwrap();
            }
        }
    })
    .await;

    let total = store.count().await.unwrap();
    let started = Instant::now();
    let mut after = 0;
    let mut read = 0u64;
    loop {
        let batch = store.read_all(after, 1_000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        read += batch.len() as u64;
        after = batch.last().unwrap().global_position;
    }
    assert_eq!(read, total);
    let read_all = read as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    Figures {
        backend,
        appends,
        raw,
        read_all,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing.
    let n = env("FL_BENCH_N", 5_000);
    let c = env("FL_BENCH_CONCURRENCY", 8);
    let mut results = Vec::new();

    let dir = std::env::temp_dir().join(format!("freshledger-bench-{}", Uuid::now_v7()));
    let url = format!("sqlite://{}/log.db", dir.display());
    results.push(bench("SQLite", &url, n, c).await);
    let _ = std::fs::remove_dir_all(&dir);

    let admin = std::env::var("FRESHLEDGER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("fl_bench_{}", Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    results.push(bench("Postgres", &url, n, c).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();

    println!("\nappends: {n} commands (1 event each) from {c} concurrent clients\n");
    println!("| backend | appends/s | raw INSERT/s | appends ÷ raw | read-all events/s |");
    println!("|---|---:|---:|---:|---:|");
    for f in &results {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} |",
            f.backend,
            f.appends,
            f.raw,
            f.appends / f.raw,
            f.read_all
        );
    }
}
