//! The OpenAPI document is valid OpenAPI 3.1 and describes every route.

use std::collections::BTreeSet;

use serde_json::Value;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                }
                refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_covers_every_route() {
    let doc = command_api::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = command_api::route_docs()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, routed);
    assert!(routed.len() >= 30);
    for r in command_api::route_docs() {
        let op = &doc["paths"][r.path][r.method];
        assert!(op["summary"].is_string(), "{} {}", r.method, r.path);
        assert!(op["responses"][r.ok.to_string()].is_object());
        for p in r.path.split('/').filter(|s| s.starts_with('{')) {
            let name = p.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["name"] == name && x["in"] == "path"),
                "{}: path parameter {name} undocumented",
                r.path
            );
        }
        if r.body.is_some() {
            assert_eq!(
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{}", r.body_name)
            );
            for code in ["400", "409", "413", "415", "422"] {
                assert!(
                    op["responses"][code].is_object(),
                    "{} {} lacks {code}",
                    r.method,
                    r.path
                );
            }
        }
    }
}

#[test]
fn every_reference_resolves_and_schemas_are_exactly_generated() {
    let doc = command_api::openapi::document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
    // Request bodies are schemars' output, with only the server's own
    // limits added (integer ranges, no nil UUID).
    for r in command_api::route_docs() {
        if let Some((schema, _)) = &r.body {
            let mut expected = schema.clone();
            command_api::openapi::tighten(&mut expected);
            assert_eq!(&schemas[r.body_name], &expected, "{}", r.body_name);
        }
    }
    // e.g. a quantity is at least 1 and a body refuses unknown fields.
    assert_eq!(schemas["Quantity"]["properties"]["amount"]["minimum"], 1);
    assert_eq!(schemas["PlaceOrder"]["additionalProperties"], false);
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let mut doc = command_api::openapi::document();
    // Component schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect):
    // each must be valid against the 2020-12 metaschema.
    let schemas = doc["components"]["schemas"].as_object().unwrap().clone();
    for (name, schema) in &schemas {
        let mut s = schema.clone();
        if let Value::Object(m) = &mut s {
            m.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
        }
        if let Err(e) = jsonschema::meta::validate(&s) {
            panic!("component {name} is not valid JSON Schema 2020-12: {e}");
        }
    }
    // So must every schema inline in an operation (parameters, answers).
    fn inline(v: &mut Value, found: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "schema" {
                        found.push(std::mem::replace(x, serde_json::json!({"type": "string"})));
                    } else {
                        inline(x, found);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| inline(x, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    inline(&mut doc["paths"], &mut found);
    assert!(found.len() > 100, "{} inline schemas", found.len());
    for mut s in found {
        if let Value::Object(m) = &mut s {
            m.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
        }
        if let Err(e) = jsonschema::meta::validate(&s) {
            panic!("{s} is not valid JSON Schema 2020-12: {e}");
        }
    }
    // The rest of the document (info, paths, operations, parameters,
    // responses) parses as OpenAPI with utoipa's model.
    doc["components"]["schemas"] = serde_json::json!({});
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("a structurally valid OpenAPI document");
    assert_eq!(
        parsed.paths.paths.len(),
        doc["paths"].as_object().unwrap().len()
    );
}

#[test]
fn request_schemas_accept_good_bodies_and_refuse_bad_ones() {
    let doc = command_api::openapi::document();
    let validator = |name: &str| {
        jsonschema::validator_for(&serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{name}"),
            "components": doc["components"],
        }))
        .unwrap()
    };
    let place = validator("PlaceOrder");
    let good = serde_json::json!({
        "customer_id": "0192f3a4-0000-7000-8000-00000000c0de",
        "warehouse_id": "WH-BER-1",
        "lines": [{"sku": "APL-GALA", "quantity": {"uom": "gram", "amount": 1500}}],
        "delivery_slot": {"starts_at": "2026-11-25T16:00:00Z", "ends_at": "2026-11-25T18:00:00Z"},
        "delivery_address": {"recipient": "Ada", "line1": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "cash_on_delivery"
    });
    assert!(place.is_valid(&good));
    // and the server agrees
    assert!(serde_json::from_value::<command_api::dto::PlaceOrder>(good.clone()).is_ok());
    for broken in [
        ("/lines/0/quantity/amount", serde_json::json!(0)),
        ("/lines/0/sku", serde_json::json!("lower-case")),
        ("/payment_method", serde_json::json!("bitcoin")),
        ("/delivery_address/country", serde_json::json!("Germany")),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(broken.0).unwrap() = broken.1;
        assert!(!place.is_valid(&bad), "schema accepted a bad {}", broken.0);
        assert!(
            serde_json::from_value::<command_api::dto::PlaceOrder>(bad).is_err(),
            "server accepted a bad {}",
            broken.0
        );
    }
    let mut extra = good.clone();
    extra["surprise"] = serde_json::json!(true);
    assert!(!place.is_valid(&extra));
}

/// Every success answer has a schema; every route lists its error codes by
/// status, the aggregate's own among them; the headers say what the server
/// accepts.
#[test]
fn every_answer_and_error_code_is_declared() {
    use domain::DomainError;
    let doc = command_api::openapi::document();
    let codes_at = |op: &Value, status: &str| -> Vec<String> {
        op["responses"][status]["content"]["application/json"]["schema"]["properties"]["code"]
            ["enum"]
            .as_array()
            .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    for r in command_api::route_docs() {
        let op = &doc["paths"][r.path][r.method];
        let ok = &op["responses"][r.ok.to_string()]["content"];
        assert!(
            ok.as_object()
                .is_some_and(|c| c.values().all(|m| m["schema"].is_object())),
            "{} {}: no success schema",
            r.method,
            r.path
        );
        if r.body.is_some() {
            for (status, code) in [
                ("400", "malformed_json"),
                ("413", "payload_too_large"),
                ("415", "unsupported_media_type"),
                ("422", "invalid_body"),
                ("422", "idempotency_key_reused"),
            ] {
                assert!(
                    codes_at(op, status).iter().any(|c| c == code),
                    "{} {}: {status} {code} undeclared",
                    r.method,
                    r.path
                );
            }
            let key = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "Idempotency-Key")
                .expect("Idempotency-Key declared");
            assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$");
        }
    }
    // Receiving a batch lists every code of the inventory aggregate under
    // the status its kind maps to.
    let receive = &doc["paths"]["/api/v1/batches"]["post"];
    for (code, kind) in domain::inventory::InventoryError::CODES {
        let status = command_api::error::status_of(*kind).as_u16().to_string();
        assert!(
            codes_at(receive, &status).iter().any(|c| c == code),
            "{code} not under {status}"
        );
    }
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["text/plain"]["schema"]
            ["type"],
        "string"
    );
    // Every route but the probes may be rate limited, with a Retry-After.
    for r in command_api::route_docs() {
        let op = &doc["paths"][r.path][r.method];
        let limited = codes_at(op, "429").iter().any(|c| c == "rate_limited");
        assert_eq!(
            limited,
            !["/healthz", "/readyz"].contains(&r.path),
            "{}",
            r.path
        );
        if limited {
            assert_eq!(
                op["responses"]["429"]["headers"]["Retry-After"]["required"],
                true
            );
        }
    }
}

/// The versioning policy on the wire: the deprecation headers, on a router
/// with a table of its own (no route of the API is deprecated today).
mod deprecation {
    use axum::extract::Request;
    use axum::response::Response;
    use axum::routing::get;
    use command_api::deprecation::{middleware, Deprecated};
    use tower::ServiceExt;

    static TABLE: &[Deprecated] = &[
        Deprecated {
            method: "get",
            path: "/old",
            since: "2026-01-01T00:00:00Z",
            sunset: "2999-07-01T00:00:00Z",
            successor: "/api/v2/new",
        },
        Deprecated {
            method: "get",
            path: "/retired",
            since: "2025-01-01T00:00:00Z",
            sunset: "2025-07-01T00:00:00Z",
            successor: "/api/v2/new",
        },
    ];

    async fn call(path: &str) -> Response {
        let app = axum::Router::new()
            .route("/old", get(|| async { "old" }))
            .route("/retired", get(|| async { "retired" }))
            .route("/current", get(|| async { "current" }))
            .layer(axum::middleware::from_fn(|req, next| {
                middleware(TABLE, req, next)
            }));
        app.oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_deprecated_route_says_so_and_a_retired_one_is_gone() {
        let r = call("/old").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["deprecation"], "@1767225600");
        assert_eq!(r.headers()["sunset"], "Mon, 01 Jul 2999 00:00:00 GMT");
        assert_eq!(
            r.headers()["link"],
            "</api/v2/new>; rel=\"successor-version\""
        );
        let r = call("/retired").await;
        assert_eq!(r.status(), 410);
        assert!(r.headers().contains_key("sunset"));
        let r = call("/current").await;
        assert_eq!(r.status(), 200);
        assert!(!r.headers().contains_key("deprecation"));
    }
}
