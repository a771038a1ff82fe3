//! The one envelope every consumer of the log sees (read models, sagas, the
//! Kafka relay, ClickHouse, auditors), and the metadata a command attaches.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{
    delivery::DeliveryEvent, inventory::InventoryBatchEvent, order::OrderEvent,
    payment::PaymentEvent, timer::TimerEvent,
};
use crate::values::ValueError;

/// The role someone acts in (the JWT roles, plus the system itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    Customer,
    Seller,
    Admin,
    Delivery,
    /// Freshledger itself: sagas, timers, migrations.
    System,
}

/// Who caused an event: a role and an id, written `role:id` (`admin:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Actor {
    pub role: ActorRole,
    pub id: String,
}

impl Actor {
    pub fn system(component: &str) -> Self {
        Actor {
            role: ActorRole::System,
            id: component.to_string(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = serde_json::to_value(self.role).expect("roles serialize");
        write!(
            f,
            "{}:{}",
            role.as_str().expect("roles are strings"),
            self.id
        )
    }
}

impl FromStr for Actor {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (role, id) = s
            .split_once(':')
            .ok_or_else(|| ValueError::new("actor", format!("{s:?} is not role:id")))?;
        let role: ActorRole = serde_json::from_value(serde_json::Value::String(role.into()))
            .map_err(|_| ValueError::new("actor", format!("unknown role {role:?}")))?;
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if !ok {
            return Err(ValueError::new("actor", format!("invalid actor id {id:?}")));
        }
        Ok(Actor {
            role,
            id: id.to_string(),
        })
    }
}

impl TryFrom<String> for Actor {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.to_string()
    }
}

impl JsonSchema for Actor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Actor".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Who caused the event, as role:id",
            "type": "string",
            "pattern": "^(customer|seller|admin|delivery|system):[A-Za-z0-9._@-]{1,128}$",
        })
    }
}

/// Keys of the cqrs-es metadata map.
pub mod keys {
    pub const EVENT_ID: &str = "event_id";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const ACTOR: &str = "actor";
    /// The `Idempotency-Key` of the request whose command appended the
    /// event: written with the events, so a request's outcome can be
    /// recovered from the log after a crash.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// The W3C trace context of the span that appended the event (the
    /// request, or the reaction to an earlier event), so the flow's
    /// asynchronous hops are one trace.
    pub const TRACEPARENT: &str = "traceparent";
}

/// What a command attaches to every event it causes. The store adds the
/// per-event id, the positions and `recorded_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    /// When it happened in the world (a late rider upload keeps its real time).
    pub occurred_at: DateTime<Utc>,
    /// The business flow (one order's journey) this event belongs to.
    pub correlation_id: Uuid,
    /// The command or event that directly caused this one.
    pub causation_id: Option<Uuid>,
    pub actor: Actor,
    /// The `Idempotency-Key` of the request, if it had one.
    pub idempotency_key: Option<String>,
}

impl EventMetadata {
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(keys::OCCURRED_AT.into(), self.occurred_at.to_rfc3339());
        m.insert(keys::CORRELATION_ID.into(), self.correlation_id.to_string());
        if let Some(c) = self.causation_id {
            m.insert(keys::CAUSATION_ID.into(), c.to_string());
        }
        m.insert(keys::ACTOR.into(), self.actor.to_string());
        if let Some(k) = &self.idempotency_key {
            m.insert(keys::IDEMPOTENCY_KEY.into(), k.clone());
        }
        m
    }

    pub fn from_map(m: &HashMap<String, String>) -> Result<Self, ValueError> {
        let get = |k: &'static str| {
            m.get(k)
                .ok_or_else(|| ValueError::new(k, "missing from metadata"))
        };
        let uuid = |k: &'static str, v: &str| {
            Uuid::parse_str(v).map_err(|e| ValueError::new(k, e.to_string()))
        };
        Ok(EventMetadata {
            occurred_at: DateTime::parse_from_rfc3339(get(keys::OCCURRED_AT)?)
                .map_err(|e| ValueError::new(keys::OCCURRED_AT, e.to_string()))?
                .with_timezone(&Utc),
            correlation_id: uuid(keys::CORRELATION_ID, get(keys::CORRELATION_ID)?)?,
            causation_id: m
                .get(keys::CAUSATION_ID)
                .map(|v| uuid(keys::CAUSATION_ID, v))
                .transpose()?,
            actor: get(keys::ACTOR)?.parse()?,
            idempotency_key: m.get(keys::IDEMPOTENCY_KEY).cloned(),
        })
    }
}

/// An event as it stands in the global log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    /// Unique, time-ordered (UUID v7): the key to deduplicate on.
    pub event_id: Uuid,
    /// Position in the one global log: gap-tolerant, strictly increasing in
    /// the order subscribers receive events.
    pub global_position: u64,
    /// `Order`, `InventoryBatch`, `Payment` or `Delivery`.
    pub stream_type: String,
    pub stream_id: String,
    /// 1 for a stream's first event, then +1 per event.
    pub stream_version: u64,
    pub event_type: String,
    /// The body's version after upcasting (always the current one).
    pub event_version: String,
    pub occurred_at: DateTime<Utc>,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    pub actor: Actor,
    /// The W3C trace context (`traceparent`) of the span that appended it,
    /// when tracing was on: a consumer's work on the event continues that
    /// trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
    /// The event body (see the schema for `stream_type`/`event_type`).
    pub payload: serde_json::Value,
}

/// A decoded event of any stream type.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    Order(OrderEvent),
    InventoryBatch(InventoryBatchEvent),
    Payment(PaymentEvent),
    Delivery(DeliveryEvent),
    Timer(TimerEvent),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown stream type {0:?}")]
    UnknownStream(String),
    #[error("cannot decode {event_type}: {source}")]
    Body {
        event_type: String,
        source: serde_json::Error,
    },
}

impl RecordedEvent {
    /// The typed event. `payload` is already at the current version.
    pub fn decode(&self) -> Result<AnyEvent, DecodeError> {
        let body = self.payload.clone();
        let err = |source| DecodeError::Body {
            event_type: self.event_type.clone(),
            source,
        };
        Ok(match self.stream_type.as_str() {
            OrderEvent::STREAM_TYPE => {
                AnyEvent::Order(OrderEvent::from_body(&self.event_type, body).map_err(err)?)
            }
            InventoryBatchEvent::STREAM_TYPE => AnyEvent::InventoryBatch(
                InventoryBatchEvent::from_body(&self.event_type, body).map_err(err)?,
            ),
            PaymentEvent::STREAM_TYPE => {
                AnyEvent::Payment(PaymentEvent::from_body(&self.event_type, body).map_err(err)?)
            }
            DeliveryEvent::STREAM_TYPE => {
                AnyEvent::Delivery(DeliveryEvent::from_body(&self.event_type, body).map_err(err)?)
            }
            TimerEvent::STREAM_TYPE => {
                AnyEvent::Timer(TimerEvent::from_body(&self.event_type, body).map_err(err)?)
            }
            other => return Err(DecodeError::UnknownStream(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_round_trips_and_rejects_garbage() {
        let a: Actor = "admin:alice@example.com".parse().unwrap();
        assert_eq!(a.role, ActorRole::Admin);
        assert_eq!(a.to_string(), "admin:alice@example.com");
        assert!("wizard:bob".parse::<Actor>().is_err());
        assert!("admin:".parse::<Actor>().is_err());
        assert!("admin".parse::<Actor>().is_err());
    }

    #[test]
    fn metadata_round_trips_through_the_cqrs_map() {
        let m = EventMetadata {
            occurred_at: "2026-11-24T10:00:00Z".parse().unwrap(),
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            actor: Actor::system("saga"),
            idempotency_key: Some("k-1".into()),
        };
        assert_eq!(EventMetadata::from_map(&m.to_map()).unwrap(), m);
        let mut broken = m.to_map();
        broken.remove(keys::ACTOR);
        assert!(EventMetadata::from_map(&broken).is_err());
    }
}
