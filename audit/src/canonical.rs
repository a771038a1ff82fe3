//! The chain's encoding of an event, and its links.
//!
//! An event is hashed as it is stored, not as today's code reads it
//! (upcasters change, history must not): a JSON object of its envelope
//! and body in RFC 8785 canonical form (keys sorted by UTF-16 code units,
//! no whitespace, ES6 number and string forms):
//!
//! ```text
//! {"event_type":…,"event_version":…,"metadata":{…as written…},"payload":{…as written…},
//!  "position":N,"recorded_at":"2026-11-30T09:00:00.123456Z","stream_id":…,
//!  "stream_type":…,"stream_version":N}
//! ```
//!
//! `recorded_at` always has six fractional digits and `Z`. A link is
//! `SHA-256(previous link ‖ canonical bytes)`, the first one's previous
//! link being 32 zero bytes ([`GENESIS`]). Golden vectors in
//! `audit/tests/vectors/` pin all of it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use store::StoredEvent;

/// A link of the chain: 32 bytes, written as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

/// What the first event's link follows.
pub const GENESIS: Hash = Hash([0; 32]);

impl Hash {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.hex())
    }
}

impl std::str::FromStr for Hash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| format!("hash {s:?}: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("hash {s:?} is not 32 bytes"))?;
        Ok(Hash(bytes))
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl schemars::JsonSchema for Hash {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Hash".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A SHA-256 link of the audit chain, lowercase hex",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
        })
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A time as the chain writes it everywhere (the hashed `recorded_at`,
/// checkpoints, the search index): RFC 3339 UTC with six fractional
/// digits, which sorts as time.
pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The event as the chain sees it (the object that is canonicalised).
pub fn document(e: &StoredEvent) -> Value {
    json!({
        "position": e.position,
        "stream_type": e.aggregate_type,
        "stream_id": e.aggregate_id,
        "stream_version": e.sequence,
        "event_type": e.event_type,
        "event_version": e.event_version,
        "recorded_at": stamp(e.recorded_at),
        "metadata": e.metadata,
        "payload": e.payload,
    })
}

/// The RFC 8785 canonical bytes of a JSON value.
pub fn canonical_json(v: &Value) -> Result<Vec<u8>, String> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| format!("canonical JSON: {e}"))
}

/// The canonical bytes of a stored event.
pub fn canonical(e: &StoredEvent) -> Result<Vec<u8>, String> {
    canonical_json(&document(e))
}

/// The link that follows `previous` for an event of canonical form `bytes`.
pub fn link(previous: &Hash, bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(previous.0);
    h.update(bytes);
    Hash(h.finalize().into())
}

/// The link of a stored event.
pub fn link_event(previous: &Hash, e: &StoredEvent) -> Result<Hash, String> {
    Ok(link(previous, &canonical(e)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shuffled(v: &Value, seed: u64) -> String {
        // Re-serialise with keys in another order and with whitespace.
        fn walk(v: &Value, seed: u64, out: &mut String) {
            match v {
                Value::Object(m) => {
                    let mut keys: Vec<_> = m.keys().collect();
                    keys.sort_by_key(|k| (k.len() as u64 ^ seed, (*k).clone()));
                    keys.reverse();
                    out.push_str("{ ");
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push_str(" ,\n ");
                        }
                        out.push_str(&serde_json::to_string(k).unwrap());
                        out.push_str(" :\t");
                        walk(&m[*k], seed.rotate_left(7), out);
                    }
                    out.push_str(" }");
                }
                Value::Array(a) => {
                    out.push_str("[ ");
                    for (i, x) in a.iter().enumerate() {
                        if i > 0 {
                            out.push_str(" , ");
                        }
                        walk(x, seed, out);
                    }
                    out.push_str(" ]");
                }
                other => out.push_str(&serde_json::to_string(other).unwrap()),
            }
        }
        let mut s = String::new();
        walk(v, seed, &mut s);
        s
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Zé_0-9]{1,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The canonical form does not depend on key order or whitespace.
        #[test]
        fn canonical_form_ignores_key_order_and_whitespace(v in value(), seed in any::<u64>()) {
            let text = shuffled(&v, seed);
            let reread: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(canonical_json(&reread).unwrap(), canonical_json(&v).unwrap());
        }
    }
}
