//! The events of each aggregate, one enum per stream type.
//!
//! Every variant wraps a struct of the same name, so the stored payload is
//! `{"OrderPlaced": {...}}` (cqrs-es' convention) and the struct alone is the
//! body published to downstream consumers, described by its JSON Schema.

pub mod delivery;
pub mod inventory;
pub mod order;
pub mod payment;
pub mod timer;

/// Declares an aggregate's event enum, its `DomainEvent` impl and the table of
/// (event type, current version) used by schema export and upcasting.
macro_rules! event_enum {
    (
        $(#[$m:meta])*
        $name:ident, stream = $stream:literal {
            $( $(#[$vm:meta])* $variant:ident = $version:literal ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        // Events are built once and moved a few times; boxing the large
        // variants would buy nothing and cost every match a deref.
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            $( $(#[$vm])* $variant($variant), )*
        }

        impl $name {
            /// The stream (aggregate) type these events belong to.
            pub const STREAM_TYPE: &'static str = $stream;
            /// Every event type of this stream with its current version.
            pub const EVENT_TYPES: &'static [(&'static str, &'static str)] =
                &[ $( (stringify!($variant), $version), )* ];

            /// JSON Schema of each event body, keyed by (event type, version).
            pub fn body_schemas() -> Vec<(&'static str, &'static str, schemars::Schema)> {
                vec![ $( (stringify!($variant), $version, crate::schema::schema_of::<$variant>()), )* ]
            }

            /// The event body without the enum tag: what consumers receive.
            pub fn body(&self) -> serde_json::Value {
                match self {
                    $( $name::$variant(e) => serde_json::to_value(e).expect("events serialize"), )*
                }
            }

            /// Rebuilds the event from its type and (current-version) body.
            pub fn from_body(event_type: &str, body: serde_json::Value) -> Result<Self, serde_json::Error> {
                let mut tagged = serde_json::Map::new();
                tagged.insert(event_type.to_string(), body);
                serde_json::from_value(serde_json::Value::Object(tagged))
            }
        }

        impl cqrs_es::DomainEvent for $name {
            fn event_type(&self) -> String {
                match self { $( $name::$variant(_) => stringify!($variant).to_string(), )* }
            }
            fn event_version(&self) -> String {
                match self { $( $name::$variant(_) => $version.to_string(), )* }
            }
        }

        $(
            impl From<$variant> for $name {
                fn from(e: $variant) -> Self { $name::$variant(e) }
            }
        )*
    };
}
pub(crate) use event_enum;
