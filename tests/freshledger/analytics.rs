//! ClickHouse analytics through the running binary and its CLI, against the
//! real ClickHouse server of the test command (18.16 on 127.0.0.1:8123,
//! FRESHLEDGER_TEST_CLICKHOUSE). Each test writes to a database of its own.
//! (The reports' numbers are checked in `analytics/tests/reports.rs`.)

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::common::*;

fn ch_url() -> String {
    std::env::var("FRESHLEDGER_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A ClickHouse database name no other test uses.
fn database() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

/// One query's answer, as text (TabSeparated).
async fn ch(sql: &str) -> String {
    let r = reqwest::Client::new()
        .post(ch_url())
        .body(sql.to_string())
        .send()
        .await
        .expect("ClickHouse answers");
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {text}");
    text.trim().to_string()
}

async fn ch_u64(sql: &str) -> u64 {
    let text = ch(sql).await;
    text.parse()
        .unwrap_or_else(|_| panic!("{sql}: not a number: {text:?}"))
}

fn flags(url: &str, db: &str, saga: bool) -> Vec<String> {
    [
        "--order-saga",
        if saga { "true" } else { "false" },
        "--clickhouse-url",
        url,
        "--clickhouse-database",
        db,
    ]
    .map(String::from)
    .to_vec()
}

/// `freshledger analytics ARGS` on `app`'s database.
fn cli(app: &App, db: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--database-url", &app.database_url, "analytics"])
        .args(["--clickhouse-url", &ch_url(), "--clickhouse-database", db])
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "analytics CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until the projector has every event of the settled log.
async fn caught_up(app: &App) -> Value {
    let events = app.log_len().await;
    let status = integration_until(app, "clickhouse", "the head", |s| {
        s["state"] == "active" && s["lag"] == 0 && s["healthy"] == true
    })
    .await;
    assert!(events > 0);
    status
}

/// The tables hold exactly the log: every event once, and the sums the
/// analysts would compute equal the log's own.
async fn assert_tables_match_the_log(app: &App, db: &str) {
    let events = all_events(app).await;
    let count = events.len() as u64;
    let last = events.last().unwrap()["global_position"].as_u64().unwrap();
    assert_eq!(
        ch_u64(&format!("SELECT count() FROM {db}.events FINAL")).await,
        count
    );
    assert_eq!(
        ch_u64(&format!("SELECT uniqExact(position) FROM {db}.events")).await,
        count,
        "every event, none twice"
    );
    assert_eq!(
        ch_u64(&format!("SELECT max(position) FROM {db}.events")).await,
        last
    );
    let of = |t: &'static str| events.iter().filter(move |e| e["event_type"] == t);
    let ordered: u64 = of("OrderPlaced")
        .flat_map(|e| e["payload"]["lines"].as_array().unwrap().clone())
        .map(|l| l["quantity"]["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ch_u64(&format!(
            "SELECT sum(quantity) FROM {db}.order_lines FINAL WHERE kind = 'ordered'"
        ))
        .await,
        ordered,
        "grams ordered"
    );
    let picked: u64 = of("StockPicked")
        .map(|e| e["payload"]["quantity"]["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ch_u64(&format!(
            "SELECT sumIf(quantity, kind = 'picked') FROM {db}.stock_movements FINAL"
        ))
        .await,
        picked,
        "grams picked"
    );
    for (stream, table) in [
        ("InventoryBatch", "stock_movements"),
        ("Payment", "payments"),
        ("Delivery", "deliveries"),
    ] {
        let n = events.iter().filter(|e| e["stream_type"] == stream).count() as u64;
        let rows = ch_u64(&format!("SELECT count() FROM {db}.{table} FINAL")).await;
        assert_eq!(rows, n, "one row per {stream} event in {table}");
    }
}

/// SIGKILL in the middle of orders, three times: every event lands in
/// ClickHouse once. Then a crash after ClickHouse acknowledged but before
/// the positions moved (forced by moving them back): the whole log is sent
/// again, and no sum changes.
#[tokio::test]
async fn the_live_projection_survives_sigkill_and_counts_a_resent_batch_once() {
    let db = database();
    let flags = flags(&ch_url(), &db, true);
    let flags = strs(&flags);
    let mut app = spawn_with(Backend::Postgres, &flags).await;
    for round in 0..3u64 {
        let shared = &app;
        futures_util::future::join_all(
            (0..15u64)
                .map(|i| async move { place(shared, &[("APL-GALA", 200 + round * 15 + i)]).await }),
        )
        .await;
        app.kill();
        app.restart_with(&flags);
    }
    caught_up(&app).await;
    assert_tables_match_the_log(&app, &db).await;
    let rows_before = ch_u64(&format!("SELECT count() FROM {db}.order_lines FINAL")).await;

    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE analytics_positions SET position = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    integration_until(&app, "clickhouse", "sent again", |s| {
        s["lag"].as_u64() > Some(0)
    })
    .await;
    caught_up(&app).await;
    assert_tables_match_the_log(&app, &db).await;
    assert_eq!(
        ch_u64(&format!("SELECT count() FROM {db}.order_lines FINAL")).await,
        rows_before
    );
    app.finish().await;
    ch(&format!("DROP DATABASE {db}")).await;
}

/// The checksums `analytics status --checksums` prints, per table.
fn checksums(status: &str) -> Vec<String> {
    let sums: Vec<String> = status
        .lines()
        .filter(|l| l.contains("checksum"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(sums.len(), 5, "{status}");
    sums
}

/// Replays: twice to the same position, identical tables (and identical to
/// the live projection); to an earlier position into a database of its
/// own, the log as it stood; into the live database, the projector goes on
/// from where the replay stopped.
#[tokio::test]
async fn replays_are_repeatable_and_answer_what_we_knew_then() {
    let db = database();
    let flags = flags(&ch_url(), &db, true);
    let app = spawn_with(Backend::Postgres, &strs(&flags)).await;
    for i in 0..4u64 {
        place(&app, &[("APL-GALA", 300 + i)]).await;
    }
    caught_up(&app).await;
    let then = all_events(&app).await;
    let then_head = then.last().unwrap()["global_position"].as_u64().unwrap();
    let live = checksums(&ok(cli(&app, &db, &["status", "--checksums"])));

    let replayed = ok(cli(&app, &db, &["replay"]));
    assert!(
        replayed.contains(&format!("up to position {then_head}")),
        "{replayed}"
    );
    let first = checksums(&ok(cli(&app, &db, &["status", "--checksums"])));
    assert_eq!(first, live, "a replay builds what the live projector built");
    ok(cli(&app, &db, &["replay"]));
    assert_eq!(
        checksums(&ok(cli(&app, &db, &["status", "--checksums"]))),
        first
    );

    // More happens; then replay to the earlier position elsewhere.
    for i in 0..3u64 {
        place(&app, &[("APL-GALA", 400 + i)]).await;
    }
    caught_up(&app).await;
    let head = app.log_len().await;
    assert!(head > then.len() as u64);
    let asof = database();
    let out = cli(
        &app,
        &asof,
        &["replay", "--to-position", &then_head.to_string()],
    );
    ok(out);
    let status = ok(cli(&app, &asof, &["status", "--checksums"]));
    assert_eq!(
        checksums(&status),
        first,
        "the log as it stood at {then_head}"
    );
    assert_eq!(
        ch_u64(&format!("SELECT count() FROM {asof}.events FINAL")).await,
        then.len() as u64
    );
    // The same moment by time.
    let recorded = then.last().unwrap()["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let by_time = database();
    let out = cli(&app, &by_time, &["replay", "--as-of", &recorded]);
    let said = ok(out);
    assert!(
        said.contains(&format!("up to position {then_head}")),
        "{said}"
    );
    assert_eq!(
        checksums(&ok(cli(&app, &by_time, &["status", "--checksums"]))),
        first
    );

    // Into the live database, one table, to the earlier position: the live
    // projector continues from there and catches up.
    let out = ok(cli(
        &app,
        &db,
        &[
            "replay",
            "--to-position",
            &then_head.to_string(),
            "--tables",
            "order_lines",
        ],
    ));
    assert!(out.contains("order_lines"), "{out}");
    caught_up(&app).await;
    assert_tables_match_the_log(&app, &db).await;
    let status = ok(cli(&app, &db, &["status"]));
    let line = status
        .lines()
        .find(|l| l.starts_with("order_lines"))
        .unwrap();
    assert!(
        line.contains(&format!("replayed to {then_head}")),
        "{status}"
    );

    // Reports from the CLI, in each format.
    let json: Value = serde_json::from_str(&ok(cli(
        &app,
        &db,
        &["report", "sales", "--format", "json"],
    )))
    .unwrap();
    let sold: u64 = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["orders"].as_u64().unwrap())
        .sum();
    assert!(sold >= 7, "{json}");
    let csv = ok(cli(
        &app,
        &db,
        &[
            "report",
            "sales",
            "--format",
            "csv",
            "--warehouse",
            "WH-BER-1",
        ],
    ));
    assert!(csv.starts_with("day,warehouse_id,sku,category"), "{csv}");
    assert!(csv.contains("APL-GALA"), "{csv}");
    let table = ok(cli(&app, &db, &["report", "inventory_aging"]));
    assert!(
        table.contains("| warehouse_id") && table.contains("WH-BER-1"),
        "{table}"
    );
    app.finish().await;
    for d in [db, asof, by_time] {
        ch(&format!("DROP DATABASE {d}")).await;
    }
}

/// A TCP forwarder to ClickHouse that the test can take down (listener and
/// every open connection) and bring back on the same port: a real outage,
/// on cue.
struct Outage {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Outage {
    async fn up(port: u16) -> Outage {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = ch_url().trim_start_matches("http://").to_string();
        let tasks: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Default::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Outage { port, tasks }
    }

    /// Stops listening and cuts every connection.
    fn down(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// ClickHouse unreachable, then back: commands are served throughout, the
/// projector says what is wrong in /readyz and /api/v1/log, and catches
/// up once it is back.
#[tokio::test]
async fn commands_work_while_clickhouse_is_down_and_the_projector_catches_up() {
    let db = database();
    let mut proxy = Outage::up(0).await;
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let flags = flags(&url, &db, true);
    let app = spawn_with(Backend::Postgres, &strs(&flags)).await;
    place(&app, &[("APL-GALA", 250)]).await;
    caught_up(&app).await;

    proxy.down();
    for i in 0..3u64 {
        place(&app, &[("APL-GALA", 260 + i)]).await;
    }
    let down = integration_until(&app, "clickhouse", "unhealthy", |s| s["healthy"] == false).await;
    assert_eq!(down["state"], "retrying", "{down}");
    let problem = down["problem"].as_str().unwrap();
    assert!(
        problem.contains("cannot be reached") && problem.contains(&url),
        "{problem}"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status(),
        200,
        "commands are served while ClickHouse is down"
    );
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "clickhouse" && i["healthy"] == false),
        "{ready}"
    );
    place(&app, &[("APL-GALA", 270)]).await;

    let _proxy = Outage::up(proxy.port).await;
    caught_up(&app).await;
    assert_tables_match_the_log(&app, &db).await;
    app.finish().await;
    ch(&format!("DROP DATABASE {db}")).await;
}

/// Settings that cannot work: refused at start when they can be known
/// wrong (a URL that is not http), told in the status when only ClickHouse
/// can say (wrong user); the CLI answers with a clear message, never a
/// panic.
#[tokio::test]
async fn bad_clickhouse_settings_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("fl-ch-{}", uuid::Uuid::now_v7()));
    let db_url = format!("sqlite://{}/x.db", dir.display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
            .args(["--database-url", &db_url])
            .args(args)
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            &["serve", "--clickhouse-url", "127.0.0.1:8123"][..],
            "not an http:// or https:// address",
        ),
        (
            &[
                "serve",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "--clickhouse-database",
                "a-b",
            ][..],
            "clickhouse_database",
        ),
        (&["analytics", "status"][..], "no ClickHouse configured"),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "report",
                "nope",
            ][..],
            "no report named \"nope\"; the reports are sales",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "replay",
                "--tables",
                "orders",
            ][..],
            "unknown table \"orders\"",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "replay",
                "--as-of",
                "yesterday",
            ][..],
            "not a date",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "replay",
                "--to-position",
                "999999",
            ][..],
            "beyond the log's last position",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "report",
                "inventory_aging",
                "--from",
                "2026-01-01",
            ][..],
            "--from does not apply",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:1",
                "report",
                "sales",
            ][..],
            "cannot be reached",
        ),
        (
            &[
                "analytics",
                "--clickhouse-url",
                "http://127.0.0.1:8123",
                "--clickhouse-user",
                "nobody",
                "report",
                "sales",
            ][..],
            "refused the user or password",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let listed = run(&["analytics", "reports"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("delivery_punctuality"));

    // A wrong user: the server starts and serves; the status says why
    // nothing reaches ClickHouse.
    let db = database();
    let mut flags = flags(&ch_url(), &db, false);
    flags.extend(["--clickhouse-user".into(), "nobody".into()]);
    let app = spawn_with(Backend::Sqlite, &strs(&flags)).await;
    let s = integration_until(&app, "clickhouse", "refused", |s| {
        s["problem"].as_str().is_some()
    })
    .await;
    assert!(
        s["problem"]
            .as_str()
            .unwrap()
            .contains("refused the user or password"),
        "{s}"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.finish().await;
    std::fs::remove_dir_all(&dir).ok();
}
