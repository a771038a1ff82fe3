//! The audit trail, black-box: the chain a running server keeps, verified
//! by the CLI; every kind of tampering named at its position; exports
//! verified with no database; the append-only trigger; auditors' queries
//! and lot recall over HTTP and GraphQL.

use std::path::{Path, PathBuf};
use std::process::Output;

use audit::canonical::{link_event, Hash};
use audit::{AuditKey, Checkpoint};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::common::*;

fn cli(database_url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--database-url", database_url, "audit"])
        .args(args)
        .env("FRESHLEDGER_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "audit CLI failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `audit verify --json ...`: the report, and whether it passed.
fn verify(database_url: &str, extra: &[&str]) -> (Value, bool) {
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    let out = cli(database_url, &args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let passed = out.status.success();
    assert_eq!(
        passed,
        report["findings"].as_array().unwrap().is_empty(),
        "the exit status follows the findings: {report}"
    );
    (report, passed)
}

/// The first finding: (position, problem).
fn first(report: &Value) -> (u64, String) {
    let f = &report["findings"][0];
    (
        f["position"]
            .as_u64()
            .unwrap_or_else(|| panic!("no finding: {report}")),
        f["problem"].as_str().unwrap().to_string(),
    )
}

fn batch_body(supplier: &str) -> Value {
    json!({
        "sku": "APL-GALA", "warehouse_id": "WH-BER-1", "supplier_id": supplier,
        "quantity": {"uom": "gram", "amount": 10000},
        "expires_at": Utc::now() + Duration::days(10),
        "procurement_cost": {"amount_minor": 1500, "currency": "EUR"},
        "cold_chain": "chilled"
    })
}

fn address() -> Value {
    json!({"recipient": "Ada Lovelace", "line1": "Invalidenstrasse 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

const RIDER: &str = "0192f3a4-0000-7000-8000-0000000041de";

/// An order of `grams` of APL-GALA for `customer`, reserved on `batch`.
async fn reserved_order(app: &App, batch: &str, customer: &str, grams: u64) -> String {
    let mut body = order_body(&[("APL-GALA", grams)]);
    body["customer_id"] = json!(customer);
    let oid = app.send("/api/v1/orders", body, 201).await["stream_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send(
        &format!("/api/v1/batches/{batch}/reservations"),
        json!({"order_id": oid, "quantity": {"uom": "gram", "amount": grams}}),
        200,
    )
    .await;
    app.send(&format!("/api/v1/orders/{oid}/allocation"), json!({"allocations": [{"sku": "APL-GALA", "batch_id": batch, "quantity": {"uom": "gram", "amount": grams}}]}), 200).await;
    oid
}

/// Takes a reserved order through picking, delivery and hand-over; the
/// delivery's id.
async fn deliver(app: &App, batch: &str, oid: &str, picked: u64) -> String {
    app.send(
        &format!("/api/v1/batches/{batch}/picks"),
        json!({"order_id": oid, "quantity": {"uom": "gram", "amount": picked}}),
        200,
    )
    .await;
    let pay = app.send("/api/v1/payments", json!({"order_id": oid, "method": "card", "gateway": "simulated", "amount_due": {"amount_minor": 449, "currency": "EUR"}}), 201).await;
    let pid = pay["stream_id"].as_str().unwrap();
    app.send(&format!("/api/v1/payments/{pid}/gateway-events"), json!({"type": "authorized", "amount": {"amount_minor": 449, "currency": "EUR"}, "gateway_reference": "auth_1"}), 200).await;
    app.send(
        &format!("/api/v1/orders/{oid}/payment"),
        json!({"payment_id": pid, "amount": {"amount_minor": 449, "currency": "EUR"}}),
        200,
    )
    .await;
    app.send(&format!("/api/v1/orders/{oid}/pack"), json!({"lines": [{"sku": "APL-GALA", "packed_quantity": {"uom": "gram", "amount": picked}}]}), 200).await;
    let d = app
        .send(
            "/api/v1/deliveries",
            json!({"order_id": oid, "slot": slot(), "address": address(), "cold_chain": true}),
            201,
        )
        .await;
    let did = d["stream_id"].as_str().unwrap().to_string();
    for (path, body) in [
        ("rider", json!({"rider_id": RIDER})),
        ("pickup", json!({"rider_id": RIDER})),
    ] {
        app.send(&format!("/api/v1/deliveries/{did}/{path}"), body, 200)
            .await;
    }
    app.send(
        &format!("/api/v1/orders/{oid}/ship"),
        json!({"delivery_id": did}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/deliveries/{did}/complete"),
        json!({"proof": {"kind": "signature", "signed_by": "A. Lovelace"}}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/orders/{oid}/deliver"),
        json!({"delivery_id": did}),
        200,
    )
    .await;
    did
}

/// Waits until the chain holds every event of the log.
async fn chained(app: &App) -> u64 {
    let head = app.log_len().await;
    let s = integration_until(app, "audit", "the head", |s| {
        s["lag"] == 0 && s["position"].as_u64() >= Some(head) && s["healthy"] == true
    })
    .await;
    s["position"].as_u64().unwrap()
}

fn sqlite_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("sqlite://").unwrap())
}

/// A copy of the (closed) SQLite log and its audit key in a folder of its
/// own, for one tampering.
fn copy_log(url: &str, case: &str) -> String {
    let src = sqlite_path(url);
    let dir = src.parent().unwrap().join(case);
    std::fs::create_dir_all(&dir).unwrap();
    for suffix in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{suffix}", src.display()));
        if from.exists() {
            std::fs::copy(&from, dir.join(format!("log.db{suffix}"))).unwrap();
        }
    }
    std::fs::copy(
        src.with_file_name("audit-key.pem"),
        dir.join("audit-key.pem"),
    )
    .unwrap();
    format!("sqlite://{}/log.db", dir.display())
}

/// An attacker with the file: the append-only triggers dropped first.
async fn tamper(url: &str, statements: &[String]) {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS events_never_updated")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS events_never_deleted")
        .execute(&mut c)
        .await
        .unwrap();
    for s in statements {
        sqlx::query(s).execute(&mut c).await.unwrap();
    }
    c.close().await.unwrap();
}

async fn scalar(url: &str, sql: &str) -> String {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let row = sqlx::query(sql).fetch_one(&mut c).await.unwrap();
    let v: String = row.try_get(0).unwrap();
    c.close().await.unwrap();
    v
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

/// Every stored event from `from` on, as the chain hashes it.
async fn stored_from(url: &str, from: i64) -> Vec<store::StoredEvent> {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at \
         FROM events WHERE position >= ? ORDER BY position",
    )
    .bind(from)
    .fetch_all(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();
    rows.iter()
        .map(|r| store::StoredEvent {
            position: r.get("position"),
            aggregate_type: r.get("aggregate_type"),
            aggregate_id: r.get("aggregate_id"),
            sequence: r.get("sequence"),
            event_type: r.get("event_type"),
            event_version: r.get("event_version"),
            payload: serde_json::from_str(r.get::<&str, _>("payload")).unwrap(),
            metadata: serde_json::from_str(r.get::<&str, _>("metadata")).unwrap(),
            recorded_at: r
                .get::<String, _>("recorded_at")
                .parse::<DateTime<Utc>>()
                .unwrap(),
        })
        .collect()
}

/// The checkpoints of a log, from the CLI.
fn checkpoints(url: &str) -> Vec<Checkpoint> {
    ok(cli(url, &["checkpoints"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_tampering_is_named_at_its_position() {
    let outside_file =
        std::env::temp_dir().join(format!("fl-checkpoints-{}.jsonl", uuid::Uuid::now_v7()));
    let outside_flag = outside_file.display().to_string();
    let mut app = spawn_with(
        Backend::Sqlite,
        &[
            "--audit-checkpoint-events",
            "7",
            "--audit-checkpoint-seconds",
            "1",
            "--audit-checkpoint-file",
            &outside_flag,
        ],
    )
    .await;
    let dir = sqlite_path(&app.database_url)
        .parent()
        .unwrap()
        .to_path_buf();
    let batch = app
        .send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    let batch = batch["stream_id"].as_str().unwrap().to_string();
    let a = reserved_order(&app, &batch, "0192f3a4-0000-7000-8000-00000000000a", 1500).await;
    deliver(&app, &batch, &a, 1480).await;
    let b = reserved_order(&app, &batch, "0192f3a4-0000-7000-8000-00000000000b", 1000).await;
    chained(&app).await;
    app.terminate();
    let url = app.database_url.clone();
    // The server copied every checkpoint it signed to the file, as lines.
    let copied: Vec<Checkpoint> = std::fs::read_to_string(&outside_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(copied.len() >= 3);
    assert_eq!(
        copied,
        checkpoints(&url),
        "the file holds what the database holds"
    );
    std::fs::remove_file(&outside_file).ok();
    // Bring the chain to the head and sign it there.
    assert!(ok(cli(&url, &["sync"])).contains("chained up to"));
    let cps = checkpoints(&url);
    let head: u64 = scalar(&url, "SELECT CAST(max(position) AS TEXT) FROM events")
        .await
        .parse()
        .unwrap();
    assert_eq!(cps.last().unwrap().position, head, "sync signs the head");
    let public = write(&dir.join("public.pem"), &ok(cli(&url, &["public-key"])));
    let (report, passed) = verify(&url, &["--public-key", &public]);
    assert!(passed, "{report}");
    assert_eq!(report["events"].as_u64(), Some(head));
    assert!(report["checkpoints"].as_u64().unwrap() >= 3);

    // Positions to tamper with: order b's placement, in the middle.
    let events = stored_from(&url, 1).await;
    let placed_b = events
        .iter()
        .find(|e| e.aggregate_id == b && e.event_type == "OrderPlaced")
        .unwrap()
        .position;
    let reserved_a = events
        .iter()
        // Stored bodies are tagged with their type.
        .find(|e| {
            e.event_type == "StockReserved" && e.payload["StockReserved"]["order_id"] == json!(a)
        })
        .unwrap()
        .position;
    let first_cp_after = |p: i64| {
        cps.iter()
            .find(|c| c.position >= p as u64)
            .unwrap()
            .position
    };

    // Each tampering on a copy of its own, reported at its position.
    let cases: Vec<(&str, Vec<String>, u64, &str)> = vec![
        (
            "one byte of a body",
            vec![format!("UPDATE events SET payload = replace(payload, '\"amount\":1000', '\"amount\":1001') WHERE position = {placed_b}")],
            placed_b as u64,
            "changed",
        ),
        (
            "the actor",
            vec![format!("UPDATE events SET metadata = json_set(metadata, '$.actor', 'admin:mallory') WHERE position = {placed_b}")],
            placed_b as u64,
            "changed",
        ),
        (
            "occurred_at",
            vec![format!("UPDATE events SET metadata = json_set(metadata, '$.occurred_at', '2020-01-01T00:00:00+00:00') WHERE position = {reserved_a}")],
            reserved_a as u64,
            "changed",
        ),
        (
            "recorded_at",
            vec![format!("UPDATE events SET recorded_at = '2020-01-01T00:00:00.000Z' WHERE position = {reserved_a}")],
            reserved_a as u64,
            "changed",
        ),
        (
            "a deleted event",
            vec![format!("DELETE FROM events WHERE position = {placed_b}")],
            placed_b as u64,
            "missing",
        ),
        (
            "an event deleted with its link",
            vec![
                format!("DELETE FROM events WHERE position = {placed_b}"),
                format!("DELETE FROM audit_events WHERE position = {placed_b}"),
            ],
            placed_b as u64,
            "removed",
        ),
        (
            "two events swapped",
            vec![
                format!("UPDATE events SET position = -1 WHERE position = {reserved_a}"),
                format!("UPDATE events SET position = {reserved_a} WHERE position = {placed_b}"),
                format!("UPDATE events SET position = {placed_b} WHERE position = -1"),
            ],
            reserved_a as u64,
            "changed",
        ),
        (
            "an event inserted in the middle",
            vec![
                format!("UPDATE events SET position = position + 1000000 WHERE position >= {placed_b}"),
                format!("UPDATE events SET position = position - 999999 WHERE position >= 1000000"),
                format!(
                    "INSERT INTO events (position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at, event_id, correlation_id) \
                     SELECT {placed_b}, aggregate_type, aggregate_id, sequence + 100, event_type, event_version, payload, \
                            json_set(metadata, '$.event_id', '0192f3a4-0000-7000-8000-0000000bad01'), recorded_at, '0192f3a4-0000-7000-8000-0000000bad01', correlation_id \
                     FROM events WHERE position = {}", placed_b + 1
                ),
            ],
            placed_b as u64,
            "changed",
        ),
    ];
    for (i, (what, statements, position, problem)) in cases.into_iter().enumerate() {
        let copy = copy_log(&url, &format!("case-{i}"));
        tamper(&copy, &statements).await;
        let (report, passed) = verify(&copy, &["--public-key", &public]);
        assert!(!passed, "{what}: not detected");
        assert_eq!(
            first(&report),
            (position, problem.to_string()),
            "{what}: {report}"
        );
    }

    // The chain rewritten to match an edit, without the key: the next
    // signed checkpoint no longer matches.
    let copy = copy_log(&url, "rewritten");
    tamper(&copy, &[format!("UPDATE events SET payload = replace(payload, '\"amount\":1000', '\"amount\":900') WHERE position = {placed_b}")]).await;
    let mut relink = Vec::new();
    let prev: String = scalar(&copy, &format!("SELECT hash FROM audit_events WHERE position < {placed_b} ORDER BY position DESC LIMIT 1")).await;
    let mut h: Hash = prev.parse().unwrap();
    let mut new_links = std::collections::HashMap::new();
    for e in stored_from(&copy, placed_b).await {
        h = link_event(&h, &e).unwrap();
        new_links.insert(e.position as u64, h);
        relink.push(format!(
            "UPDATE audit_events SET hash = '{}' WHERE position = {}",
            h.hex(),
            e.position
        ));
    }
    tamper(&copy, &relink).await;
    let (report, _) = verify(&copy, &["--public-key", &public]);
    let cp = first_cp_after(placed_b);
    assert_eq!(
        first(&report),
        (cp, "checkpoint_mismatch".to_string()),
        "{report}"
    );
    assert!(report["findings"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("was rewritten"));
    // ... and its checkpoints re-signed with another key.
    let forger = AuditKey::from_seed([66; 32]);
    let resign: Vec<String> = cps
        .iter()
        .filter(|c| c.position >= placed_b as u64)
        .map(|c| {
            let f = Checkpoint::new(c.position, new_links[&c.position], c.signed_at, Some(&forger));
            format!(
                "UPDATE audit_checkpoints SET hash = '{}', public_key = '{}', signature = '{}' WHERE position = {}",
                f.hash.hex(),
                f.public_key.unwrap(),
                f.signature.unwrap(),
                c.position
            )
        })
        .collect();
    tamper(&copy, &resign).await;
    let (report, _) = verify(&copy, &["--public-key", &public]);
    assert_eq!(
        first(&report),
        (cp, "bad_signature".to_string()),
        "{report}"
    );
    // Without --public-key the configured key is trusted: the same answer.
    let (report, _) = verify(&copy, &[]);
    assert_eq!(
        first(&report),
        (cp, "bad_signature".to_string()),
        "{report}"
    );

    // The untouched log against a wrong key.
    let other = write(&dir.join("other.pem"), &forger.public().to_pem());
    let (report, _) = verify(&url, &["--public-key", &other]);
    assert_eq!(
        first(&report),
        (cps[0].position, "bad_signature".to_string()),
        "{report}"
    );

    // The tail truncated after the last checkpoint, events and links: no
    // signature names what is gone, so the database alone cannot tell.
    let copy = copy_log(&url, "truncated-tail");
    let last_cp = cps.last().unwrap().position;
    let before_last = cps[cps.len() - 2].position;
    tamper(
        &copy,
        &[
            format!("DELETE FROM events WHERE position > {before_last}"),
            format!("DELETE FROM audit_events WHERE position > {before_last}"),
            format!("DELETE FROM audit_checkpoints WHERE position > {before_last}"),
        ],
    )
    .await;
    let (report, passed) = verify(&copy, &["--public-key", &public]);
    assert!(passed, "undetectable from the database alone: {report}");
    // A checkpoint kept outside the database reaches past the new end.
    let outside: String = cps.iter().map(|c| c.to_line() + "\n").collect();
    let outside = write(&dir.join("outside.jsonl"), &outside);
    let (report, _) = verify(
        &copy,
        &["--public-key", &public, "--from-checkpoint", &outside],
    );
    assert_eq!(
        first(&report),
        (last_cp, "truncated".to_string()),
        "{report}"
    );
    // Truncated while the checkpoints stay: named by them.
    let copy = copy_log(&url, "truncated-events");
    tamper(
        &copy,
        &[
            format!("DELETE FROM events WHERE position > {before_last}"),
            format!("DELETE FROM audit_events WHERE position > {before_last}"),
        ],
    )
    .await;
    let (report, _) = verify(&copy, &[]);
    assert_eq!(
        first(&report),
        (last_cp, "truncated".to_string()),
        "{report}"
    );

    // Verification from an outside checkpoint starts there.
    let from_mid = write(
        &dir.join("mid.jsonl"),
        &(cps[cps.len() / 2].to_line() + "\n"),
    );
    let (report, passed) = verify(
        &url,
        &["--public-key", &public, "--from-checkpoint", &from_mid],
    );
    assert!(passed, "{report}");
    assert_eq!(report["anchor"].as_u64(), Some(cps[cps.len() / 2].position));

    // The human report names the first bad position, exit status 1.
    let copy = copy_log(&url, "human");
    tamper(
        &copy,
        &[format!("DELETE FROM events WHERE position = {placed_b}")],
    )
    .await;
    let out = cli(&copy, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the first bad position is {placed_b}")),
        "{err}"
    );
    app.finish().await;
}

#[tokio::test]
async fn an_export_verifies_offline_and_shows_its_edits() {
    let mut app = spawn_with(Backend::Sqlite, &["--audit-checkpoint-events", "5"]).await;
    let dir = sqlite_path(&app.database_url)
        .parent()
        .unwrap()
        .to_path_buf();
    let batch = app
        .send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    let batch = batch["stream_id"].as_str().unwrap().to_string();
    reserved_order(&app, &batch, "0192f3a4-0000-7000-8000-00000000000a", 1500).await;
    chained(&app).await;
    app.terminate();
    let url = app.database_url.clone();
    ok(cli(&url, &["sync"]));
    let cps = checkpoints(&url);
    let to = cps.last().unwrap().position;
    let from = cps[cps.len() / 2].position - 3;
    let file = dir.join("export.jsonl");
    let out = cli(
        &url,
        &[
            "export",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--output",
            &file.display().to_string(),
        ],
    );
    ok(out);
    let public = write(&dir.join("public.pem"), &ok(cli(&url, &["public-key"])));
    // No database: a URL that cannot be reached proves none is opened.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let offline = |file: &Path| {
        verify(
            nowhere,
            &[
                "--file",
                &file.display().to_string(),
                "--public-key",
                &public,
            ],
        )
    };
    let (report, passed) = offline(&file);
    assert!(passed, "{report}");
    assert_eq!(report["events"].as_u64(), Some(to - from + 1));
    assert_eq!(report["last_good_checkpoint"].as_u64(), Some(to));
    // One character of one event changed.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let victim = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("{\"event\""))
        .map(|(i, _)| i)
        .nth(5)
        .expect("event lines");
    let position: Value = serde_json::from_str(lines[victim]).unwrap();
    let position = position["event"]["position"].as_u64().unwrap();
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[victim] = edited[victim].replacen("\"actor\":\"", "\"actor\":\"x", 1);
    let edited_file = dir.join("edited.jsonl");
    std::fs::write(&edited_file, edited.join("\n")).unwrap();
    let (report, _) = offline(&edited_file);
    assert_eq!(
        first(&report),
        (position, "changed".to_string()),
        "{report}"
    );
    // One event line removed.
    let mut removed: Vec<&str> = lines.clone();
    removed.remove(victim);
    let removed_file = dir.join("removed.jsonl");
    std::fs::write(&removed_file, removed.join("\n")).unwrap();
    let (report, _) = offline(&removed_file);
    assert_eq!(
        first(&report),
        (position, "removed".to_string()),
        "{report}"
    );
    // An export past the chain is refused with a way forward.
    let out = cli(
        &url,
        &["export", "--from", "1", "--to", &(to + 10).to_string()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit sync"));
    app.finish().await;
}

/// The log refuses edits on both backends; on Postgres, an event slipped
/// into a hole the log left (a rolled-back append) is named as inserted.
#[tokio::test]
async fn the_log_refuses_edits_and_an_insert_into_a_hole_is_named() {
    // SQLite: the app's own connection is refused.
    let mut app = spawn(Backend::Sqlite).await;
    app.terminate();
    let mut c = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    for sql in ["UPDATE events SET payload = payload", "DELETE FROM events"] {
        let e = sqlx::query(sql).execute(&mut c).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    c.close().await.unwrap();
    app.finish().await;

    let mut app = spawn_with(
        Backend::Postgres,
        &["--demo-data", "false", "--audit-checkpoint-events", "3"],
    )
    .await;
    app.register_places().await;
    app.put_product("APL-GALA", "Gala apples", "per_kg", 299)
        .await;
    app.register_supplier("SUP-VENLO-FRESH").await;
    app.send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    let mut c = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    for sql in [
        "UPDATE events SET payload = payload",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let e = sqlx::query(sql).execute(&mut c).await.unwrap_err();
        assert!(
            e.to_string().contains("never changed or removed"),
            "{sql}: {e}"
        );
    }
    // A position taken and never used, as by an append that rolled back.
    let hole: i64 = sqlx::query_scalar("SELECT nextval('events_position_seq')")
        .fetch_one(&mut c)
        .await
        .unwrap();
    app.send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    app.send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    chained(&app).await;
    app.terminate();
    let (report, passed) = verify(&app.database_url, &[]);
    assert!(passed, "{report}");
    assert_eq!(
        report["unsigned_checkpoints"].as_u64(),
        Some(report["checkpoints"].as_u64().unwrap()),
        "Postgres without a key: unsigned"
    );
    // An owner who can switch the triggers off slips an event in.
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER USER".to_string(),
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position, recorded_at) \
             SELECT aggregate_type, 'forged', 1, event_type, event_version, payload, \
                    (jsonb_set(metadata::jsonb, '{{event_id}}', '\"0192f3a4-0000-7000-8000-0000000bad02\"'))::json, {hole}, recorded_at \
             FROM events ORDER BY position DESC LIMIT 1"
        ),
        "ALTER TABLE events ENABLE TRIGGER USER".to_string(),
    ] {
        sqlx::query(&sql).execute(&mut c).await.unwrap();
    }
    c.close().await.unwrap();
    let (report, _) = verify(&app.database_url, &[]);
    assert_eq!(
        first(&report),
        (hole as u64, "inserted".to_string()),
        "{report}"
    );
    app.finish().await;
}

/// Auditors' searches equal a filter of the whole log; states as of a
/// point; lot recall in JSON, CSV and GraphQL; staff-only.
#[tokio::test]
async fn auditors_search_replay_and_recall() {
    let app = spawn_with(Backend::Sqlite, &["--demo-data", "false"]).await;
    app.register_places().await;
    app.put_product("APL-GALA", "Gala apples", "per_kg", 299)
        .await;
    app.register_supplier("SUP-VENLO-FRESH").await;
    let batch = app
        .send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    let batch = batch["stream_id"].as_str().unwrap().to_string();
    let other = app
        .send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    let other = other["stream_id"].as_str().unwrap().to_string();
    let ca = "0192f3a4-0000-7000-8000-00000000000a";
    let cb = "0192f3a4-0000-7000-8000-00000000000b";
    let a = reserved_order(&app, &batch, ca, 1500).await;
    let delivery = deliver(&app, &batch, &a, 1480).await;
    let b = reserved_order(&app, &batch, cb, 1000).await;
    app.send(
        &format!("/api/v1/orders/{b}/cancel"),
        json!({"reason": "customer_request"}),
        200,
    )
    .await;
    app.send(
        &format!("/api/v1/batches/{batch}/releases"),
        json!({"order_id": b, "reason": "order_cancelled"}),
        200,
    )
    .await;
    // Another batch's order is not part of this recall.
    reserved_order(&app, &other, ca, 500).await;
    // A count backdated an hour: occurred_at and recorded_at part.
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let counted = app
        .client
        .post(format!("{}/api/v1/batches/{other}/adjustments", app.url))
        .header("X-Occurred-At", an_hour_ago.to_rfc3339())
        .json(&json!({"counted_on_hand": 9000, "note": "recount"}))
        .send()
        .await
        .unwrap();
    let counted = expect(counted, 200).await["position"].as_u64().unwrap();
    chained(&app).await;
    let log = all_events(&app).await;

    // Each search, a page of 3 at a time, equals the log filtered here.
    let search = |query: String| {
        let app = &app;
        async move {
            let mut got = Vec::new();
            let mut after = 0;
            loop {
                let page = app
                    .get_json(&format!(
                        "/api/v1/audit/events?{query}&limit=3&after={after}"
                    ))
                    .await;
                for e in page["events"].as_array().unwrap() {
                    got.push(e["global_position"].as_u64().unwrap());
                }
                match page["next_after"].as_u64() {
                    Some(n) => after = n,
                    None => return got,
                }
            }
        }
    };
    let positions = |f: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        log.iter()
            .filter(|e| f(e))
            .map(|e| e["global_position"].as_u64().unwrap())
            .collect()
    };
    let admin_actor = log[0]["actor"].as_str().unwrap().to_string();
    let q = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    let cases: Vec<(String, Vec<u64>)> = vec![
        (
            format!("actor={}", q(&admin_actor)),
            positions(&|e| e["actor"] == json!(admin_actor)),
        ),
        (
            "event_type=StockReserved".into(),
            positions(&|e| e["event_type"] == "StockReserved"),
        ),
        (
            format!("stream_type=Order&stream_id={b}"),
            positions(&|e| e["stream_id"] == json!(b)),
        ),
        (
            format!(
                "correlation_id={}",
                log.iter().find(|e| e["stream_id"] == json!(a)).unwrap()["correlation_id"]
                    .as_str()
                    .unwrap()
            ),
            {
                let c = log.iter().find(|e| e["stream_id"] == json!(a)).unwrap()["correlation_id"]
                    .clone();
                positions(&|e| e["correlation_id"] == c)
            },
        ),
        (
            format!(
                "occurred_to={}",
                q(&(Utc::now() - Duration::minutes(30)).to_rfc3339())
            ),
            vec![counted],
        ),
        (
            format!(
                "recorded_to={}",
                q(&(Utc::now() - Duration::minutes(30)).to_rfc3339())
            ),
            vec![],
        ),
        (
            format!(
                "recorded_from={}&event_type=StockAdjusted",
                q(&(Utc::now() - Duration::minutes(30)).to_rfc3339())
            ),
            vec![counted],
        ),
    ];
    for (query, expected) in cases {
        assert!(
            !expected.is_empty() || query.starts_with("recorded_to"),
            "{query}: an empty expectation proves nothing"
        );
        assert_eq!(search(query.clone()).await, expected, "{query}");
    }

    // A stream's state as of a position, a moment, and now.
    let order_events: Vec<&Value> = log.iter().filter(|e| e["stream_id"] == json!(a)).collect();
    let placed_at = order_events[0]["global_position"].as_u64().unwrap();
    let then = app
        .get_json(&format!(
            "/api/v1/audit/streams/Order/{a}/state?position={placed_at}"
        ))
        .await;
    assert_eq!(then["version"], 1, "{then}");
    let now = app
        .get_json(&format!("/api/v1/audit/streams/Order/{a}/state"))
        .await;
    assert_eq!(
        now["version"].as_u64(),
        Some(order_events.len() as u64),
        "{now}"
    );
    assert_ne!(then["state"], now["state"]);
    let before = app
        .get_json(&format!(
            "/api/v1/audit/streams/Order/{a}/state?at={}",
            q(&(Utc::now() - Duration::days(1)).to_rfc3339())
        ))
        .await;
    assert_eq!(before["version"], 0, "{before}");
    expect(app.get("/api/v1/audit/streams/Order/nope/state").await, 404).await;
    expect(app.get("/api/v1/audit/streams/Nope/x/state").await, 404).await;
    expect(app.get("/api/v1/audit/events?limit=0").await, 422).await;
    expect(app.get("/api/v1/audit/events?occurred_from=2026-01-02T00:00:00Z&occurred_to=2026-01-01T00:00:00Z").await, 422).await;
    expect(app.get("/api/v1/audit/recall").await, 422).await;
    // A mistyped batch is not "it reached nobody".
    let unknown = expect(
        app.get("/api/v1/audit/recall?batch_id=no-such-batch").await,
        404,
    )
    .await;
    assert_eq!(unknown["code"], "batch_not_found", "{unknown}");

    // Lot recall: the batch's two orders, one delivered, one cancelled.
    let recall = app
        .get_json(&format!("/api/v1/audit/recall?batch_id={batch}"))
        .await;
    let lines = recall["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{recall}");
    assert_eq!(recall["customers"], 2);
    let la = lines.iter().find(|l| l["order_id"] == json!(a)).unwrap();
    assert_eq!(
        (
            la["reserved"].as_u64(),
            la["picked"].as_u64(),
            la["released"].as_u64()
        ),
        (Some(1500), Some(1480), Some(20)),
        "{la}"
    );
    assert_eq!(la["customer_id"], ca);
    assert_eq!(la["order_status"], "OrderDelivered");
    assert_eq!(la["delivery_id"], json!(delivery));
    assert_eq!(la["rider_id"], RIDER);
    assert!(la["delivered_at"].is_string());
    assert_eq!(la["delivery_area"], "10115 Berlin");
    let chain: Vec<&str> = la["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "OrderPlaced",
        "StockReserved",
        "StockPicked",
        "OrderShipped",
        "DeliveryCreated",
        "RiderAssigned",
        "DeliveryCompleted",
        "OrderDelivered",
    ] {
        assert!(chain.contains(&t), "{t} missing from {chain:?}");
    }
    let chain_positions: Vec<u64> = la["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["position"].as_u64().unwrap())
        .collect();
    assert!(
        chain_positions.windows(2).all(|w| w[0] < w[1]),
        "in log order"
    );
    let lb = lines.iter().find(|l| l["order_id"] == json!(b)).unwrap();
    assert_eq!(
        (
            lb["reserved"].as_u64(),
            lb["released"].as_u64(),
            lb["picked"].as_u64()
        ),
        (Some(1000), Some(1000), Some(0))
    );
    assert_eq!(lb["order_status"], "OrderCancelled");
    assert!(lb["delivery_id"].is_null());
    // By supplier and period: both batches.
    let by_supplier = app
        .get_json(&format!(
            "/api/v1/audit/recall?supplier_id=SUP-VENLO-FRESH&from={}&to={}",
            q(&(Utc::now() - Duration::days(1)).to_rfc3339()),
            q(&(Utc::now() + Duration::days(1)).to_rfc3339())
        ))
        .await;
    assert_eq!(by_supplier["batches"].as_array().unwrap().len(), 2);
    assert_eq!(by_supplier["lines"].as_array().unwrap().len(), 3);
    // CSV.
    let csv = app
        .get(&format!("/api/v1/audit/recall?batch_id={batch}&format=csv"))
        .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("batch_id,sku,order_id,customer_id"));
    assert!(
        rows.iter().any(|r| r.contains(&a)
            && r.contains("OrderDelivered")
            && r.contains(":DeliveryCompleted")),
        "{csv}"
    );
    // The CLI gives the same rows.
    let out = ok(cli(&app.database_url, &["recall", "--batch", &batch]));
    assert_eq!(out.trim_end(), csv.trim_end());

    // GraphQL: the same answers.
    let gql = app
        .graphql(&json!({"query": format!(r#"{{
            lotRecall(batchId: "{batch}") {{ customers lines {{ orderId picked chain {{ eventType }} }} }}
            auditEvents(filter: {{eventType: "StockReserved"}}, first: 2) {{ events {{ position eventType payload }} nextAfter indexedTo }}
            streamStateAsOf(streamType: "Order", streamId: "{a}", position: {placed_at}) {{ version asOfPosition }}
        }}"#)}))
        .await;
    assert!(gql["errors"].is_null(), "{gql}");
    assert_eq!(gql["data"]["lotRecall"]["customers"], 2);
    assert_eq!(
        gql["data"]["lotRecall"]["lines"].as_array().unwrap().len(),
        2
    );
    let reserved = positions(&|e| e["event_type"] == "StockReserved");
    let page = &gql["data"]["auditEvents"];
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["position"].as_u64(), Some(reserved[0]));
    assert_eq!(page["nextAfter"].as_u64(), Some(reserved[1]));
    assert_eq!(gql["data"]["streamStateAsOf"]["version"], 1);
    let missing = app
        .graphql(&json!({"query": "{ lotRecall(batchId: \"no-such-batch\") { customers } }"}))
        .await;
    assert_eq!(
        missing["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{missing}"
    );

    // Auditors' routes are the admin's.
    let customer = app.person("customer", &[]).await;
    let as_customer = &customer.client;
    let r = as_customer
        .get(format!("{}/api/v1/audit/events", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = as_customer
        .post(format!("{}/graphql", app.url))
        .json(&json!({"query": "{ auditEvents { indexedTo } }"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    app.finish().await;
}

/// Audit settings that cannot work stop the server at start with a clear
/// message, before it listens.
#[test]
fn bad_audit_settings_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("fl-audit-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/x.db", dir.display());
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let cfg = dir.join("zero.toml");
    std::fs::write(&cfg, "audit_checkpoint_events = 0\n").unwrap();
    let missing = dir.join("missing.pem");
    for (args, says) in [
        (
            vec![
                "serve".to_string(),
                "--audit-key-file".into(),
                missing.display().to_string(),
            ],
            "openssl genpkey -algorithm ed25519",
        ),
        (
            vec![
                "serve".to_string(),
                "--audit-key-file".into(),
                not_a_key.display().to_string(),
            ],
            "not an Ed25519 private key",
        ),
        (
            vec![
                "--config".to_string(),
                cfg.display().to_string(),
                "serve".into(),
            ],
            "audit_checkpoint_events: 0 is not in 1..=10000000",
        ),
        (
            vec![
                "serve".to_string(),
                "--audit-checkpoint-seconds".into(),
                "0".into(),
            ],
            "--audit-checkpoint-seconds",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
            .args(["--database-url", &db])
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .env("FRESHLEDGER_ADMIN_PASSWORD", "a-long-admin-password-1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The least-privilege setup README.md documents for Postgres works: the
/// owner migrates, the server runs as a role that may append to the log but
/// neither change, delete nor truncate it, nor switch its triggers off.
#[tokio::test]
async fn the_server_runs_as_a_role_that_cannot_change_the_log() {
    let db = testkit::TestDb::new(Backend::Postgres, "app").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--database-url", &db.url, "migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let role = format!(
        "fl_app_{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let dbname = db.url.rsplit('/').next().unwrap().to_string();
    let mut owner = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // The grants of README.md, "Least privilege on Postgres".
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'app-password'"),
        format!("GRANT CONNECT ON DATABASE {dbname} TO {role}"),
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE ON events FROM {role}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(&sql).execute(&mut owner).await.unwrap();
    }
    let app_url = db
        .url
        .replacen("postgres@", &format!("{role}:app-password@"), 1);
    assert_ne!(app_url, db.url);
    let app = spawn_on(&app_url, &["--demo-data", "false"]).await;
    app.register_places().await;
    app.register_supplier("SUP-VENLO-FRESH").await;
    app.put_product("APL-GALA", "Gala apples", "per_kg", 299)
        .await;
    app.send("/api/v1/batches", batch_body("SUP-VENLO-FRESH"), 201)
        .await;
    chained(&app).await;
    let mut c = sqlx::PgConnection::connect(&app_url).await.unwrap();
    for (sql, says) in [
        ("UPDATE events SET payload = payload", "permission denied"),
        ("DELETE FROM events", "permission denied"),
        ("TRUNCATE events", "permission denied"),
        ("ALTER TABLE events DISABLE TRIGGER USER", "must be owner"),
        ("DROP TRIGGER events_append_only ON events", "must be owner"),
    ] {
        let e = sqlx::query(sql).execute(&mut c).await.unwrap_err();
        assert!(e.to_string().contains(says), "{sql}: {e}");
    }
    c.close().await.unwrap();
    let (report, passed) = verify(&app_url, &[]);
    assert!(passed, "{report}");
    app.finish().await;
    owner.close().await.unwrap();
    db.remove().await;
    let mut admin = sqlx::PgConnection::connect(&testkit::admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
}
