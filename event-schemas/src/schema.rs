//! JSON Schemas of every event body and of the envelope, generated from the
//! types. The committed copies under `event-schemas/schemas/` are what
//! downstream teams read; `tests/schemas.rs` fails when they drift.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

use crate::envelope::RecordedEvent;
use crate::events::{
    delivery::DeliveryEvent, inventory::InventoryBatchEvent, order::legacy::OrderPlacedV1,
    order::OrderEvent, payment::PaymentEvent, timer::TimerEvent,
};

pub(crate) fn schema_of<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

fn render(mut schema: Schema, event: Option<(&str, &str, &str)>) -> String {
    if let Some((stream, ty, version)) = event {
        schema.insert("$id".into(), schema_path(stream, ty, version).into());
        schema.insert("x-stream-type".into(), stream.into());
        schema.insert("x-event-type".into(), ty.into());
        schema.insert("x-event-version".into(), version.into());
    }
    let mut s = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    s.push('\n');
    s
}

/// Where the schema of one event version lives, relative to `schemas/`.
pub fn schema_path(stream: &str, event_type: &str, version: &str) -> String {
    format!("{stream}/{event_type}.v{version}.json")
}

/// Where the schema of a public integration event lives, relative to
/// `schemas/`.
pub fn integration_schema_path(name: &str) -> String {
    format!("integration/{name}.v{}.json", crate::integration::VERSION)
}

/// Every schema file: path relative to `event-schemas/schemas/` → contents.
pub fn all_schema_files() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let streams = [
        (OrderEvent::STREAM_TYPE, OrderEvent::body_schemas()),
        (
            InventoryBatchEvent::STREAM_TYPE,
            InventoryBatchEvent::body_schemas(),
        ),
        (PaymentEvent::STREAM_TYPE, PaymentEvent::body_schemas()),
        (DeliveryEvent::STREAM_TYPE, DeliveryEvent::body_schemas()),
        (TimerEvent::STREAM_TYPE, TimerEvent::body_schemas()),
    ];
    for (stream, schemas) in streams {
        for (ty, version, schema) in schemas {
            files.insert(
                schema_path(stream, ty, version),
                render(schema, Some((stream, ty, version))),
            );
        }
    }
    // Superseded versions stay published: old history on Kafka replays and
    // in ClickHouse still has them.
    files.insert(
        schema_path(OrderEvent::STREAM_TYPE, "OrderPlaced", "1.0"),
        render(
            schema_of::<OrderPlacedV1>(),
            Some((OrderEvent::STREAM_TYPE, "OrderPlaced", "1.0")),
        ),
    );
    // The public contract: one schema per integration event type.
    for (name, mut schema) in crate::integration::schemas() {
        let path = integration_schema_path(name);
        schema.insert("$id".into(), path.clone().into());
        files.insert(path, render(schema, None));
    }
    files.insert(
        "RecordedEvent.json".into(),
        render(schema_of::<RecordedEvent>(), None),
    );
    files
}
