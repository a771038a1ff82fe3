//! A row of the events table as both backends read it, and how it becomes
//! the envelope every consumer sees (upcast on the way).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use event_schemas::envelope::{keys, EventMetadata};
use event_schemas::upcast::upcast;
use event_schemas::RecordedEvent;
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;

/// A row of the events table as it is stored: before upcasting, with its
/// metadata map as written. What auditors hash (the `audit` crate): the
/// stored form does not change when the code's upcasters do.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The envelope every consumer sees (upcast to the current version).
    pub fn into_recorded(self) -> Result<RecordedEvent, StoreError> {
        let position = self.position;
        let corrupt = |reason: String| StoreError::Corrupt { position, reason };
        // Moved, never cloned: a replay decodes every event of the log.
        let (event_version, mut tagged) =
            upcast(&self.event_type, self.event_version, self.payload).map_err(corrupt)?;
        let payload = tagged
            .get_mut(&self.event_type)
            .map(Value::take)
            .ok_or_else(|| corrupt(format!("payload is not tagged {}", self.event_type)))?;
        let map: HashMap<String, String> =
            serde_json::from_value(self.metadata).map_err(|e| corrupt(format!("metadata: {e}")))?;
        let meta = EventMetadata::from_map(&map).map_err(|e| corrupt(e.to_string()))?;
        let event_id = map
            .get(keys::EVENT_ID)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| corrupt("metadata has no event_id".into()))?;
        Ok(RecordedEvent {
            event_id,
            global_position: position as u64,
            stream_type: self.aggregate_type,
            stream_id: self.aggregate_id,
            stream_version: self.sequence as u64,
            event_type: self.event_type,
            event_version,
            occurred_at: meta.occurred_at,
            recorded_at: self.recorded_at,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            actor: meta.actor,
            trace_parent: map.get(keys::TRACEPARENT).cloned(),
            payload,
        })
    }
}
