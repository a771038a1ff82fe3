//! Where and when: delivery slots, addresses, locations.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// A delivery window. Ends after it starts and lasts at most 12 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "DeliverySlotRepr")]
pub struct DeliverySlot {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DeliverySlot")]
struct DeliverySlotRepr {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl TryFrom<DeliverySlotRepr> for DeliverySlot {
    type Error = ValueError;
    fn try_from(r: DeliverySlotRepr) -> Result<Self, Self::Error> {
        DeliverySlot::new(r.starts_at, r.ends_at)
    }
}

impl DeliverySlot {
    pub const MAX_HOURS: i64 = 12;
    pub fn new(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<Self, ValueError> {
        if ends_at <= starts_at {
            return Err(ValueError::new(
                "delivery_slot",
                "ends_at must be after starts_at",
            ));
        }
        if ends_at - starts_at > chrono::Duration::hours(Self::MAX_HOURS) {
            return Err(ValueError::new(
                "delivery_slot",
                format!("a slot lasts at most {} hours", Self::MAX_HOURS),
            ));
        }
        Ok(DeliverySlot { starts_at, ends_at })
    }
    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }
}

/// A delivery address. Every line is trimmed text of at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "AddressRepr")]
pub struct Address {
    recipient: String,
    line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    city: String,
    postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schemars(regex(pattern = "^[A-Z]{2}$"))]
    country: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Address")]
struct AddressRepr {
    #[schemars(length(min = 1, max = 200))]
    recipient: String,
    #[schemars(length(min = 1, max = 200))]
    line1: String,
    #[serde(default)]
    #[schemars(length(max = 200))]
    line2: Option<String>,
    #[schemars(length(min = 1, max = 200))]
    city: String,
    #[schemars(length(min = 1, max = 200))]
    postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schemars(regex(pattern = "^[A-Z]{2}$"))]
    country: String,
}

impl TryFrom<AddressRepr> for Address {
    type Error = ValueError;
    fn try_from(r: AddressRepr) -> Result<Self, Self::Error> {
        fn text(field: &'static str, s: String) -> Result<String, ValueError> {
            let t = s.trim();
            if t.is_empty() {
                return Err(ValueError::new(field, "must not be empty"));
            }
            if t.chars().count() > 200 {
                return Err(ValueError::new(field, "longer than 200 characters"));
            }
            Ok(t.to_string())
        }
        if r.country.len() != 2 || !r.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValueError::new(
                "country",
                format!("{:?} is not an ISO 3166-1 alpha-2 code", r.country),
            ));
        }
        Ok(Address {
            recipient: text("recipient", r.recipient)?,
            line1: text("line1", r.line1)?,
            line2: match r.line2 {
                Some(l) if !l.trim().is_empty() => Some(text("line2", l)?),
                _ => None,
            },
            city: text("city", r.city)?,
            postal_code: text("postal_code", r.postal_code)?,
            country: r.country,
        })
    }
}

impl Address {
    pub fn new(
        recipient: &str,
        line1: &str,
        line2: Option<&str>,
        city: &str,
        postal_code: &str,
        country: &str,
    ) -> Result<Self, ValueError> {
        AddressRepr {
            recipient: recipient.into(),
            line1: line1.into(),
            line2: line2.map(Into::into),
            city: city.into(),
            postal_code: postal_code.into(),
            country: country.into(),
        }
        .try_into()
    }
    pub fn recipient(&self) -> &str {
        &self.recipient
    }
    pub fn line1(&self) -> &str {
        &self.line1
    }
    pub fn line2(&self) -> Option<&str> {
        self.line2.as_deref()
    }
    pub fn city(&self) -> &str {
        &self.city
    }
    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }
    pub fn country(&self) -> &str {
        &self.country
    }
}

/// A WGS 84 position in integer microdegrees (exact, comparable, no floats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "GeoPointRepr")]
pub struct GeoPoint {
    /// Latitude in microdegrees, -90,000,000 to 90,000,000.
    #[schemars(range(min = -90_000_000, max = 90_000_000))]
    lat_micro: i32,
    /// Longitude in microdegrees, -180,000,000 to 180,000,000.
    #[schemars(range(min = -180_000_000, max = 180_000_000))]
    lon_micro: i32,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "GeoPoint")]
struct GeoPointRepr {
    /// Latitude in microdegrees.
    #[schemars(range(min = -90_000_000, max = 90_000_000))]
    lat_micro: i32,
    /// Longitude in microdegrees.
    #[schemars(range(min = -180_000_000, max = 180_000_000))]
    lon_micro: i32,
}

impl TryFrom<GeoPointRepr> for GeoPoint {
    type Error = ValueError;
    fn try_from(r: GeoPointRepr) -> Result<Self, Self::Error> {
        GeoPoint::new(r.lat_micro, r.lon_micro)
    }
}

impl GeoPoint {
    pub fn new(lat_micro: i32, lon_micro: i32) -> Result<Self, ValueError> {
        if !(-90_000_000..=90_000_000).contains(&lat_micro) {
            return Err(ValueError::new("lat_micro", "outside -90..90 degrees"));
        }
        if !(-180_000_000..=180_000_000).contains(&lon_micro) {
            return Err(ValueError::new("lon_micro", "outside -180..180 degrees"));
        }
        Ok(GeoPoint {
            lat_micro,
            lon_micro,
        })
    }
    pub fn lat_micro(&self) -> i32 {
        self.lat_micro
    }
    pub fn lon_micro(&self) -> i32 {
        self.lon_micro
    }
}
