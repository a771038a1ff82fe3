//! Value objects shared by every event and command.
//!
//! Parse, don't validate: every type here can only be constructed through a
//! checked constructor (or `Deserialize`, which goes through the same check),
//! so an instance is always valid and its error says why not.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value could not be constructed. `field` names what was wrong in the
/// input's own vocabulary so an API can report it verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValueError {
    pub field: &'static str,
    pub reason: String,
}

impl ValueError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Currency and money

/// ISO 4217 currencies Freshledger trades in, with their minor-unit exponent.
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HUF", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("NOK", 2),
    ("NZD", 2),
    ("PLN", 2),
    ("SEK", 2),
    ("USD", 2),
];

/// An ISO 4217 currency code from the supported list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// Digits after the decimal point of the minor unit (2 for EUR, 0 for JPY).
    pub fn minor_unit_exponent(&self) -> u8 {
        CURRENCIES
            .iter()
            .find(|(c, _)| c.as_bytes() == self.0)
            .map(|(_, e)| *e)
            .expect("constructed currencies are in the table")
    }
}

impl FromStr for Currency {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match CURRENCIES.iter().find(|(c, _)| *c == s) {
            Some((c, _)) => {
                let b = c.as_bytes();
                Ok(Currency([b[0], b[1], b[2]]))
            }
            None => Err(ValueError::new(
                "currency",
                format!("{s:?} is not a supported ISO 4217 code"),
            )),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.code().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<&str> = CURRENCIES.iter().map(|(c, _)| *c).collect();
        json_schema!({
            "description": "ISO 4217 currency code",
            "type": "string",
            "enum": codes,
        })
    }
}

/// An amount of money: integer minor units (cents) of one currency. Never
/// negative; arithmetic across currencies is an error, never a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "MoneyRepr")]
pub struct Money {
    /// Amount in minor units of `currency` (e.g. cents). Never negative.
    #[schemars(range(min = 0))]
    amount_minor: i64,
    currency: Currency,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Money")]
struct MoneyRepr {
    /// Amount in minor units of `currency` (e.g. cents). Never negative.
    #[schemars(range(min = 0))]
    amount_minor: i64,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = ValueError;
    fn try_from(r: MoneyRepr) -> Result<Self, Self::Error> {
        Money::new(r.amount_minor, r.currency)
    }
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, ValueError> {
        if amount_minor < 0 {
            return Err(ValueError::new(
                "amount_minor",
                format!("{amount_minor} is negative"),
            ));
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }
    pub fn zero(currency: Currency) -> Self {
        Money {
            amount_minor: 0,
            currency,
        }
    }
    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }
    pub fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }
    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount_minor: sum,
            currency: self.currency,
        })
    }
    /// `self - other`; an error when the result would be negative.
    pub fn checked_sub(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        if other.amount_minor > self.amount_minor {
            return Err(MoneyError::Negative);
        }
        Ok(Money {
            amount_minor: self.amount_minor - other.amount_minor,
            currency: self.currency,
        })
    }
    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.minor_unit_exponent() as u32;
        if exp == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let div = 10i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {}",
            self.amount_minor / div,
            self.amount_minor % div,
            self.currency,
            width = exp as usize
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount would be negative")]
    Negative,
    #[error("amount overflows")]
    Overflow,
}

// ---------------------------------------------------------------------------
// Quantities

/// How stock of a product is counted: by weight in grams, or in whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitOfMeasure {
    /// Integer grams.
    Gram,
    /// Whole pieces (a pineapple, a bunch, a punnet).
    Unit,
}

impl fmt::Display for UnitOfMeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitOfMeasure::Gram => "g",
            UnitOfMeasure::Unit => "unit",
        })
    }
}

/// A strictly positive amount in one unit of measure. Grams and units never
/// mix: arithmetic on different units is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "QuantityRepr")]
pub struct Quantity {
    uom: UnitOfMeasure,
    /// Grams or whole units, at least 1.
    #[schemars(range(min = 1))]
    amount: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Quantity")]
struct QuantityRepr {
    uom: UnitOfMeasure,
    /// Grams or whole units, at least 1.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    amount: i64,
}

impl TryFrom<QuantityRepr> for Quantity {
    type Error = ValueError;
    fn try_from(r: QuantityRepr) -> Result<Self, Self::Error> {
        if r.amount <= 0 {
            return Err(ValueError::new(
                "quantity",
                format!("{} must be at least 1 {}", r.amount, r.uom),
            ));
        }
        Quantity::new(r.uom, r.amount as u64)
    }
}

/// Largest quantity accepted anywhere: 1,000 tonnes or a billion units.
pub const MAX_QUANTITY: u64 = 1_000_000_000;

impl Quantity {
    pub fn new(uom: UnitOfMeasure, amount: u64) -> Result<Self, ValueError> {
        if amount == 0 {
            return Err(ValueError::new(
                "quantity",
                format!("0 {uom} is not a quantity"),
            ));
        }
        if amount > MAX_QUANTITY {
            return Err(ValueError::new(
                "quantity",
                format!("{amount} exceeds the maximum of {MAX_QUANTITY}"),
            ));
        }
        Ok(Quantity { uom, amount })
    }
    pub fn grams(amount: u64) -> Result<Self, ValueError> {
        Self::new(UnitOfMeasure::Gram, amount)
    }
    pub fn units(amount: u64) -> Result<Self, ValueError> {
        Self::new(UnitOfMeasure::Unit, amount)
    }
    pub fn uom(&self) -> UnitOfMeasure {
        self.uom
    }
    pub fn amount(&self) -> u64 {
        self.amount
    }
    /// Checks that this quantity is counted in `uom`.
    pub fn expect_uom(&self, uom: UnitOfMeasure) -> Result<u64, UnitMismatch> {
        if self.uom != uom {
            return Err(UnitMismatch {
                expected: uom,
                actual: self.uom,
            });
        }
        Ok(self.amount)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.uom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a quantity in {expected}, got {actual}")]
pub struct UnitMismatch {
    pub expected: UnitOfMeasure,
    pub actual: UnitOfMeasure,
}

// ---------------------------------------------------------------------------
// Prices

/// What a price is quoted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingUnit {
    /// Price per kilogram; sold by weight in grams.
    PerKg,
    /// Price per piece; sold in whole units.
    PerUnit,
}

impl PricingUnit {
    /// The unit of measure a product priced this way is sold in.
    pub fn unit_of_measure(&self) -> UnitOfMeasure {
        match self {
            PricingUnit::PerKg => UnitOfMeasure::Gram,
            PricingUnit::PerUnit => UnitOfMeasure::Unit,
        }
    }
}

/// A price quoted per kilogram or per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitPrice {
    pub amount: Money,
    pub per: PricingUnit,
}

impl UnitPrice {
    /// The price of `quantity`: per-kg prices are pro-rated by grams and
    /// rounded half-up to the minor unit, in integer arithmetic.
    pub fn price_of(&self, quantity: Quantity) -> Result<Money, PriceError> {
        let amount = quantity.expect_uom(self.per.unit_of_measure())? as i128;
        let unit = self.amount.amount_minor() as i128;
        let total = match self.per {
            PricingUnit::PerKg => (unit * amount + 500) / 1000,
            PricingUnit::PerUnit => unit * amount,
        };
        let total = i64::try_from(total).map_err(|_| PriceError::Overflow)?;
        Money::new(total, self.amount.currency()).map_err(|_| PriceError::Overflow)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error(transparent)]
    Unit(#[from] UnitMismatch),
    #[error("price overflows")]
    Overflow,
}

// ---------------------------------------------------------------------------
// Identifiers

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

// ---------------------------------------------------------------------------
// Delivery slot, address, location

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

/// Free text bounded to `N` characters, trimmed, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const N: usize>(String);

impl<const N: usize> Text<N> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> FromStr for Text<N> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ValueError::new("text", "must not be empty"));
        }
        if t.chars().count() > N {
            return Err(ValueError::new(
                "text",
                format!("longer than {N} characters"),
            ));
        }
        Ok(Text(t.to_string()))
    }
}

impl<const N: usize> TryFrom<String> for Text<N> {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl<const N: usize> From<Text<N>> for String {
    fn from(t: Text<N>) -> String {
        t.0
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> JsonSchema for Text<N> {
    fn schema_name() -> Cow<'static, str> {
        format!("Text{N}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "maxLength": N })
    }
}

/// A short note (reason, comment): 1 to 500 characters.
pub type Note = Text<500>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_rejects_negative_and_unknown_currency() {
        assert!(
            serde_json::from_value::<Money>(json!({"amount_minor": -1, "currency": "EUR"}))
                .is_err()
        );
        let e = serde_json::from_value::<Money>(json!({"amount_minor": 1, "currency": "XXX"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ISO 4217"), "{e}");
        let m: Money =
            serde_json::from_value(json!({"amount_minor": 1299, "currency": "EUR"})).unwrap();
        assert_eq!(m.to_string(), "12.99 EUR");
        assert_eq!(
            Money::new(5, Currency::from_str("JPY").unwrap())
                .unwrap()
                .to_string(),
            "5 JPY"
        );
    }

    #[test]
    fn money_arithmetic_never_mixes_currencies() {
        let eur = Money::new(100, Currency::EUR).unwrap();
        let usd = Money::new(100, Currency::USD).unwrap();
        assert!(matches!(
            eur.checked_add(usd),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            eur.checked_sub(Money::new(101, Currency::EUR).unwrap()),
            Err(MoneyError::Negative)
        );
        assert_eq!(eur.checked_add(eur).unwrap().amount_minor(), 200);
    }

    #[test]
    fn quantity_is_positive_and_typed() {
        assert!(Quantity::grams(0).is_err());
        assert!(serde_json::from_value::<Quantity>(json!({"uom": "gram", "amount": -5})).is_err());
        assert!(serde_json::from_value::<Quantity>(json!({"uom": "kg", "amount": 5})).is_err());
        let q = Quantity::grams(1500).unwrap();
        assert_eq!(
            q.expect_uom(UnitOfMeasure::Unit),
            Err(UnitMismatch {
                expected: UnitOfMeasure::Unit,
                actual: UnitOfMeasure::Gram
            })
        );
    }

    #[test]
    fn per_kg_prices_round_half_up_in_integers() {
        let p = UnitPrice {
            amount: Money::new(299, Currency::EUR).unwrap(),
            per: PricingUnit::PerKg,
        };
        // 1.5 kg at 2.99/kg = 4.485 -> 4.49
        assert_eq!(
            p.price_of(Quantity::grams(1500).unwrap())
                .unwrap()
                .amount_minor(),
            449
        );
        assert_eq!(
            p.price_of(Quantity::grams(1).unwrap())
                .unwrap()
                .amount_minor(),
            0
        );
        assert!(p.price_of(Quantity::units(2).unwrap()).is_err());
        let u = UnitPrice {
            amount: Money::new(150, Currency::EUR).unwrap(),
            per: PricingUnit::PerUnit,
        };
        assert_eq!(
            u.price_of(Quantity::units(3).unwrap())
                .unwrap()
                .amount_minor(),
            450
        );
    }

    #[test]
    fn codes_are_checked() {
        assert!("APL-GALA".parse::<Sku>().is_ok());
        assert!("apl".parse::<Sku>().is_err());
        assert!("AB".parse::<Sku>().is_err());
        assert!("-ABC".parse::<Sku>().is_err());
        assert!("WH-BER-1".parse::<WarehouseId>().is_ok());
        assert!("WH BER".parse::<WarehouseId>().is_err());
        assert!(serde_json::from_value::<Sku>(json!("bad sku")).is_err());
        assert!("not-a-uuid".parse::<OrderId>().is_err());
    }

    #[test]
    fn slots_addresses_and_points_are_checked() {
        let t = Utc::now();
        assert!(DeliverySlot::new(t, t).is_err());
        assert!(DeliverySlot::new(t, t + chrono::Duration::hours(13)).is_err());
        assert!(DeliverySlot::new(t, t + chrono::Duration::hours(2)).is_ok());
        assert!(Address::new("A", "Main St 1", None, "Berlin", "10115", "de").is_err());
        assert!(Address::new(" ", "Main St 1", None, "Berlin", "10115", "DE").is_err());
        assert!(GeoPoint::new(91_000_000, 0).is_err());
        assert!("".parse::<Note>().is_err());
    }
}
