//! What an operator sees: Prometheus metrics at `/metrics`, JSON log lines
//! with correlation and trace ids, the caller's trace context carried into
//! the events, and `/readyz` details.

use crate::common::*;
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CORRELATION: &str = "0192f3a4-0000-7000-8000-00000000abcd";

/// `name{labels} value` lines, without comments.
fn samples(text: &str) -> Vec<(&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
            (
                series,
                value.parse::<f64>().unwrap_or_else(|_| panic!("{l}")),
            )
        })
        .collect()
}

fn value(samples: &[(&str, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| *s == series)
        .unwrap_or_else(|| panic!("no {series}"))
        .1
}

#[tokio::test]
async fn metrics_logs_traces_and_readiness() {
    let app = spawn_logging(
        Backend::Sqlite,
        &["--log-format", "json", "--order-saga", "true"],
        "info,command_api=debug",
    )
    .await;
    // A command from a caller with a trace of its own.
    let r = app
        .client
        .post(format!("{}/api/v1/orders", app.url))
        .header("x-correlation-id", CORRELATION)
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .json(&order_body(&[("APL-GALA", 500)]))
        .send()
        .await
        .unwrap();
    let placed = expect(r, 201).await;
    app.log_len().await;

    // The events carry the caller's trace; the saga's commands carry it on.
    let flow = app
        .get_json(&format!("/api/v1/correlations/{CORRELATION}/events"))
        .await;
    let flow = flow.as_array().unwrap();
    assert!(flow.len() >= 3, "{flow:?}");
    for e in flow {
        let tp = e["trace_parent"].as_str().unwrap_or_else(|| panic!("{e}"));
        assert_eq!(tp.split('-').nth(1), Some(TRACE), "{e}");
    }
    assert!(
        flow.iter().any(|e| e["actor"] == "system:order-saga"),
        "{flow:?}"
    );

    // Every log line is one JSON object; the request's carries both ids.
    let lines = app.log_lines();
    let logged: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logged.iter().any(|l| l["span"]["name"] == "request"
            && l["span"]["correlation_id"] == CORRELATION
            && l["span"]["trace_id"] == TRACE
            && l["span"]["route"] == "/api/v1/orders"),
        "{lines:#?}"
    );

    // Metrics: no token needed, Prometheus text, bounded labels.
    let r = reqwest::get(format!("{}/metrics", app.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let s = samples(&text);
    assert!(
        value(
            &s,
            "http_requests_total{method=\"POST\",route=\"/api/v1/orders\",status=\"201\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            "freshledger_commands_total{aggregate=\"Order\",outcome=\"appended\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            "freshledger_events_appended_total{stream_type=\"Order\"}"
        ) >= 1.0
    );
    assert_eq!(
        value(
            &s,
            "freshledger_subscription_lag_events{subscription=\"orders\"}"
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "freshledger_subscription_parked{subscription=\"order-saga\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&s, "freshledger_lease_held{lease=\"order-saga\"}"),
        1.0
    );
    assert!(
        value(
            &s,
            "freshledger_gateway_calls_total{gateway=\"simulated\",operation=\"authorize\",outcome=\"approved\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            "freshledger_saga_steps_total{saga=\"order\",event=\"OrderPlaced\"}"
        ) >= 1.0
    );
    assert!(value(&s, "process_resident_memory_bytes") > 0.0);
    assert!(text.contains("freshledger_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    // No ids as label values: the order's id appears nowhere.
    let order = placed["stream_id"].as_str().unwrap();
    assert!(!text.contains(order) && !text.contains(CORRELATION));
    assert!(text.contains("# HELP freshledger_commands_total"));

    // Every metric the service dashboard charts is one the binary records.
    let dashboard: Value =
        serde_json::from_str(include_str!("../../deploy/grafana/dashboards/service.json")).unwrap();
    let described = include_str!("../../src/telemetry.rs");
    for panel in dashboard["panels"].as_array().unwrap() {
        let expr = panel["targets"][0]["expr"].as_str().unwrap();
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.starts_with("freshledger_") || w.starts_with("http_") || w.starts_with("process_")
            });
        for name in names {
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            let known = if base.starts_with("process_") {
                text.contains(&format!("# TYPE {base} "))
            } else {
                described.contains(&format!("\"{base}\""))
            };
            assert!(known, "the dashboard charts {name}, which nothing records");
        }
    }

    // Readiness details: the database, every subscriber, the leases.
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    let subs = ready["subscriptions"].as_array().unwrap();
    for name in ["orders", "stock", "order-saga", "spoilage"] {
        let sub = subs
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {ready}"));
        assert_eq!(sub["state"], "ok", "{sub}");
        assert_eq!(sub["lag"], 0, "{sub}");
    }
    assert_eq!(ready["leases"]["members"], 1);
    let works = ready["leases"]["works"].as_array().unwrap();
    assert!(works.iter().all(|w| w["state"] == "active"), "{works:?}");
    assert_eq!(ready["leases"]["held"], json!(works.len()));
    app.finish().await;
}
