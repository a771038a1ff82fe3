//! GraphQL types, built from the read models' typed rows.

use async_graphql::{Enum, SimpleObject};
use event_schemas::values::{Currency, Quantity as DomainQuantity};
use projections::models::{
    ts, word, AvailabilityRow, BatchRow, DeliveryRow, OrderRow, PaymentRow, SpoilageRow,
    TimelineRow,
};

/// Integer minor units of an ISO 4217 currency.
#[derive(Debug, Clone, SimpleObject)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

impl Money {
    pub fn of(amount_minor: i64, currency: Currency) -> Money {
        Money {
            amount_minor,
            currency: currency.to_string(),
        }
    }
}

impl From<event_schemas::values::Money> for Money {
    fn from(m: event_schemas::values::Money) -> Money {
        Money::of(m.amount_minor(), m.currency())
    }
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

impl From<domain::Category> for Category {
    fn from(c: domain::Category) -> Category {
        match c {
            domain::Category::Fruit => Category::Fruit,
            domain::Category::Vegetable => Category::Vegetable,
            domain::Category::Herb => Category::Herb,
            domain::Category::Mushroom => Category::Mushroom,
            domain::Category::Organic => Category::Organic,
            domain::Category::Imported => Category::Imported,
        }
    }
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

impl From<domain::Nutrition> for Nutrition {
    fn from(n: domain::Nutrition) -> Nutrition {
        Nutrition {
            energy_kcal: n.energy_kcal.into(),
            protein_mg: n.protein_mg.into(),
            carbohydrate_mg: n.carbohydrate_mg.into(),
            sugar_mg: n.sugar_mg.into(),
            fat_mg: n.fat_mg.into(),
            fibre_mg: n.fibre_mg.into(),
        }
    }
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

impl From<AvailabilityRow> for Availability {
    fn from(r: AvailabilityRow) -> Self {
        Availability {
            warehouse_id: r.warehouse_id.to_string(),
            uom: word(&r.uom),
            on_hand: r.on_hand as i64,
            reserved: r.reserved as i64,
            available: r.on_hand as i64 - r.reserved as i64,
            earliest_expiry: r.earliest.as_ref().map(ts),
        }
    }
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

impl From<domain::Product> for Product {
    fn from(p: domain::Product) -> Self {
        Product {
            sku: p.sku.to_string(),
            name: p.name.as_str().to_string(),
            categories: p.categories.into_iter().map(Category::from).collect(),
            price: p.price.amount.into(),
            per: word(&p.price.per),
            origin: p.origin,
            nutrition: p.nutrition.into(),
            availability: Vec::new(),
        }
    }
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

impl From<BatchRow> for Batch {
    fn from(r: BatchRow) -> Self {
        Batch {
            batch_id: r.batch_id.to_string(),
            sku: r.sku.to_string(),
            warehouse_id: r.warehouse_id.to_string(),
            supplier_id: r.supplier_id.to_string(),
            uom: word(&r.uom),
            received: r.received as i64,
            on_hand: r.on_hand as i64,
            reserved: r.reserved as i64,
            available: r.on_hand as i64 - r.reserved as i64,
            picked: r.picked as i64,
            written_off: r.written_off as i64,
            received_at: ts(&r.received_at),
            expires_at: ts(&r.expires_at),
            expired: r.expired,
            expiry_warning_raised: r.warned,
            cold_chain: word(&r.cold_chain),
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

impl From<SpoilageRow> for SpoilageEntry {
    fn from(r: SpoilageRow) -> Self {
        SpoilageEntry {
            position: r.position as i64,
            batch_id: r.batch_id.to_string(),
            sku: r.sku.to_string(),
            warehouse_id: r.warehouse_id.to_string(),
            uom: word(&r.uom),
            quantity: r.quantity as i64,
            reason: word(&r.reason),
            cost: Money::of(r.cost_minor, r.currency),
            note: r.note,
            occurred_at: ts(&r.occurred_at),
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

impl From<TimelineRow> for TimelineEntry {
    fn from(r: TimelineRow) -> Self {
        TimelineEntry {
            position: r.position as i64,
            event_type: r.event_type,
            status: r.status,
            occurred_at: ts(&r.occurred_at),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Quantity {
    pub uom: String,
    pub amount: i64,
}

impl From<DomainQuantity> for Quantity {
    fn from(q: DomainQuantity) -> Self {
        Quantity {
            uom: word(&q.uom()),
            amount: q.amount() as i64,
        }
    }
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

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            delivery_id: r.delivery_id.to_string(),
            order_id: r.order_id.to_string(),
            status: r.status,
            rider_id: r.rider_id.map(|r| r.to_string()),
            last_location: match (r.lat_micro, r.lon_micro, r.located_at) {
                (Some(lat), Some(lon), Some(at)) => Some(Location {
                    lat_micro: lat,
                    lon_micro: lon,
                    reported_at: ts(&at),
                }),
                _ => None,
            },
            slot_starts_at: ts(&r.slot_starts_at),
            slot_ends_at: ts(&r.slot_ends_at),
            cold_chain: r.cold_chain,
            attempts_failed: r.attempts_failed as i64,
            proof: r.proof,
            updated_at: ts(&r.updated_at),
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

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Self {
        let m = |amount| Money::of(amount, r.currency);
        Payment {
            payment_id: r.payment_id.to_string(),
            order_id: r.order_id.to_string(),
            method: word(&r.method),
            gateway: r.gateway.clone(),
            status: r.status.clone(),
            due: m(r.due_minor),
            authorized: m(r.authorized_minor),
            captured: m(r.captured_minor),
            refunded: m(r.refunded_minor),
            collected: m(r.collected_minor),
            failure_code: r.failure_code.clone(),
        }
    }
}

/// An order as the read model holds it.
#[derive(Debug, Clone)]
pub struct Order {
    pub row: OrderRow,
}

impl Order {
    /// Its keyset position among a customer's orders.
    pub fn cursor_key(&self) -> String {
        format!("{}|{}", ts(&self.row.placed_at), self.row.order_id)
    }

    pub fn money(&self, amount_minor: Option<i64>) -> Option<Money> {
        amount_minor.map(|a| Money::of(a, self.row.currency))
    }

    pub fn order_lines(&self) -> Vec<OrderLine> {
        self.row
            .lines
            .iter()
            .map(|l| OrderLine {
                cancelled: self.row.line_cancelled(&l.sku),
                sku: l.sku.to_string(),
                quantity: l.quantity.into(),
                unit_price: l.unit_price.amount.into(),
                per: word(&l.unit_price.per),
            })
            .collect()
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct PostalAddress {
    pub recipient: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

impl From<&event_schemas::values::Address> for PostalAddress {
    fn from(a: &event_schemas::values::Address) -> Self {
        PostalAddress {
            recipient: a.recipient().into(),
            line1: a.line1().into(),
            line2: a.line2().map(Into::into),
            city: a.city().into(),
            postal_code: a.postal_code().into(),
            country: a.country().into(),
        }
    }
}

/// A storage zone and what it keeps (`ambient`, `chilled`, `frozen`).
#[derive(Debug, Clone, SimpleObject)]
pub struct Zone {
    pub code: String,
    pub storage: String,
}

/// A registered warehouse.
#[derive(Debug, Clone, SimpleObject)]
pub struct Warehouse {
    pub id: String,
    pub name: String,
    pub address: PostalAddress,
    pub zones: Vec<Zone>,
    /// The storage its zones keep, each once: a batch needing another is
    /// not received here.
    pub cold_chain: Vec<String>,
}

impl From<domain::Warehouse> for Warehouse {
    fn from(w: domain::Warehouse) -> Self {
        let mut cold_chain: Vec<String> = Vec::new();
        for z in &w.zones {
            let s = word(&z.storage);
            if !cold_chain.contains(&s) {
                cold_chain.push(s);
            }
        }
        Warehouse {
            id: w.id.to_string(),
            name: w.name.to_string(),
            address: (&w.address).into(),
            zones: w
                .zones
                .iter()
                .map(|z| Zone {
                    code: z.code.to_string(),
                    storage: word(&z.storage),
                })
                .collect(),
            cold_chain,
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// A registered supplier.
#[derive(Debug, Clone, SimpleObject)]
pub struct Supplier {
    pub id: String,
    pub name: String,
    pub contact: Contact,
}

impl From<domain::Supplier> for Supplier {
    fn from(s: domain::Supplier) -> Self {
        Supplier {
            id: s.id.to_string(),
            name: s.name.to_string(),
            contact: Contact {
                name: s.contact.name.to_string(),
                email: s.contact.email,
                phone: s.contact.phone,
            },
        }
    }
}
