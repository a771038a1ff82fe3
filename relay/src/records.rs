//! What goes on the wire for one event: the topic, the key, the value and
//! the headers of each Kafka message.

use event_schemas::integration::{self, Published};
use event_schemas::RecordedEvent;
use rdkafka::message::{Header, OwnedHeaders};

/// Topic names, from the configured prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Topics {
            prefix: prefix.to_string(),
        }
    }

    /// Every event of stream type `stream_type`: `{prefix}.order.v1`,
    /// `{prefix}.inventory-batch.v1`, ...
    pub fn stream(&self, stream_type: &str) -> String {
        let mut kebab = String::new();
        for (i, c) in stream_type.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            } else {
                kebab.push(c);
            }
        }
        format!("{}.{kebab}.v1", self.prefix)
    }

    /// The public integration events.
    pub fn integration(&self) -> String {
        format!("{}.integration.v{}", self.prefix, integration::VERSION)
    }

    /// Every topic the relay writes to.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = event_schemas::STREAM_TYPES
            .iter()
            .map(|s| self.stream(s))
            .collect();
        all.push(self.integration());
        all
    }
}

/// One Kafka message, owned, ready to send (and to send again).
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Record {
    pub fn headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                })
            },
        )
    }
}

/// Headers of every message made from `event`: consumers route and dedupe
/// on them without parsing the value.
fn envelope_headers(event: &RecordedEvent) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("event_id", event.event_id.to_string()),
        ("event_type", event.event_type.clone()),
        ("event_version", event.event_version.clone()),
        ("stream_type", event.stream_type.clone()),
        ("stream_id", event.stream_id.clone()),
        ("stream_version", event.stream_version.to_string()),
        ("global_position", event.global_position.to_string()),
        ("correlation_id", event.correlation_id.to_string()),
        ("actor", event.actor.to_string()),
        ("occurred_at", event.occurred_at.to_rfc3339()),
        ("recorded_at", event.recorded_at.to_rfc3339()),
        ("content_type", "application/json".to_string()),
    ];
    if let Some(c) = event.causation_id {
        h.push(("causation_id", c.to_string()));
    }
    // W3C trace context: a consumer's work continues the flow's trace.
    if let Some(tp) = &event.trace_parent {
        h.push(("traceparent", tp.clone()));
    }
    h
}

/// The message on the stream type's topic: the envelope as JSON (the
/// committed `RecordedEvent.json` schema), keyed by stream id.
pub fn internal(topics: &Topics, event: &RecordedEvent) -> Record {
    Record {
        topic: topics.stream(&event.stream_type),
        key: event.stream_id.clone(),
        value: serde_json::to_vec(event).expect("events serialize"),
        headers: envelope_headers(event),
    }
}

/// The message on the integration topic for a public event made from
/// `event`: the public type and version replace the internal ones in the
/// headers; `event_id` stays the source's (the public event's id).
pub fn public(topics: &Topics, event: &RecordedEvent, published: &Published) -> Record {
    let mut headers = envelope_headers(event);
    for (k, v) in headers.iter_mut() {
        match *k {
            "event_type" => *v = published.event_type.to_string(),
            "event_version" => *v = integration::VERSION.to_string(),
            _ => {}
        }
    }
    headers.push(("source_event_type", event.event_type.clone()));
    Record {
        topic: topics.integration(),
        key: published.key.clone(),
        value: serde_json::to_vec(&published.value).expect("public events serialize"),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_kebab_case_and_versioned() {
        let t = Topics::new("freshledger");
        assert_eq!(t.stream("Order"), "freshledger.order.v1");
        assert_eq!(t.stream("InventoryBatch"), "freshledger.inventory-batch.v1");
        assert_eq!(t.integration(), "freshledger.integration.v1");
        assert_eq!(t.all().len(), event_schemas::STREAM_TYPES.len() + 1);
    }
}
