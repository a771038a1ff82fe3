//! The OpenAPI 3.1 document, generated from the route table (`api!` in
//! lib.rs) with utoipa for paths, operations, parameters and responses, and
//! schemars for the schemas. OpenAPI 3.1 speaks JSON Schema 2020-12, which is
//! what schemars writes, so component schemas are inserted exactly as
//! generated rather than squeezed through utoipa's own schema model.

use std::any::TypeId;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApiBuilder, PathItem, PathsBuilder, Ref, Required,
    ResponseBuilder,
};

/// One route, as the document describes it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub ok: u16,
    /// The JSON body's schema with its definitions, if the route takes one.
    pub body: Option<(Value, serde_json::Map<String, Value>)>,
    pub body_name: &'static str,
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

fn response_schema<T: JsonSchema>(defs: &mut serde_json::Map<String, Value>) -> Value {
    let mut generator = settings().into_generator();
    let schema = generator.subschema_for::<T>().to_value();
    defs.extend(generator.take_definitions(true));
    schema
}

fn method(m: &str) -> HttpMethod {
    match m {
        "get" => HttpMethod::Get,
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "delete" => HttpMethod::Delete,
        "patch" => HttpMethod::Patch,
        other => panic!("unsupported method {other}"),
    }
}

fn header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
        ))
        .build()
}

/// The whole document, as JSON.
pub fn document() -> Value {
    let routes = crate::route_docs();
    let mut components = serde_json::Map::new();
    let error_schema = response_schema::<crate::error::ErrorBody>(&mut components);
    let command_schema = response_schema::<crate::dto::CommandResponse>(&mut components);
    let mut paths = PathsBuilder::new();
    for r in &routes {
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .tag(r.tag)
            .operation_id(Some(format!(
                "{}_{}",
                r.method,
                r.path.trim_matches('/').replace(['/', '{', '}', '-'], "_")
            )));
        for segment in r.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::Type::String),
                        )),
                );
            }
        }
        if r.path == "/api/v1/events" {
            for (name, d) in [
                ("after", "Events after this global position (default 0)"),
                ("limit", "At most this many, 1 to 1000 (default 100)"),
            ] {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(d))
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::Type::Integer),
                        )),
                );
            }
        }
        if let Some((schema, defs)) = &r.body {
            components.extend(defs.clone());
            components.insert(r.body_name.to_string(), schema.clone());
            op = op
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(r.body_name)))
                                .build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ))
                .parameter(header(
                    "Idempotency-Key",
                    "Repeat a request safely: the same key and body return the first response",
                ))
                .parameter(header(
                    "X-Correlation-Id",
                    "UUID of the business flow; generated when absent and echoed",
                ))
                .parameter(header(
                    "X-Actor",
                    "Who acts, as role:id (customer, seller, admin, delivery, system)",
                ))
                .parameter(header(
                    "X-Occurred-At",
                    "RFC 3339 time it happened, when earlier than now (late uploads)",
                ));
        }
        let ok = ResponseBuilder::new().description(if r.body.is_some() && r.path.starts_with("/api/v1/") && r.method == "post" {
            "The command was accepted; the position is the global position of the last event appended"
        } else {
            "OK"
        });
        let ok = if r.method == "post" {
            ok.content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("CommandResponse")))
                    .build(),
            )
        } else {
            ok
        };
        op = op.response(r.ok.to_string(), ok.build());
        let errors: &[(&str, &str)] = if r.body.is_some() {
            &[
                ("400", "Malformed JSON, id or header"),
                ("404", "Unknown resource"),
                (
                    "409",
                    "Illegal in the current state, or a concurrent change",
                ),
                ("413", "Body too large"),
                ("415", "Content-Type is not application/json"),
                ("422", "Well-formed but invalid"),
                ("503", "Temporarily unavailable"),
            ]
        } else {
            &[
                ("400", "Malformed id or query"),
                ("404", "Unknown resource"),
            ]
        };
        for (code, description) in errors {
            op = op.response(
                *code,
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            );
        }
        paths = paths.path(r.path, PathItem::new(method(r.method), op.build()));
    }
    let _ = (error_schema, command_schema);
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Freshledger command API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Back-office commands for Freshledger's orders, inventory batches, payments and deliveries. \
                     Every error is {code, message, details}.",
                ))
                .build(),
        )
        .paths(paths.build())
        .build();
    let mut json = serde_json::to_value(doc).expect("document serializes");
    json["components"]["schemas"] = Value::Object(components);
    json
}
