//! The OpenAPI 3.1 document, generated from the route table (`api!` in
//! lib.rs): every route's body, success answer and error codes by status,
//! and the headers and parameters with the constraints the server enforces.
//! Schemas come from schemars (OpenAPI 3.1 speaks JSON Schema 2020-12, which
//! is what schemars writes), so they are inserted exactly as generated.
//! The document is checked against the running server by schemathesis in
//! the test command.

use event_schemas::ActorRole;
use identity::{Access, AuthError};
use std::any::TypeId;

use domain::DomainError;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

/// Where a parameter stands.
enum ParameterIn {
    Path,
    Query,
    Header,
}

/// One route, as the document describes it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may use it.
    pub access: identity::Access,
    pub tag: &'static str,
    pub ok: u16,
    /// The JSON body's schema with its definitions, if the route takes one.
    pub body: Option<(Value, serde_json::Map<String, Value>)>,
    pub body_name: &'static str,
    /// The success answer's media type and schema (with its definitions).
    pub response: (&'static str, Value, serde_json::Map<String, Value>),
    /// The error codes the route's own rules can answer with, by status
    /// (the edge's codes, common to every route, are added by the document).
    pub errors: Vec<(u16, &'static str)>,
}

/// A `text/plain` answer (`/healthz`).
pub struct PlainText;

impl JsonSchema for PlainText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PlainText".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// This document, as `/openapi.json` answers it.
pub struct Document;

impl JsonSchema for Document {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpenApiDocument".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "An OpenAPI 3.1 document",
            "required": ["openapi", "info", "paths"],
        })
    }
}

/// The schema of a success answer of type `T`, as the server writes it.
pub fn response_schema<T: JsonSchema>(defs: &mut serde_json::Map<String, Value>) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| s.definitions_path = DEFS.into())
        .into_generator();
    let schema = generator.subschema_for::<T>().to_value();
    defs.extend(generator.take_definitions(true));
    schema
}

pub fn response_of<T: JsonSchema + 'static>(
) -> (&'static str, Value, serde_json::Map<String, Value>) {
    let mut defs = serde_json::Map::new();
    let schema = response_schema::<T>(&mut defs);
    let media = if TypeId::of::<T>() == TypeId::of::<PlainText>() {
        "text/plain"
    } else {
        "application/json"
    };
    (media, schema, defs)
}

/// The codes a domain error can carry, by the status the API gives them.
pub trait Codes {
    fn codes() -> Vec<(u16, &'static str)>;
}

impl Codes for () {
    fn codes() -> Vec<(u16, &'static str)> {
        Vec::new()
    }
}

macro_rules! domain_codes {
    ($($e:ty),*) => { $(
        impl Codes for $e {
            fn codes() -> Vec<(u16, &'static str)> {
                <$e as DomainError>::CODES
                    .iter()
                    .map(|(code, kind)| (crate::error::status_of(*kind).as_u16(), *code))
                    .collect()
            }
        }
    )* };
}
domain_codes!(
    domain::order::OrderError,
    domain::inventory::InventoryError,
    domain::payment::PaymentError,
    domain::delivery::DeliveryError
);

impl Codes for identity::IdentityError {
    fn codes() -> Vec<(u16, &'static str)> {
        identity::IdentityError::CODES.to_vec()
    }
}

pub fn domain_codes<E: Codes>() -> Vec<(u16, &'static str)> {
    E::codes()
}

const DEFS: &str = "#/components/schemas/";

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .with(|s| s.definitions_path = DEFS.into())
}

pub fn body_schema<T: JsonSchema + 'static>() -> Option<(Value, serde_json::Map<String, Value>)> {
    if TypeId::of::<T>() == TypeId::of::<()>() {
        return None;
    }
    let mut generator = settings().into_generator();
    let root = generator.root_schema_for::<T>();
    let mut root = root.to_value();
    if let Value::Object(m) = &mut root {
        m.remove("$schema");
        m.remove("$defs");
    }
    Some((root, generator.take_definitions(true)))
}

pub fn short_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// What a header, path parameter or query parameter must look like.
fn param(name: &str, at: ParameterIn, required: bool, description: &str, schema: Value) -> Value {
    serde_json::json!({
        "name": name,
        "in": match at {
            ParameterIn::Path => "path",
            ParameterIn::Query => "query",
            ParameterIn::Header => "header",
        },
        "required": required,
        "description": description,
        "schema": schema,
    })
}

const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

fn uuid_schema() -> Value {
    serde_json::json!({"type": "string", "format": "uuid", "not": {"const": NIL_UUID}})
}

/// The schema of a path parameter, by its name.
fn path_schema(name: &str) -> Value {
    let schema_of = |s: schemars::Schema| s.to_value();
    match name {
        "sku" => schema_of(schemars::schema_for!(domain::values::Sku)),
        "warehouse_id" => schema_of(schemars::schema_for!(domain::values::WarehouseId)),
        "supplier_id" => schema_of(schemars::schema_for!(domain::values::SupplierId)),
        "stream_type" => serde_json::json!({"type": "string", "enum": event_schemas::STREAM_TYPES}),
        "stream_id" => serde_json::json!({"type": "string", "minLength": 1, "maxLength": 64}),
        _ => uuid_schema(),
    }
}

/// The edge's own codes for a route, by status: what every route of its
/// kind can answer whatever its command.
fn edge_codes(r: &RouteDoc) -> Vec<(u16, &'static str)> {
    let mut codes = vec![(503, "unavailable")];
    match r.access {
        Access::Public => {}
        Access::Signed => codes.extend_from_slice(AuthError::CODES),
        Access::Roles(roles) => {
            codes.extend_from_slice(AuthError::CODES);
            codes.push((403, "forbidden_role"));
            if roles.contains(&ActorRole::Admin) {
                codes.push((403, "mfa_required"));
            }
            if is_owned(r) {
                codes.push((403, "not_owner"));
            }
        }
    }
    if r.path != "/healthz" && r.path != "/readyz" {
        codes.push((429, "rate_limited"));
    }
    if r.path.contains('{') {
        codes.extend([(400, "invalid_id"), (422, "nil_uuid")]);
    }
    if r.path == "/api/v1/events" {
        codes.push((400, "invalid_query"));
    }
    if r.body.is_some() {
        codes.extend([
            (400, "malformed_json"),
            (400, "invalid_idempotency_key"),
            (400, "bad_request"),
            (409, "idempotency_request_in_progress"),
            (413, "payload_too_large"),
            (415, "unsupported_media_type"),
            (422, "invalid_body"),
            (422, "nil_uuid"),
            (422, "idempotency_key_reused"),
        ]);
        if is_command(r) {
            codes.extend([
                (400, "invalid_header"),
                (400, "actor_header_not_accepted"),
                (409, "concurrent_modification"),
                (422, "occurred_in_future"),
                (422, "occurred_too_long_ago"),
            ]);
        }
    }
    codes
}

/// A route whose handler checks ownership from the body (a customer's
/// own id, a seller's warehouse, a rider's own id).
fn is_owned(r: &RouteDoc) -> bool {
    is_command(r) && r.access != Access::Roles(&[ActorRole::Admin])
}

/// A command of an aggregate: it reads the request context (correlation,
/// actor, occurred-at headers) and answers with a `CommandResponse`.
fn is_command(r: &RouteDoc) -> bool {
    r.response.1.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/CommandResponse")
}

fn status_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed JSON, id, header or query",
        401 => "Not signed in, or the token is missing, expired, revoked or invalid (see WWW-Authenticate)",
        403 => "Signed in, but your role (or ownership, or a missing second factor) does not allow it",
        423 => "The account is locked after repeated failed sign-ins; retry later",
        404 => "Unknown resource",
        409 => "Illegal in the current state, or a concurrent change",
        413 => "Body too large (64 KiB at most)",
        415 => "Content-Type is not application/json",
        422 => "Well-formed but invalid, or against the shop's rules",
        429 => "Too many requests from this client address; retry after Retry-After seconds",
        503 => "Temporarily unavailable; retry",
        _ => "Error",
    }
}

/// Every JSON Schema integer states the range the server reads it into,
/// and every UUID refuses the nil UUID, as the server does.
pub fn tighten(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let range = match m.get("format").and_then(Value::as_str) {
                Some("uint64") => Some((serde_json::json!(0), serde_json::json!(u64::MAX))),
                Some("int64") => Some((serde_json::json!(i64::MIN), serde_json::json!(i64::MAX))),
                Some("uint32") => Some((serde_json::json!(0), serde_json::json!(u32::MAX))),
                Some("int32") => Some((serde_json::json!(i32::MIN), serde_json::json!(i32::MAX))),
                Some("uint16") => Some((serde_json::json!(0), serde_json::json!(u16::MAX))),
                Some("uint8") => Some((serde_json::json!(0), serde_json::json!(u8::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                m.entry("minimum").or_insert(min);
                m.entry("maximum").or_insert(max);
            }
            if m.get("format").and_then(Value::as_str) == Some("uuid") && !m.contains_key("not") {
                m.insert("not".into(), serde_json::json!({"const": NIL_UUID}));
            }
            for x in m.values_mut() {
                tighten(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tighten),
        _ => {}
    }
}

/// The whole document, as JSON.
pub fn document() -> Value {
    let routes = crate::route_docs();
    let mut components = serde_json::Map::new();
    let error_schema = response_schema::<crate::error::ErrorBody>(&mut components);
    let mut paths = serde_json::Map::new();
    for r in &routes {
        let mut parameters = Vec::new();
        for segment in r.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(param(
                    name,
                    ParameterIn::Path,
                    true,
                    name,
                    path_schema(name),
                ));
            }
        }
        if r.path == "/api/v1/events" {
            parameters.push(param(
                "after",
                ParameterIn::Query,
                false,
                "Events after this global position (default 0)",
                serde_json::json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
            ));
            parameters.push(param(
                "limit",
                ParameterIn::Query,
                false,
                "At most this many, 1 to 1000 (default 100)",
                serde_json::json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ));
        }
        let roles = r.access.names();
        let mut op = serde_json::json!({
            "summary": r.summary,
            "description": format!("Who may: {}.", roles.join(", ")),
            "x-roles": roles,
            "tags": [r.tag],
            "operationId": format!(
                "{}_{}",
                r.method,
                r.path.trim_matches('/').replace(['/', '{', '}', '-'], "_")
            ),
        });
        if let Some((schema, defs)) = &r.body {
            components.extend(defs.clone());
            components.insert(r.body_name.to_string(), schema.clone());
            op["requestBody"] = serde_json::json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("{DEFS}{}", r.body_name)}}},
            });
            parameters.push(param(
                "Idempotency-Key",
                ParameterIn::Header,
                false,
                "Repeat a request safely: the same key, body and subject return the first response",
                serde_json::json!({"type": "string", "pattern": crate::idempotency::KEY_PATTERN}),
            ));
        }
        if is_command(r) {
            parameters.extend([
                param(
                    "X-Correlation-Id",
                    ParameterIn::Header,
                    false,
                    "UUID of the business flow; generated when absent and echoed",
                    serde_json::json!({"type": "string", "format": "uuid",
                        "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}),
                ),
                param(
                    "X-Occurred-At",
                    ParameterIn::Header,
                    false,
                    "RFC 3339 time it happened, when earlier than now (late uploads), within the backdating window",
                    serde_json::json!({"type": "string", "format": "date-time",
                        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"}),
                ),
            ]);
        }
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        let (media, schema, defs) = &r.response;
        components.extend(defs.clone());
        let mut responses = serde_json::Map::new();
        responses.insert(
            r.ok.to_string(),
            serde_json::json!({
                "description": if is_command(r) {
                    "The command was accepted; the position is the global position of the last event appended"
                } else {
                    "OK"
                },
                "content": {*media: {"schema": schema}},
            }),
        );
        let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
        for (status, code) in edge_codes(r).into_iter().chain(r.errors.iter().copied()) {
            let codes = by_status.entry(status).or_default();
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        for (status, codes) in by_status {
            let mut response = serde_json::json!({
                "description": format!("{}: {}", status_description(status), codes.join(", ")),
                "content": {"application/json": {"schema": {
                    "allOf": [error_schema.clone()],
                    "properties": {"code": {"enum": codes}},
                }}},
            });
            if status == 401 {
                response["headers"] = serde_json::json!({"WWW-Authenticate": {
                    "description": "The Bearer challenge (RFC 6750)",
                    "required": true,
                    "schema": {"type": "string"},
                }});
            }
            if status == 429 {
                response["headers"] = serde_json::json!({"Retry-After": {
                    "description": "Seconds to wait before the next request",
                    "required": true,
                    "schema": {"type": "integer", "minimum": 1},
                }});
            }
            responses.insert(status.to_string(), response);
        }
        op["responses"] = Value::Object(responses);
        if let Some(d) = crate::deprecation::DEPRECATED
            .iter()
            .find(|d| d.method == r.method && d.path == r.path)
        {
            op["deprecated"] = Value::Bool(true);
            op["description"] = Value::String(format!(
                "{} Deprecated since {}; gone on {}; use {}.",
                op["description"].as_str().unwrap_or_default(),
                d.since,
                d.sunset,
                d.successor
            ));
        }
        op["security"] = match r.access {
            Access::Public => serde_json::json!([]),
            _ => serde_json::json!([{"bearer": []}]),
        };
        let item = paths
            .entry(r.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        item[r.method] = op;
    }
    let mut doc = serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Freshledger command API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Back-office commands for Freshledger's orders, inventory batches, payments and deliveries, \
                and its reference data (catalogue, warehouses, suppliers). Every error is {code, message, details}; \
                each response lists the codes it can carry. Every number in this API is an integer: a JSON number \
                with a zero fraction (2.0) is read as that integer, up to 2^53; anything else where an integer is \
                expected is refused (422). No id may be the nil UUID.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from POST /api/v1/auth/login (EdDSA, keys at /.well-known/jwks.json), or from the configured OpenID Connect issuer",
            }},
        },
    });
    tighten(&mut doc);
    doc
}
