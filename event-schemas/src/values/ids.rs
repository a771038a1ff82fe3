//! Identifiers: UUID v7 stream ids and checked codes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $field:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| ValueError::new($field, format!("{s:?} is not a UUID: {e}")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An order, and the id of its event stream.
    OrderId,
    "order_id"
);
uuid_id!(
    /// A batch of stock received from a supplier, and its stream id.
    BatchId,
    "batch_id"
);
uuid_id!(
    /// A payment, and its stream id.
    PaymentId,
    "payment_id"
);
uuid_id!(
    /// A delivery, and its stream id.
    DeliveryId,
    "delivery_id"
);
uuid_id!(
    /// A customer account.
    CustomerId,
    "customer_id"
);
uuid_id!(
    /// A delivery rider.
    RiderId,
    "rider_id"
);

macro_rules! code_id {
    ($(#[$m:meta])* $name:ident, $field:literal, $pattern:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(ValueError::new(
                        $field,
                        format!("{s:?} does not match {}", $pattern),
                    ))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern })
            }
        }
    };
}

fn is_code(s: &str, min: usize, max: usize, upper_only: bool) -> bool {
    let b = s.as_bytes();
    (min..=max).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_digit()
                || c.is_ascii_uppercase()
                || *c == b'-'
                || (!upper_only && (c.is_ascii_lowercase() || *c == b'_' || *c == b'.'))
        })
}

code_id!(
    /// Stock-keeping unit: 3 to 32 upper-case letters, digits and dashes (`APL-GALA`).
    Sku,
    "sku",
    "^[A-Z0-9][A-Z0-9-]{2,31}$",
    |s| is_code(s, 3, 32, true)
);
code_id!(
    /// A warehouse code (`WH-BER-1`).
    WarehouseId,
    "warehouse_id",
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    |s| is_code(s, 1, 64, false)
);
code_id!(
    /// A supplier code (`SUP-ALMERIA-COOP`).
    SupplierId,
    "supplier_id",
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    |s| is_code(s, 1, 64, false)
);
