//! `freshledger-bench`: a load generator for the real server.
//!
//! It creates a fresh database (a SQLite file, or a Postgres database it
//! drops afterwards), starts the `freshledger` binary on it, seeds a
//! catalogue and stock, and drives whole order lifecycles over HTTP with K
//! concurrent clients. It reports commands/s, events/s, orders/s, command
//! latency p50/p95/p99, projection lag p50/p99, the rate of a full
//! read-model rebuild, the server's peak memory, and a raw-database
//! baseline (plain INSERTs of event-sized rows at the same concurrency, and
//! COPY on Postgres) to put the event rate in proportion.
//!
//! Modes:
//! - `manual` (the default): the saga is off and each client sends the 15
//!   commands of a lifecycle itself (place, reserve, allocate, open the
//!   payment, authorized, paid, pick, pack, delivery, rider, pick-up, ship,
//!   hand-over, delivered, captured).
//! - `saga`: clients only place orders; the order saga reserves, takes
//!   payment and marks them paid. Reports placed-and-paid orders/s.
//!
//! With `--kafka-brokers`, the server relays to Kafka and the lag probed is
//! the relay's (append → acknowledged by the broker); after the run, the
//! relay replays the whole log into fresh topics, timed beside a raw
//! rdkafka producer sending the same messages (`relay throughput`).
//!
//! With `--clickhouse-url`, the server projects into ClickHouse and the lag
//! probed is the projector's (append → acknowledged by ClickHouse); after
//! the run, `analytics replay` rebuilds every table from the log, timed
//! beside a raw read of the same log (`read_all` pages, and COPY on
//! Postgres). `--report-lines N` instead fills a ClickHouse database with N
//! synthetic order lines (through the projector's own mapping) and times
//! every report.

mod analytics;
mod audit;

/// The server's allocator, so the raw baselines this process measures
/// (reading the log) allocate as fast as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Manual,
    Saga,
}

/// Drive the real freshledger server and measure it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    #[arg(long, value_enum, default_value = "manual")]
    mode: Mode,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Orders to run through their lifecycle.
    #[arg(long, default_value_t = 1_000)]
    orders: usize,
    /// The server binary [default: `freshledger` next to this one].
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Open loop: send commands at this many per second in total (manual:
    /// lifecycles start at rate / 15 per second; saga: placements per
    /// second), whatever the answers' pace, instead of `--clients` closed
    /// loops. Measures latency and lag at a fixed load.
    #[arg(long)]
    rate: Option<f64>,
    /// How often the lag prober reads the read models' checkpoints (each
    /// read is a query; the resolution of the lag figures).
    #[arg(long, default_value_t = 1)]
    probe_interval_ms: u64,
    /// Keep the database afterwards (its URL is printed), to inspect it or
    /// to time a rebuild by hand.
    #[arg(long)]
    keep: bool,
    /// Skip the raw-database baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Write every lag sample to this CSV file (ms since the run started
    /// when the command was answered, its global position, its lag in ms,
    /// and how long the probe query that saw it took), to see when a tail
    /// happened.
    #[arg(long)]
    lag_trace: Option<std::path::PathBuf>,
    /// Relay to this Kafka: the lag reported is the relay's, and the
    /// relay's replay rate is measured against a raw producer.
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// Project into this ClickHouse (http://host:8123): the lag reported
    /// is the projector's, and a replay of the log is timed beside a raw
    /// read of it.
    #[arg(long)]
    clickhouse_url: Option<String>,
    /// With --clickhouse-url: skip the load; write this many synthetic
    /// order lines into a fresh ClickHouse database and time each report.
    #[arg(long)]
    report_lines: Option<u64>,
    /// With --clickhouse-url: skip the load; time a replay of the log of
    /// this (kept) database beside a raw read of it.
    #[arg(long)]
    replay_from: Option<String>,
    /// Skip the load; bring the audit chain of this database up to its
    /// head (`audit sync`), then time `audit verify` beside raw reads of the
    /// same log.
    #[arg(long)]
    audit_verify_from: Option<String>,
    /// Run this many order lifecycles (placed to delivered, by hand) on
    /// ONE batch, then time its lot recall (JSON and CSV) over HTTP.
    #[arg(long)]
    recall_orders: Option<usize>,
    /// An extra flag for the server (repeatable), e.g. `--server-arg=--audit-chain=false`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Server processes on the one database (Postgres for more than one);
    /// order i's commands go to process i mod N, as a load balancer with
    /// per-order affinity would send them. The background work is shared
    /// between them through leases.
    #[arg(long, default_value_t = 1)]
    processes: usize,
}

const SKUS: usize = 20;
const ADMIN_PASSWORD: &str = "bench-admin-password";

/// Signs the first admin in with a second factor (enrolled on the way);
/// `None` for a server from before identity (its login route is 404), so
/// A/B runs against older builds still work.
async fn admin_token(url: &str) -> Option<String> {
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let login = post(
        "/api/v1/auth/login",
        None,
        json!({"email": "admin@freshledger.local", "password": ADMIN_PASSWORD}),
    )
    .await
    .expect("login");
    if login.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    let login: Value = login.json().await.expect("login answer");
    let first = login["access_token"]
        .as_str()
        .expect("signed in")
        .to_string();
    let enrolment: Value = post("/api/v1/auth/mfa/enrolment", Some(&first), json!({}))
        .await
        .expect("enrolment")
        .json()
        .await
        .expect("enrolment answer");
    let secret = totp_rs::Secret::Encoded(enrolment["secret"].as_str().expect("a secret").into())
        .to_bytes()
        .expect("base32");
    let code = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "b".into())
        .expect("a TOTP")
        .generate_current()
        .expect("a code");
    let enabled: Value = post(
        "/api/v1/auth/mfa/confirmation",
        Some(&first),
        json!({"code": code}),
    )
    .await
    .expect("confirmation")
    .json()
    .await
    .expect("confirmation answer");
    enabled["tokens"]["access_token"]
        .as_str()
        .map(str::to_string)
}
const BATCHES_PER_SKU: usize = 5;

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(bin: &std::path::Path, db: &str, saga: bool, extra: &[String]) -> Server {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(bin)
            .args(["--database-url", db, "--max-connections", "32", "serve"])
            .args(["--listen", "127.0.0.1:0", "--demo-data", "false"])
            .args(["--order-saga", if saga { "true" } else { "false" }])
            .args(extra)
            .env("FRESHLEDGER_LOG", "warn")
            // The load is the point: no rate limit (older servers ignore it).
            .env("FRESHLEDGER_RATE_LIMIT_PER_SECOND", "0")
            .env("FRESHLEDGER_AUTH_RATE_LIMIT_PER_MINUTE", "0")
            .env("FRESHLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "FRESHLEDGER_MAIL_DIR",
                std::env::temp_dir().join("freshledger-bench-mail"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the server exited")
                .expect("its output");
            if let Some(u) = line.strip_prefix("freshledger listening on ") {
                break u.to_string();
            }
        };
        Server { child, url }
    }

    /// Peak resident memory so far (Linux: VmHWM), in KiB.
    fn peak_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A bench that fails (a panic unwinds through here) takes its server
/// down with it: the server shares the bench's stderr, and a caller
/// reading that to the end would otherwise wait for ever.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    /// Every process's URL (`url` is the first).
    urls: Vec<String>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    /// (global position, when its command was answered), for the lag probe.
    acked: Arc<Mutex<Vec<(u64, Instant)>>>,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let started = Instant::now();
        let r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let answered = Instant::now();
        self.latencies.lock().unwrap().push(answered - started);
        assert!(status.is_success(), "{path}: {status} {v}");
        if let Some(p) = v["position"].as_u64() {
            self.acked.lock().unwrap().push((p, answered));
        }
        v
    }

    /// PUTs reference data; a server from before the registries (404) is
    /// fine, so the same bench measures older builds in A/B runs.
    async fn register(&self, path: &str, body: Value) {
        let r = self
            .http
            .put(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        assert!(
            status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
            "{path}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }

    async fn post(&self, path: &str, body: Value) -> String {
        let v = self.send(reqwest::Method::POST, path, body).await;
        v["stream_id"].as_str().unwrap_or_default().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).send().await;
        r.expect("GET").json().await.expect("JSON")
    }
}

/// The whole log read with `read_all` pages, one after another (as
/// subscribers read): how many events, and how long it took.
async fn read_all_timed(store: &store::Store) -> (u64, Duration) {
    let started = Instant::now();
    let (mut after, mut events) = (0, 0u64);
    loop {
        let page = store.read_all(after, 10_000).await.expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.global_position;
        events += page.len() as u64;
    }
    (events, started.elapsed())
}

fn eur(minor: i64) -> Value {
    json!({"amount_minor": minor, "currency": "EUR"})
}

fn unit(n: u64) -> Value {
    json!({"uom": "unit", "amount": n})
}

/// 20 products, each with 5 batches of 1,000,000 units.
async fn seed(c: &Client) -> Vec<(String, Vec<String>)> {
    c.register(
        "/api/v1/warehouses/WH-BER-1",
        json!({"name": "Bench warehouse",
               "address": {"recipient": "Receiving", "line1": "Lagerstraße 1", "city": "Berlin",
                           "postal_code": "10115", "country": "DE"},
               "zones": [{"code": "AMB-A", "storage": "ambient"}]}),
    )
    .await;
    c.register(
        "/api/v1/suppliers/SUP-ALMERIA-COOP",
        json!({"name": "Bench supplier",
               "contact": {"name": "Sales", "email": "sales@example.com"}}),
    )
    .await;
    let mut stock = Vec::new();
    for i in 0..SKUS {
        let sku = format!("BEN-{i:03}");
        c.send(
            reqwest::Method::PUT,
            &format!("/api/v1/products/{sku}"),
            json!({"name": format!("Bench product {i}"), "categories": ["fruit"], "origin": "DE",
                   "per": "per_unit", "price": eur(100)}),
        )
        .await;
        let mut batches = Vec::new();
        for b in 0..BATCHES_PER_SKU {
            batches.push(
                c.post(
                    "/api/v1/batches",
                    json!({"sku": sku, "warehouse_id": "WH-BER-1", "supplier_id": "SUP-ALMERIA-COOP",
                           "quantity": unit(1_000_000),
                           "expires_at": chrono::Utc::now() + chrono::Duration::days(10 + b as i64),
                           "procurement_cost": eur(100_000), "cold_chain": "ambient"}),
                )
                .await,
            );
        }
        stock.push((sku, batches));
    }
    stock
}

fn order_body(sku: &str) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    json!({
        "customer_id": uuid::Uuid::now_v7(), "warehouse_id": "WH-BER-1",
        "lines": [{"sku": sku, "quantity": unit(1)}],
        "delivery_slot": {"starts_at": start, "ends_at": start + chrono::Duration::hours(2)},
        "delivery_address": {"recipient": "Bench", "line1": "Street 1", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"},
        "payment_method": "card"
    })
}

/// One order, placed to captured, by hand: 15 commands.
async fn lifecycle(c: &Client, sku: &str, batch: &str) {
    let rider = uuid::Uuid::now_v7();
    let oid = c.post("/api/v1/orders", order_body(sku)).await;
    let o = |p: &str| format!("/api/v1/orders/{oid}/{p}");
    c.post(
        &format!("/api/v1/batches/{batch}/reservations"),
        json!({"order_id": oid, "quantity": unit(1)}),
    )
    .await;
    c.post(
        &o("allocation"),
        json!({"allocations": [{"sku": sku, "batch_id": batch, "quantity": unit(1)}]}),
    )
    .await;
    let pid = c
        .post("/api/v1/payments", json!({"order_id": oid, "method": "card", "gateway": "simulated", "amount_due": eur(100)}))
        .await;
    let gw = format!("/api/v1/payments/{pid}/gateway-events");
    c.post(
        &gw,
        json!({"type": "authorized", "amount": eur(100), "gateway_reference": "auth_bench"}),
    )
    .await;
    c.post(
        &o("payment"),
        json!({"payment_id": pid, "amount": eur(100)}),
    )
    .await;
    c.post(
        &format!("/api/v1/batches/{batch}/picks"),
        json!({"order_id": oid, "quantity": unit(1)}),
    )
    .await;
    c.post(
        &o("pack"),
        json!({"lines": [{"sku": sku, "packed_quantity": unit(1)}]}),
    )
    .await;
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let did = c
        .post("/api/v1/deliveries", json!({"order_id": oid,
            "slot": {"starts_at": start, "ends_at": start + chrono::Duration::hours(2)},
            "address": {"recipient": "Bench", "line1": "Street 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "cold_chain": false}))
        .await;
    let d = |p: &str| format!("/api/v1/deliveries/{did}/{p}");
    c.post(&d("rider"), json!({"rider_id": rider})).await;
    c.post(&d("pickup"), json!({"rider_id": rider})).await;
    c.post(&o("ship"), json!({"delivery_id": did})).await;
    c.post(
        &d("complete"),
        json!({"proof": {"kind": "signature", "signed_by": "Bench"}}),
    )
    .await;
    c.post(&o("deliver"), json!({"delivery_id": did})).await;
    c.post(
        &gw,
        json!({"type": "captured", "amount": eur(100), "gateway_reference": "ch_bench"}),
    )
    .await;
}

/// The log's head, event count, and the lowest read-model checkpoint.
async fn log_state(c: &Client) -> (u64, u64, u64) {
    let s = c.get("/api/v1/log").await;
    let models = ["orders", "stock", "deliveries", "payments", "timers"];
    let lowest = s["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter(|x| models.contains(&x["name"].as_str().unwrap_or_default()))
        .map(|x| x["position"].as_u64().unwrap_or(0))
        .min()
        .unwrap_or(0);
    (
        s["head_position"].as_u64().unwrap_or(0),
        s["event_count"].as_u64().unwrap_or(0),
        lowest,
    )
}

const MODELS: &str = "('orders', 'stock', 'deliveries', 'payments', 'timers')";
const RELAY: &str = "('kafka-relay')";

/// Drops a ClickHouse database the bench made.
async fn drop_database(url: &str, db: &str) {
    let _ = reqwest::Client::new()
        .post(url)
        .body(format!("DROP DATABASE IF EXISTS {db}"))
        .send()
        .await;
}

/// The read models' (or the relay's) checkpoints, read straight from the
/// database: one indexed lookup of a few rows, so probing does not load
/// the server.
struct Checkpoints {
    pool: Pool,
    /// One number: the lowest checkpoint of what is probed.
    sql: String,
}

/// The probe of some subscriptions' lowest checkpoint.
fn subscriptions(names: &str) -> String {
    format!("SELECT COALESCE(MIN(position), 0) FROM subscriptions WHERE name IN {names}")
}

/// The probe of the ClickHouse projector's lowest table position.
fn analytics_positions(db: &str) -> String {
    format!("SELECT COALESCE(MIN(position), 0) FROM analytics_positions WHERE name LIKE '{db}.%'")
}

enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Checkpoints {
    async fn connect(backend: Backend, url: &str, sql: String) -> Checkpoints {
        let pool = match backend {
            Backend::Postgres => Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("probe connection"),
            ),
            Backend::Sqlite => Pool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&format!("{url}?mode=ro"))
                    .await
                    .expect("probe connection"),
            ),
        };
        Checkpoints { pool, sql }
    }

    /// The lowest checkpoint of the probed subscriptions.
    async fn lowest(&self) -> u64 {
        let sql = &self.sql;
        let p = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
            Pool::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        };
        p.expect("checkpoints") as u64
    }
}

/// One command's projection lag, as the prober saw it.
struct LagSample {
    answered: Instant,
    position: u64,
    lag: Duration,
    /// How long the probe query that saw it took.
    probe: Duration,
}

/// Projection lag of every command: from the moment its answer (which
/// carries the global position of its events) reached the client until
/// every read model's checkpoint, committed with the model's rows, has
/// passed that position. Polls every `every` (default 1 ms); after `stop`, waits for
/// the models to apply what is still pending.
async fn probe_lag(
    c: Client,
    checkpoints: Checkpoints,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<LagSample> {
    let mut lags = Vec::new();
    let mut pending: Vec<(u64, Instant)> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        pending.extend(c.acked.lock().unwrap().drain(..));
        if !pending.is_empty() {
            let asked = Instant::now();
            let lowest = checkpoints.lowest().await;
            let now = Instant::now();
            pending.retain(|&(position, answered)| {
                if position <= lowest {
                    lags.push(LagSample {
                        answered,
                        position,
                        lag: now.saturating_duration_since(answered),
                        probe: now - asked,
                    });
                }
                position > lowest
            });
        }
        if stopping && pending.is_empty() {
            return lags;
        }
        tokio::time::sleep(every).await;
    }
}

/// One order: its whole lifecycle by hand, or only its placement (saga).
async fn one_order(c: Client, stock: Arc<Vec<(String, Vec<String>)>>, i: usize, mode: Mode) {
    let c = Client {
        url: c.urls[i % c.urls.len()].clone(),
        ..c
    };
    let (sku, batches) = &stock[i % SKUS];
    match mode {
        Mode::Manual => lifecycle(&c, sku, &batches[(i / SKUS) % BATCHES_PER_SKU]).await,
        Mode::Saga => {
            c.post("/api/v1/orders", order_body(sku)).await;
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

/// Rows/s of plain INSERTs of event-sized rows at `clients` concurrency
/// (and, on Postgres, of one COPY of as many rows).
async fn baseline(url: &str, backend: Backend, clients: usize, rows: usize) -> (f64, Option<f64>) {
    let payload = "x".repeat(600);
    let per = rows / clients.max(1);
    match backend {
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(clients as u32)
                .connect(url)
                .await
                .expect("baseline connect");
            sqlx::query("CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, stream TEXT NOT NULL, seq BIGINT NOT NULL, payload TEXT NOT NULL, UNIQUE (stream, seq))")
                .execute(&pool).await.expect("baseline table");
            let started = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (pool, payload) = (pool.clone(), payload.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..per {
                        sqlx::query(
                            "INSERT INTO bench_raw (stream, seq, payload) VALUES ($1, $2, $3)",
                        )
                        .bind(format!("s{c}-{}", i / 10))
                        .bind((i % 10) as i64)
                        .bind(&payload)
                        .execute(&pool)
                        .await
                        .expect("insert");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("insert task");
            }
            let insert = (per * clients) as f64 / started.elapsed().as_secs_f64();
            let mut conn = pool.acquire().await.expect("conn");
            let started = Instant::now();
            let mut copy = conn
                .copy_in_raw("COPY bench_raw (stream, seq, payload) FROM STDIN")
                .await
                .expect("copy");
            let mut data = String::new();
            for i in 0..rows {
                data.push_str(&format!("c{}\t{}\t{payload}\n", i / 10, i % 10));
            }
            copy.send(data.as_bytes()).await.expect("copy data");
            copy.finish().await.expect("copy finish");
            let copy_rate = rows as f64 / started.elapsed().as_secs_f64();
            (insert, Some(copy_rate))
        }
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let raw = format!("{path}.raw");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{raw}?mode=rwc"))
                .await
                .expect("baseline sqlite");
            for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"] {
                sqlx::query(pragma)
                    .execute(&mut conn)
                    .await
                    .expect("pragma");
            }
            sqlx::query("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE (stream, seq))")
                .execute(&mut conn).await.expect("baseline table");
            // One writer, one row per transaction: what a command commits.
            let started = Instant::now();
            for i in 0..rows {
                sqlx::query("INSERT INTO bench_raw (stream, seq, payload) VALUES (?, ?, ?)")
                    .bind(format!("s{}", i / 10))
                    .bind((i % 10) as i64)
                    .bind(&payload)
                    .execute(&mut conn)
                    .await
                    .expect("insert");
            }
            let rate = rows as f64 / started.elapsed().as_secs_f64();
            let _ = std::fs::remove_file(&raw);
            (rate, None)
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if let Some(lines) = args.report_lines {
        let url = args
            .clickhouse_url
            .clone()
            .expect("--report-lines needs --clickhouse-url");
        analytics::report_times(&url, lines, args.keep).await;
        return;
    }
    let server_bin = args.server.clone().unwrap_or_else(|| {
        let me = std::env::current_exe().expect("own path");
        me.with_file_name(format!("freshledger{}", std::env::consts::EXE_SUFFIX))
    });
    assert!(
        server_bin.exists(),
        "no server binary at {} (build it: cargo build --release --workspace, or pass --server)",
        server_bin.display()
    );
    if let Some(db) = &args.audit_verify_from {
        audit::verify_throughput(&server_bin, db).await;
        return;
    }
    if let Some(db) = &args.replay_from {
        let url = args
            .clickhouse_url
            .clone()
            .expect("--replay-from needs --clickhouse-url");
        let postgres = db.starts_with("postgres");
        analytics::replay_throughput(&server_bin, db, postgres, &url).await;
        return;
    }
    let kind = match args.backend {
        Backend::Sqlite => testkit::Kind::Sqlite,
        Backend::Postgres => testkit::Kind::Postgres,
    };
    let db = testkit::TestDb::new(kind, "bench").await;
    // `--kafka-brokers mock`: librdkafka's in-process mock cluster, to tell
    // the relay's own cost from a broker's.
    let mock = (args.kafka_brokers.as_deref() == Some("mock"))
        .then(|| rdkafka::mocking::MockCluster::new(1).expect("a mock cluster"));
    let topic_prefix = format!("bench{}", uuid::Uuid::now_v7().simple());
    if let Some(m) = &mock {
        args.kafka_brokers = Some(m.bootstrap_servers());
        // The mock broker does not create topics on request.
        for stream in [
            "order",
            "inventory-batch",
            "payment",
            "delivery",
            "timer",
            "integration",
        ] {
            m.create_topic(&format!("{topic_prefix}.{stream}.v1"), 6, 1)
                .expect("a mock topic");
        }
    }
    let mut flags: Vec<String> = match &args.kafka_brokers {
        Some(b) => vec![
            "--kafka-brokers".into(),
            b.clone(),
            "--kafka-topic-prefix".into(),
            topic_prefix.clone(),
        ],
        None => Vec::new(),
    };
    let ch_db = format!("bench{}", uuid::Uuid::now_v7().simple());
    if let Some(url) = &args.clickhouse_url {
        flags.extend([
            "--clickhouse-url".into(),
            url.clone(),
            "--clickhouse-database".into(),
            ch_db.clone(),
        ]);
    }
    flags.extend(args.server_arg.iter().cloned());
    assert!(
        args.processes == 1 || args.backend == Backend::Postgres,
        "several processes share a Postgres database (SQLite is one process's file)"
    );
    let mut others: Vec<Server> = Vec::new();
    let server = Server::start(&server_bin, &db.url, args.mode == Mode::Saga, &flags);
    for _ in 1..args.processes.max(1) {
        others.push(Server::start(
            &server_bin,
            &db.url,
            args.mode == Mode::Saga,
            &flags,
        ));
    }
    let urls: Vec<String> = std::iter::once(server.url.clone())
        .chain(others.iter().map(|s| s.url.clone()))
        .collect();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = admin_token(&server.url).await {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header value"),
        );
    }
    let client = Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients * 2)
            .default_headers(headers)
            .build()
            .expect("HTTP client"),
        url: server.url.clone(),
        urls,
        latencies: Arc::new(Mutex::new(Vec::new())),
        acked: Arc::new(Mutex::new(Vec::new())),
    };
    let stock = Arc::new(seed(&client).await);
    if let Some(n) = args.recall_orders {
        let (sku, batches) = stock[0].clone();
        let batch = batches[0].clone();
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.clients {
            let (c, sku, batch, next) = (client.clone(), sku.clone(), batch.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    lifecycle(&c, &sku, &batch).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("a lifecycle task");
        }
        println!(
            "recall load         {n} orders placed to delivered on one batch in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        audit::recall_times(&client.http, &client.url, &batch, n).await;
        server.stop();
        if args.keep {
            println!("database            kept: {}", db.url);
        } else {
            db.remove().await;
        }
        return;
    }
    client.latencies.lock().unwrap().clear();
    let (_, events_before, _) = log_state(&client).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    client.acked.lock().unwrap().clear();
    let probed = if args.kafka_brokers.is_some() {
        subscriptions(RELAY)
    } else if args.clickhouse_url.is_some() {
        analytics_positions(&ch_db)
    } else {
        subscriptions(MODELS)
    };
    let checkpoints = Checkpoints::connect(args.backend, &db.url, probed).await;
    let prober = tokio::spawn(probe_lag(
        client.clone(),
        checkpoints,
        Duration::from_millis(args.probe_interval_ms),
        stop.clone(),
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    if let Some(rate) = args.rate {
        // Open loop: order i starts at its scheduled time, answered or not.
        let per_second = match args.mode {
            Mode::Manual => rate / 15.0,
            Mode::Saga => rate,
        };
        let gap = Duration::from_secs_f64(1.0 / per_second);
        let t0 = tokio::time::Instant::now();
        for i in 0..args.orders {
            tokio::time::sleep_until(t0 + gap * i as u32).await;
            tasks.push(tokio::spawn(one_order(
                client.clone(),
                stock.clone(),
                i,
                args.mode,
            )));
        }
    } else {
        // Closed loops: each client sends its next command when the last
        // one is answered.
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..args.clients {
            let (c, next, stock, n, mode) = (
                client.clone(),
                next.clone(),
                stock.clone(),
                args.orders,
                args.mode,
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    one_order(c.clone(), stock.clone(), i, mode).await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("client");
    }
    let sent = started.elapsed();
    // Saga mode: orders count once the saga has paid them (the log settles).
    let mut settled = sent;
    if args.mode == Mode::Saga {
        loop {
            let s = client.get("/api/v1/log").await;
            let head = s["head_position"].as_u64().unwrap_or(0);
            let all = s["subscriptions"].as_array().expect("subscriptions");
            if all.iter().all(|x| x["position"].as_u64() == Some(head)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        settled = started.elapsed();
    }
    stop.store(true, Ordering::Relaxed);
    let samples = prober.await.expect("prober");
    if let Some(path) = &args.lag_trace {
        let mut csv = String::from("answered_ms,position,lag_ms,probe_ms\n");
        for s in &samples {
            csv.push_str(&format!(
                "{:.3},{},{:.3},{:.3}\n",
                s.answered.saturating_duration_since(started).as_secs_f64() * 1e3,
                s.position,
                s.lag.as_secs_f64() * 1e3,
                s.probe.as_secs_f64() * 1e3
            ));
        }
        std::fs::write(path, csv).expect("writing the lag trace");
    }
    let mut lags: Vec<Duration> = samples.iter().map(|s| s.lag).collect();
    let (_, events_after, _) = log_state(&client).await;
    let mut lat = client.latencies.lock().unwrap().clone();
    lat.sort();
    lags.sort();
    let peak = std::iter::once(&server)
        .chain(&others)
        .filter_map(Server::peak_kib)
        .max();
    let events = events_after - events_before;

    // A full rebuild of every read model, while the server keeps serving.
    let rebuild_started = Instant::now();
    let out = Command::new(&server_bin)
        .args(["--database-url", &db.url, "projections", "rebuild"])
        .env("FRESHLEDGER_LOG", "warn")
        .output()
        .expect("rebuild");
    assert!(
        out.status.success(),
        "rebuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuild = rebuild_started.elapsed();
    // Five models, each replaying the whole log.
    let rebuild_rate = 5.0 * events_after as f64 / rebuild.as_secs_f64();
    // The whole log, for the relay's replay and its raw baseline.
    let mut log: Vec<Value> = Vec::new();
    if args.kafka_brokers.is_some() {
        loop {
            let after = log
                .last()
                .map(|e| e["global_position"].as_u64().unwrap())
                .unwrap_or(0);
            let page = client
                .get(&format!("/api/v1/events?after={after}&limit=1000"))
                .await;
            let page = page.as_array().expect("events");
            if page.is_empty() {
                break;
            }
            log.extend(page.iter().cloned());
        }
    }
    server.stop();
    others.into_iter().for_each(Server::stop);

    let commands = lat.len();
    let secs = sent.as_secs_f64();
    match args.rate {
        Some(rate) => println!(
            "backend {:?}, mode {:?}, open loop at {rate} commands/s, {} orders",
            args.backend, args.mode, args.orders
        ),
        None => println!(
            "backend {:?}, mode {:?}, {} clients, {} orders, {} process(es)",
            args.backend,
            args.mode,
            args.clients,
            args.orders,
            args.processes.max(1)
        ),
    }
    println!(
        "commands            {commands} in {secs:.2} s: {:.0} commands/s",
        commands as f64 / secs
    );
    println!(
        "events              {events}: {:.0} events/s",
        events as f64 / settled.as_secs_f64()
    );
    match args.mode {
        Mode::Manual => println!(
            "orders              {:.0} lifecycles/s (15 commands each)",
            args.orders as f64 / secs
        ),
        Mode::Saga => println!(
            "orders              {:.0} placed-and-paid orders/s (paid by the saga)",
            args.orders as f64 / settled.as_secs_f64()
        ),
    }
    println!(
        "command latency     p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99)
    );
    println!(
        "{}  p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        if args.kafka_brokers.is_some() {
            "relay lag (acked) "
        } else if args.clickhouse_url.is_some() {
            "ClickHouse lag    "
        } else {
            "projection lag    "
        },
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        lags.len()
    );
    println!("rebuild             {events_after} events x 5 models in {:.2} s: {rebuild_rate:.0} events/s", rebuild.as_secs_f64());
    match peak {
        Some(k) => println!("server peak memory  {:.1} MiB", k as f64 / 1024.0),
        None => println!("server peak memory  unknown (no /proc)"),
    }
    if !args.no_baseline {
        let rows = events.clamp(1_000, 50_000) as usize;
        let (insert, copy) = baseline(&db.url, args.backend, args.clients, rows).await;
        let ours = events as f64 / settled.as_secs_f64();
        println!(
            "baseline            raw INSERT {insert:.0} rows/s at {} clients: ours is {:.2}x",
            args.clients,
            ours / insert
        );
        if let Some(copy) = copy {
            println!(
                "baseline            raw COPY {copy:.0} rows/s: ours is {:.2}x",
                ours / copy
            );
        }
        if args.mode == Mode::Saga && events > 0 {
            // What bounds any design that writes each event with its own
            // INSERT, on this machine: the raw rate over the events one
            // order needs, with nothing else running.
            let per_order = events as f64 / args.orders as f64;
            println!(
                "ceiling             raw INSERT / {per_order:.1} events per order: {:.0} orders/s at one INSERT per event",
                insert / per_order
            );
        }
    }
    if let Some(brokers) = &args.kafka_brokers {
        relay_throughput(&server_bin, &db.url, args.backend, brokers, &log).await;
    }
    if let Some(url) = &args.clickhouse_url {
        analytics::replay_throughput(&server_bin, &db.url, args.backend == Backend::Postgres, url)
            .await;
        drop_database(url, &ch_db).await;
    }
    if args.keep {
        println!("database            kept: {}", db.url);
    } else {
        db.remove().await;
    }
}

/// A message the raw producer sends: topic, key, value, headers.
type RawMessage = (String, String, Vec<u8>, Vec<(String, String)>);

/// The relay replaying the whole log into fresh topics (a new prefix, its
/// checkpoint reset to 0), timed from the server's start until its
/// checkpoint reaches the head; beside a raw rdkafka producer (the relay's
/// settings: idempotent, acks=all) sending the same envelopes with the
/// same keys and headers, every one acknowledged.
async fn relay_throughput(
    bin: &std::path::Path,
    db: &str,
    backend: Backend,
    brokers: &str,
    events: &[Value],
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let raw_prefix = format!("raw{}", uuid::Uuid::now_v7().simple());
    let topic_of = |stream: &str| format!("{raw_prefix}.{}.v1", stream.to_lowercase());
    // The raw producer's topics, made as the relay makes its own.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin client");
    let names: Vec<String> = ["Order", "InventoryBatch", "Payment", "Delivery", "Timer"]
        .iter()
        .map(|s| topic_of(s))
        .collect();
    let topics: Vec<rdkafka::admin::NewTopic<'_>> = names
        .iter()
        .map(|n| rdkafka::admin::NewTopic::new(n, 6, rdkafka::admin::TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&topics, &rdkafka::admin::AdminOptions::new())
        .await
        .expect("creating the raw topics");
    let messages: Vec<RawMessage> = events
        .iter()
        .map(|e| {
            let topic = topic_of(e["stream_type"].as_str().unwrap());
            let headers = [
                "event_id",
                "event_type",
                "event_version",
                "stream_type",
                "stream_id",
                "stream_version",
                "global_position",
                "correlation_id",
                "actor",
                "occurred_at",
                "recorded_at",
            ]
            .iter()
            .map(|k| (k.to_string(), e[*k].to_string()))
            .collect();
            (
                topic,
                e["stream_id"].as_str().unwrap().to_string(),
                serde_json::to_vec(e).unwrap(),
                headers,
            )
        })
        .collect();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("raw producer");
    let started = Instant::now();
    for chunk in messages.chunks(2_000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for (topic, key, value, headers) in chunk {
            let h = headers
                .iter()
                .fold(rdkafka::message::OwnedHeaders::new(), |h, (k, v)| {
                    h.insert(rdkafka::message::Header {
                        key: k,
                        value: Some(v.as_str()),
                    })
                });
            loop {
                match producer.send_result(
                    FutureRecord::to(topic)
                        .key(key)
                        .payload(value)
                        .headers(h.clone()),
                ) {
                    Ok(d) => {
                        pending.push(d);
                        break;
                    }
                    Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }
        for d in pending {
            d.await.expect("delivered").expect("acknowledged");
        }
    }
    let raw = started.elapsed();

    // The relay, from 0, into fresh topics.
    let checkpoints = Checkpoints::connect(backend, db, subscriptions(RELAY)).await;
    let reset = "UPDATE subscriptions SET position = 0 WHERE name = 'kafka-relay'";
    match backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db).await.expect("reset");
            sqlx::query(reset).execute(&mut c).await.expect("reset");
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db).await.expect("reset");
            sqlx::query(reset).execute(&mut c).await.expect("reset");
        }
    }
    let head = events
        .last()
        .map(|e| e["global_position"].as_u64().unwrap())
        .unwrap_or(0);
    let started = Instant::now();
    let server = Server::start(
        bin,
        db,
        false,
        &[
            "--kafka-brokers".into(),
            brokers.into(),
            "--kafka-topic-prefix".into(),
            format!("replay{}", uuid::Uuid::now_v7().simple()),
        ],
    );
    // Steady rate: from the first acknowledged batch (the server is up and
    // the relay has its lease and topics) to the head.
    let mut first: Option<(u64, Instant)> = None;
    loop {
        let at = checkpoints.lowest().await;
        if at > 0 && first.is_none() {
            first = Some((at, Instant::now()));
        }
        if at >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let relayed = started.elapsed();
    let (first_at, first_when) = first.expect("the relay moved");
    let steady = (head - first_at) as f64 / first_when.elapsed().as_secs_f64();
    server.stop();
    let n = events.len() as f64;
    let (ours, theirs) = (n / relayed.as_secs_f64(), n / raw.as_secs_f64());
    println!(
        "relay throughput    {} events in {:.2} s from the server's start: {ours:.0} events/s acknowledged (with their public events)",
        events.len(),
        relayed.as_secs_f64()
    );
    println!(
        "relay steady rate   {steady:.0} events/s from its first acknowledged batch to the head"
    );
    println!(
        "baseline            raw rdkafka producer, the same envelopes: {theirs:.0} events/s: ours is {:.2}x ({:.2}x steady)",
        ours / theirs,
        steady / theirs
    );
}
