//! GraphQL types, built from read-model rows.

use async_graphql::{Enum, SimpleObject};
use store::sql::JsonRow;

fn s(r: &JsonRow, k: &str) -> String {
    r.get(k)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}
fn so(r: &JsonRow, k: &str) -> Option<String> {
    r.get(k).and_then(|v| v.as_str()).map(str::to_string)
}
fn i(r: &JsonRow, k: &str) -> i64 {
    r.get(k).and_then(|v| v.as_i64()).unwrap_or_default()
}
fn io(r: &JsonRow, k: &str) -> Option<i64> {
    r.get(k).and_then(|v| v.as_i64())
}

/// Integer minor units of an ISO 4217 currency.
#[derive(Debug, Clone, SimpleObject)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Category {
    Fruit,
    Vegetable,
    Herb,
    Mushroom,
    Organic,
    Imported,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Nutrition {
    pub energy_kcal: i64,
    pub protein_mg: i64,
    pub carbohydrate_mg: i64,
    pub sugar_mg: i64,
    pub fat_mg: i64,
    pub fibre_mg: i64,
}

/// Stock of one SKU in one warehouse, from batches not expired.
#[derive(Debug, Clone, SimpleObject)]
pub struct Availability {
    pub warehouse_id: String,
    /// `gram` or `unit`.
    pub uom: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    /// The earliest expiry among batches with stock available.
    pub earliest_expiry: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub categories: Vec<Category>,
    pub price: Money,
    /// `per_kg` or `per_unit`.
    pub per: String,
    pub origin: String,
    pub nutrition: Nutrition,
    pub availability: Vec<Availability>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Batch {
    pub batch_id: String,
    pub sku: String,
    pub warehouse_id: String,
    pub supplier_id: String,
    pub uom: String,
    pub received: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub picked: i64,
    pub written_off: i64,
    pub received_at: String,
    pub expires_at: String,
    pub expired: bool,
    pub expiry_warning_raised: bool,
    pub cold_chain: String,
}

impl From<&JsonRow> for Batch {
    fn from(r: &JsonRow) -> Self {
        Batch {
            batch_id: s(r, "batch_id"),
            sku: s(r, "sku"),
            warehouse_id: s(r, "warehouse_id"),
            supplier_id: s(r, "supplier_id"),
            uom: s(r, "uom"),
            received: i(r, "received"),
            on_hand: i(r, "on_hand"),
            reserved: i(r, "reserved"),
            available: i(r, "on_hand") - i(r, "reserved"),
            picked: i(r, "picked"),
            written_off: i(r, "written_off"),
            received_at: s(r, "received_at"),
            expires_at: s(r, "expires_at"),
            expired: i(r, "expired") != 0,
            expiry_warning_raised: i(r, "warned") != 0,
            cold_chain: s(r, "cold_chain"),
        }
    }
}

/// One SKU in one warehouse, its batches first-expiring first (FEFO).
#[derive(Debug, Clone, SimpleObject)]
pub struct StockLevel {
    pub sku: String,
    pub warehouse_id: String,
    pub uom: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub batches: Vec<Batch>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct SpoilageEntry {
    pub position: i64,
    pub batch_id: String,
    pub sku: String,
    pub warehouse_id: String,
    pub uom: String,
    pub quantity: i64,
    /// spoiled, damaged, expired, quality
    pub reason: String,
    pub cost: Money,
    pub note: Option<String>,
    pub occurred_at: String,
}

impl From<&JsonRow> for SpoilageEntry {
    fn from(r: &JsonRow) -> Self {
        SpoilageEntry {
            position: i(r, "position"),
            batch_id: s(r, "batch_id"),
            sku: s(r, "sku"),
            warehouse_id: s(r, "warehouse_id"),
            uom: s(r, "uom"),
            quantity: i(r, "quantity"),
            reason: s(r, "reason"),
            cost: Money {
                amount_minor: i(r, "cost_minor"),
                currency: s(r, "currency"),
            },
            note: so(r, "note"),
            occurred_at: s(r, "occurred_at"),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct TimelineEntry {
    pub position: i64,
    pub event_type: String,
    /// The status the order was in after this event.
    pub status: String,
    pub occurred_at: String,
}

impl From<&JsonRow> for TimelineEntry {
    fn from(r: &JsonRow) -> Self {
        TimelineEntry {
            position: i(r, "position"),
            event_type: s(r, "event_type"),
            status: s(r, "status"),
            occurred_at: s(r, "occurred_at"),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Quantity {
    pub uom: String,
    pub amount: i64,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    /// `per_kg` or `per_unit`.
    pub per: String,
    /// Cancelled before packing (the order went on without it).
    pub cancelled: bool,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Location {
    pub lat_micro: i64,
    pub lon_micro: i64,
    pub reported_at: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Delivery {
    pub delivery_id: String,
    pub order_id: String,
    pub status: String,
    pub rider_id: Option<String>,
    pub last_location: Option<Location>,
    pub slot_starts_at: String,
    pub slot_ends_at: String,
    pub cold_chain: bool,
    pub attempts_failed: i64,
    pub proof: Option<String>,
    pub updated_at: String,
}

impl From<&JsonRow> for Delivery {
    fn from(r: &JsonRow) -> Self {
        Delivery {
            delivery_id: s(r, "delivery_id"),
            order_id: s(r, "order_id"),
            status: s(r, "status"),
            rider_id: so(r, "rider_id"),
            last_location: match (io(r, "lat_micro"), io(r, "lon_micro"), so(r, "located_at")) {
                (Some(lat), Some(lon), Some(at)) => Some(Location {
                    lat_micro: lat,
                    lon_micro: lon,
                    reported_at: at,
                }),
                _ => None,
            },
            slot_starts_at: s(r, "slot_starts_at"),
            slot_ends_at: s(r, "slot_ends_at"),
            cold_chain: i(r, "cold_chain") != 0,
            attempts_failed: i(r, "attempts_failed"),
            proof: so(r, "proof"),
            updated_at: s(r, "updated_at"),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    /// card or cash_on_delivery
    pub method: String,
    pub gateway: Option<String>,
    pub status: String,
    pub due: Money,
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    pub collected: Money,
    pub failure_code: Option<String>,
}

impl From<&JsonRow> for Payment {
    fn from(r: &JsonRow) -> Self {
        let m = |k: &str| Money {
            amount_minor: i(r, k),
            currency: s(r, "currency"),
        };
        Payment {
            payment_id: s(r, "payment_id"),
            order_id: s(r, "order_id"),
            method: s(r, "method"),
            gateway: so(r, "gateway"),
            status: s(r, "status"),
            due: m("due_minor"),
            authorized: m("authorized_minor"),
            captured: m("captured_minor"),
            refunded: m("refunded_minor"),
            collected: m("collected_minor"),
            failure_code: so(r, "failure_code"),
        }
    }
}

/// An order as the read model holds it.
#[derive(Debug, Clone)]
pub struct Order {
    pub row: JsonRow,
}

impl Order {
    pub fn key(&self) -> String {
        s(&self.row, "order_id")
    }
    pub fn customer(&self) -> String {
        s(&self.row, "customer_id")
    }
    pub fn status_text(&self) -> String {
        s(&self.row, "status")
    }
    pub fn placed(&self) -> String {
        s(&self.row, "placed_at")
    }
    pub fn money(&self, k: &str) -> Option<Money> {
        io(&self.row, k).map(|amount_minor| Money {
            amount_minor,
            currency: s(&self.row, "currency"),
        })
    }
    pub fn field(&self, k: &str) -> String {
        s(&self.row, k)
    }
    pub fn opt(&self, k: &str) -> Option<String> {
        so(&self.row, k)
    }
    pub fn int(&self, k: &str) -> i64 {
        i(&self.row, k)
    }
    pub fn parsed_lines(&self) -> Vec<OrderLine> {
        let lines: Vec<serde_json::Value> =
            serde_json::from_str(&s(&self.row, "lines")).unwrap_or_default();
        let cancelled = s(&self.row, "cancelled_skus");
        let cancelled: Vec<&str> = cancelled.split(',').filter(|s| !s.is_empty()).collect();
        lines
            .iter()
            .map(|l| OrderLine {
                cancelled: cancelled.contains(&l["sku"].as_str().unwrap_or_default()),
                sku: l["sku"].as_str().unwrap_or_default().into(),
                quantity: Quantity {
                    uom: l["quantity"]["uom"].as_str().unwrap_or_default().into(),
                    amount: l["quantity"]["amount"].as_i64().unwrap_or_default(),
                },
                unit_price: Money {
                    amount_minor: l["unit_price"]["amount"]["amount_minor"]
                        .as_i64()
                        .unwrap_or_default(),
                    currency: l["unit_price"]["amount"]["currency"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                },
                per: l["unit_price"]["per"].as_str().unwrap_or_default().into(),
            })
            .collect()
    }
}
