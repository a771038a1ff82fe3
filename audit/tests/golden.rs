//! The chain's encoding against golden vectors made independently of this
//! code (`tests/vectors/make.py`, Python's json and hashlib): stored
//! payloads and metadata with keys in any order and any whitespace give the
//! committed canonical bytes and links.

use audit::canonical::{canonical, link, Hash, GENESIS};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use store::StoredEvent;

#[derive(Deserialize)]
struct Vector {
    position: i64,
    stream_type: String,
    stream_id: String,
    stream_version: i64,
    event_type: String,
    event_version: String,
    recorded_at: DateTime<Utc>,
    metadata: String,
    payload: String,
    canonical: String,
    link: Hash,
    previous_link: Hash,
}

#[test]
fn golden_vectors_hold() {
    let vectors: Vec<Vector> =
        serde_json::from_str(include_str!("vectors/golden.json")).expect("golden.json");
    assert!(vectors.len() >= 3);
    let mut previous = GENESIS;
    for v in vectors {
        let e = StoredEvent {
            position: v.position,
            aggregate_type: v.stream_type,
            aggregate_id: v.stream_id,
            sequence: v.stream_version,
            event_type: v.event_type,
            event_version: v.event_version,
            payload: serde_json::from_str(&v.payload).unwrap(),
            metadata: serde_json::from_str(&v.metadata).unwrap(),
            recorded_at: v.recorded_at,
        };
        let bytes = canonical(&e).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            v.canonical,
            "position {}",
            v.position
        );
        assert_eq!(previous, v.previous_link);
        let l = link(&previous, &bytes);
        assert_eq!(l, v.link, "position {}", v.position);
        previous = l;
    }
}
