//! Reading old history: each upcaster lifts one stored event version to the
//! next. They are wired into cqrs-es (aggregate loads and replays) and into
//! the global log reader, so nobody downstream ever sees an old version.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

use crate::events::order::{legacy::OrderPlacedV1, OrderPlaced};

/// One version step of one event type. Works on the stored, tagged payload
/// (`{"OrderPlaced": {...}}`).
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: &'static str,
    pub to_version: &'static str,
    pub lift: fn(Value) -> Result<Value, String>,
}

fn order_placed_1_to_2(body: Value) -> Result<Value, String> {
    let v1: OrderPlacedV1 =
        serde_json::from_value(body).map_err(|e| format!("OrderPlaced 1.0: {e}"))?;
    serde_json::to_value(OrderPlaced::from(v1)).map_err(|e| e.to_string())
}

/// Every upcaster Freshledger knows, in the order they apply.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "OrderPlaced",
    from_version: "1.0",
    to_version: "2.0",
    lift: order_placed_1_to_2,
}];

/// Lifts a stored payload to the current version of its event type.
/// `payload` is the tagged form; the result is too.
pub fn upcast(
    event_type: &str,
    mut version: String,
    mut payload: Value,
) -> Result<(String, Value), String> {
    for u in UPCASTERS {
        if u.event_type == event_type && u.from_version == version {
            let body = payload
                .get_mut(event_type)
                .map(Value::take)
                .ok_or_else(|| format!("payload is not tagged {event_type}"))?;
            let lifted = (u.lift)(body)?;
            payload = serde_json::json!({ event_type: lifted });
            version = u.to_version.to_string();
        }
    }
    Ok((version, payload))
}

/// The cqrs-es face of [`UPCASTERS`].
struct CqrsUpcaster(&'static Upcaster);

impl EventUpcaster for CqrsUpcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.0.event_type && event_version == self.0.from_version
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        // cqrs-es gives upcasters no way to fail. A stored event that does not
        // parse as its own declared version is corrupt history; we leave it as
        // it is so that deserialisation reports it as an error on load rather
        // than inventing data.
        let (event_version, payload) = match upcast(
            &event.event_type,
            event.event_version.clone(),
            event.payload.clone(),
        ) {
            Ok(ok) => ok,
            Err(_) => (event.event_version.clone(), event.payload.clone()),
        };
        SerializedEvent {
            event_version,
            payload,
            ..event
        }
    }
}

/// Upcasters to hand to `PersistedEventStore::with_upcasters`.
pub fn cqrs_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    UPCASTERS
        .iter()
        .map(|u| Box::new(CqrsUpcaster(u)) as Box<dyn EventUpcaster>)
        .collect()
}
