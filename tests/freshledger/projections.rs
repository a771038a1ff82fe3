//! Read models against the running binary: a rebuild run from the command
//! line while the server keeps serving yields the same content as the live
//! projections, on SQLite and Postgres.

use std::process::Command;

use crate::common::*;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

pub(crate) fn cli(app: &App, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--database-url", &app.database_url])
        .args(args)
        .env("FRESHLEDGER_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn rebuild_from_the_cli_equals_live(backend: Backend) {
    let app = spawn(backend).await;
    let slot = {
        let s = (Utc::now() + Duration::days(1))
            .date_naive()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc();
        json!({"starts_at": s, "ends_at": s + Duration::hours(2)})
    };
    let mut last = 0;
    for i in 0..40u64 {
        let r = app.send("/api/v1/orders", json!({
            "customer_id": format!("0192f3a4-0000-7000-8000-0000000000{:02}", i % 7),
            "warehouse_id": "WH-HAM-1",
            "lines": [{"sku": "BAN-CAV", "quantity": {"uom": "gram", "amount": 500 + i * 10}},
                      {"sku": "KIW-GRN", "quantity": {"uom": "unit", "amount": 1 + i % 4}}],
            "delivery_slot": slot,
            "delivery_address": {"recipient": "Bo", "line1": "Hafen 2", "city": "Hamburg", "postal_code": "20457", "country": "DE"},
            "payment_method": if i % 3 == 0 { "cash_on_delivery" } else { "card" }
        }), 201).await;
        let id = r["stream_id"].as_str().unwrap().to_string();
        last = r["position"].as_u64().unwrap();
        if i % 4 == 0 {
            last = app
                .send(
                    &format!("/api/v1/orders/{id}/cancel"),
                    json!({"reason": "customer_request"}),
                    200,
                )
                .await["position"]
                .as_u64()
                .unwrap();
        }
    }
    // Read-your-writes: the live projections have everything.
    let q = json!({"query": "query($p: Int) { customerOrders(customerId: \"0192f3a4-0000-7000-8000-000000000001\", minPosition: $p) { edges { node { status } } } }", "variables": {"p": last}});
    let r: Value = app.graphql(&q).await;
    assert!(r["errors"].is_null(), "{r}");
    // Let background reactions (timers for the demo batches) settle too.
    app.log_len().await;
    let live = cli(&app, &["projections", "checksum"]);
    // Rebuild everything from another process while the server serves.
    let out = cli(&app, &["projections", "rebuild"]);
    for m in ["orders", "stock", "deliveries", "payments", "timers"] {
        assert!(
            out.contains(&format!("{m}: rebuilt and swapped in")),
            "{out}"
        );
    }
    assert_eq!(
        cli(&app, &["projections", "checksum"]),
        live,
        "rebuilt read models differ from the live ones"
    );
    // The server still answers, from the swapped-in tables.
    let r: Value = app.graphql(&q).await;
    assert_eq!(
        r["data"]["customerOrders"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        6,
        "{r}"
    );
    let status = cli(&app, &["projections", "status"]);
    assert!(!status.contains("PARKED"), "{status}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_the_cli_equals_live_sqlite() {
    rebuild_from_the_cli_equals_live(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_the_cli_equals_live_postgres() {
    rebuild_from_the_cli_equals_live(Backend::Postgres).await
}
