//! The ClickHouse figures: a replay of the whole log beside a raw read of
//! it, and report query times over many synthetic order lines.

use std::process::Command;
use std::time::{Duration, Instant};

use analytics::facts::Facts;
use analytics::reports::{self, ReportArgs};
use analytics::{AnalyticsConfig, Ch, Mapper, ProductRow, Table};
use chrono::{DateTime, TimeZone, Utc};
use event_schemas::RecordedEvent;
use serde_json::{json, Value};
use uuid::Uuid;

/// `analytics replay` of the whole log into a fresh database, timed beside
/// reading the same log raw: `Store::read_all` pages (what the replay
/// reads with, events decoded) and, on Postgres, one COPY of the table.
pub async fn replay_throughput(bin: &std::path::Path, db: &str, postgres: bool, url: &str) {
    let store = store::Store::connect(store::StoreConfig::new(db))
        .await
        .expect("the bench database");
    let (events, read) = super::read_all_timed(&store).await;
    // The same ranges, four read at once on their own tasks (what the
    // replay's reader does).
    let head = store.head().await.expect("head");
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    let (mut from, mut parallel_events) = (0, 0u64);
    loop {
        while in_flight.len() < 4 && from < head {
            let up_to = (from + 10_000).min(head);
            let s = store.clone();
            in_flight.push_back(tokio::spawn(async move { s.read_range(from, up_to).await }));
            from = up_to;
        }
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        parallel_events += next.await.expect("reader").expect("read_range").len() as u64;
    }
    let parallel = started.elapsed();
    assert_eq!(parallel_events, events);
    store.close().await;
    let copy = if postgres {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(db)
            .await
            .expect("COPY connection");
        let started = Instant::now();
        let mut out = c
            .copy_out_raw("COPY (SELECT * FROM events ORDER BY position) TO STDOUT")
            .await
            .expect("COPY");
        let mut bytes = 0usize;
        use futures_util::StreamExt;
        while let Some(chunk) = out.next().await {
            bytes += chunk.expect("COPY data").len();
        }
        Some((started.elapsed(), bytes))
    } else {
        None
    };

    let target = format!("benchreplay{}", Uuid::now_v7().simple());
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["--database-url", db, "analytics", "--clickhouse-url", url])
        .args(["--clickhouse-database", &target, "replay"])
        .env("FRESHLEDGER_LOG", "warn")
        .output()
        .expect("analytics replay");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "analytics replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    // "... in S s (R events/s) ..." : the replay's own timing, without the
    // process start.
    let own: f64 = said
        .split(" s (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(f64::NAN);
    let raw = events as f64 / read.as_secs_f64();
    println!(
        "analytics replay    {events} events, all tables: {own:.0} events/s ({:.2} s with the process start: {:.0} events/s)",
        wall.as_secs_f64(),
        events as f64 / wall.as_secs_f64()
    );
    println!(
        "baseline            raw read_all of the same log: {raw:.0} events/s in {:.2} s: the replay is {:.2}x",
        read.as_secs_f64(),
        own / raw
    );
    let ranges = events as f64 / parallel.as_secs_f64();
    println!(
        "baseline            raw read_range, 4 ranges at once (as the replay reads): {ranges:.0} events/s in {:.2} s: the replay is {:.2}x",
        parallel.as_secs_f64(),
        own / ranges
    );
    if let Some((t, bytes)) = copy {
        println!(
            "baseline            raw COPY TO STDOUT: {:.0} events/s ({:.1} MiB in {:.2} s): the replay is {:.2}x",
            events as f64 / t.as_secs_f64(),
            bytes as f64 / 1_048_576.0,
            t.as_secs_f64(),
            own / (events as f64 / t.as_secs_f64())
        );
    }
    super::drop_database(url, &target).await;
}

/// A synthetic log shaped like the shop's: orders of five lines over half a
/// year, most packed and delivered, some cancelled; a batch per SKU,
/// warehouse and week, with write-offs.
struct Synth {
    position: u64,
    out: Vec<RecordedEvent>,
}

impl Synth {
    fn add(
        &mut self,
        stream_type: &str,
        id: Uuid,
        version: u64,
        event_type: &str,
        at: DateTime<Utc>,
        payload: Value,
    ) {
        self.position += 1;
        self.out.push(RecordedEvent {
            event_id: Uuid::now_v7(),
            global_position: self.position,
            stream_type: stream_type.into(),
            stream_id: id.to_string(),
            stream_version: version,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            occurred_at: at,
            recorded_at: at,
            correlation_id: id,
            causation_id: None,
            actor: "system:bench".parse().expect("an actor"),
            trace_parent: None,
            payload,
        });
    }
}

fn money(c: u64) -> Value {
    json!({"amount_minor": c, "currency": "EUR"})
}

const WAREHOUSES: [&str; 4] = ["WH-1", "WH-2", "WH-3", "WH-4"];
const SKUS: u64 = 40;

fn sku(i: u64) -> String {
    format!("SKU-{i:03}")
}

/// Orders `from..to` of the synthetic log (each with its batch events
/// when it opens a week), deterministic in `i`.
fn orders(synth: &mut Synth, from: u64, to: u64, lines: u64) {
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let per_day = 1_000u64.max(to / 180);
    for i in from..to {
        let at = start + chrono::Duration::seconds((i * 86_400 / per_day) as i64);
        let wh = WAREHOUSES[(i % 4) as usize];
        // A batch per SKU and warehouse each week, opened by the week's
        // first order there.
        if i.is_multiple_of(per_day) && (i / per_day).is_multiple_of(7) {
            for s in 0..SKUS {
                for w in WAREHOUSES {
                    let b = Uuid::now_v7();
                    synth.add("InventoryBatch", b, 1, "BatchReceived", at, json!({
                        "batch_id": b, "sku": sku(s), "warehouse_id": w, "supplier_id": format!("SUP-{}", s % 7),
                        "quantity": {"uom": "gram", "amount": 500_000}, "received_at": at,
                        "expires_at": at + chrono::Duration::days(10), "procurement_cost": money(40_000),
                        "cold_chain": "chilled"}));
                    synth.add("InventoryBatch", b, 2, "StockWrittenOff", at + chrono::Duration::days(9), json!({
                        "quantity": {"uom": "gram", "amount": 1_000 + s * 10}, "reason": if s % 3 == 0 { "spoiled" } else { "expired" },
                        "cost": money(80 + s)}));
                }
            }
        }
        let order = Uuid::now_v7();
        let customer = Uuid::from_u128(0x1000_0000 + (i * 7_919) as u128 % 40_000);
        let skus: Vec<u64> = (0..lines).map(|l| (i * 3 + l * 7) % SKUS).collect();
        let placed_lines: Vec<Value> = skus
            .iter()
            .map(|s| {
                json!({"sku": sku(*s), "quantity": {"uom": "gram", "amount": 500 + s * 25},
                            "unit_price": {"amount": money(200 + s * 5), "per": "per_kg"}})
            })
            .collect();
        let slot = at + chrono::Duration::hours(20);
        synth.add("Order", order, 1, "OrderPlaced", at, json!({
            "order_id": order, "customer_id": customer, "warehouse_id": wh, "lines": placed_lines,
            "delivery_slot": {"starts_at": slot, "ends_at": slot + chrono::Duration::hours(2)},
            "delivery_address": {"recipient": "A", "line1": "B 1", "city": "C", "postal_code": "1", "country": "DE"},
            "payment_method": "card"}));
        if i.is_multiple_of(20) {
            synth.add(
                "Order",
                order,
                2,
                "OrderCancelled",
                at + chrono::Duration::minutes(5),
                json!({"reason": "customer_request"}),
            );
            continue;
        }
        let packed: Vec<Value> = skus
            .iter()
            .map(|s| {
                json!({"sku": sku(*s), "packed_quantity": {"uom": "gram", "amount": 500 + s * 25},
                            "price": money((200 + s * 5) * (500 + s * 25) / 1000)})
            })
            .collect();
        synth.add(
            "Order",
            order,
            2,
            "OrderPacked",
            at + chrono::Duration::hours(12),
            json!({"lines": packed}),
        );
        let delivery = Uuid::now_v7();
        synth.add("Delivery", delivery, 1, "DeliveryCreated", at + chrono::Duration::hours(12), json!({
            "delivery_id": delivery, "order_id": order,
            "slot": {"starts_at": slot, "ends_at": slot + chrono::Duration::hours(2)},
            "address": {"recipient": "A", "line1": "B 1", "city": "C", "postal_code": "1", "country": "DE"},
            "cold_chain": true}));
        let done = slot + chrono::Duration::minutes(((i * 37) % 160) as i64);
        synth.add(
            "Delivery",
            delivery,
            2,
            "DeliveryCompleted",
            done,
            json!({"proof": {"kind": "pin", "pin_verified": true}}),
        );
        synth.add(
            "Order",
            order,
            3,
            "OrderDelivered",
            done,
            json!({"delivery_id": delivery}),
        );
    }
}

/// Writes `lines` synthetic order lines (orders of five) into a fresh
/// database through the projector's mapping, then times every report.
pub async fn report_times(url: &str, lines: u64, keep: bool) {
    let mut config = AnalyticsConfig::new(url);
    config.database = format!("benchreports{}", Uuid::now_v7().simple());
    let ch = Ch::new(&config);
    ch.prepare(true).await.expect("ClickHouse");
    let products: Vec<ProductRow> = (0..SKUS)
        .map(|s| ProductRow {
            sku: sku(s),
            name: format!("Product {s}"),
            category: ["fruit", "vegetable", "herb"][(s % 3) as usize].into(),
            unit: "g",
            refreshed: 1,
        })
        .collect();
    ch.insert(&ch.table(analytics::tables::PRODUCTS, ""), &products)
        .await
        .expect("products");
    let orders_total = lines.div_ceil(5);
    let after = Table::ALL.iter().map(|t| (*t, 0)).collect();
    let mut mapper = Mapper::offline(2_000_000);
    let mut synth = Synth {
        position: 0,
        out: Vec::new(),
    };
    let started = Instant::now();
    let mut events = 0u64;
    for chunk in (0..orders_total).step_by(20_000) {
        synth.out.clear();
        orders(&mut synth, chunk, (chunk + 20_000).min(orders_total), 5);
        let mut facts = Facts::default();
        mapper
            .map(&synth.out, &after, &mut facts)
            .await
            .expect("mapping");
        events += synth.out.len() as u64;
        analytics::write(&ch, "", &facts).await.expect("insert");
    }
    let loaded = started.elapsed();
    let line_rows = ch
        .numbers(&format!(
            "SELECT count(), uniqExact(order_id, sku) FROM {}.order_lines",
            config.database
        ))
        .await
        .expect("count");
    println!(
        "report data         {events} synthetic events, {} order lines ({} rows in order_lines) written in {:.1} s",
        line_rows[1],
        line_rows[0],
        loaded.as_secs_f64()
    );
    time_reports(&ch, "as written (parts not yet merged)").await;
    // What a day of background merges leaves: one part per partition.
    for t in Table::ALL {
        ch.exec(&format!("OPTIMIZE TABLE {} FINAL", ch.table(t.name(), "")))
            .await
            .expect("OPTIMIZE");
    }
    time_reports(&ch, "after OPTIMIZE FINAL (merged)").await;
    if keep {
        println!("database            kept: {}", config.database);
    } else {
        super::drop_database(url, &config.database).await;
    }
}

async fn time_reports(ch: &Ch, when: &str) {
    println!("report times        {when}:");
    let args = ReportArgs::default();
    for report in reports::REPORTS {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let table = reports::run(ch, report, &args).await.expect("report");
            times.push(t.elapsed());
            rows = table.rows.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "report {:<21} median {:>7.1} ms (min {:.1}, max {:.1}) over 3 runs, {rows} rows",
            report.name,
            ms(times[1]),
            ms(times[0]),
            ms(times[2])
        );
    }
}
