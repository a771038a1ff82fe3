//! Fixtures shared by the aggregate tests.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::catalog::{Category, InMemoryCatalog, Nutrition, Product};
use domain::clock::FixedClock;
use domain::inventory::InventoryServices;
use domain::order::OrderServices;
use domain::registry::{sample_supplier, sample_warehouse};
use domain::values::*;

pub fn now() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR).unwrap()
}

pub fn g(n: u64) -> Quantity {
    Quantity::grams(n).unwrap()
}

pub fn u(n: u64) -> Quantity {
    Quantity::units(n).unwrap()
}

pub fn sku(s: &str) -> Sku {
    s.parse().unwrap()
}

pub fn text<const N: usize>(s: &str) -> Text<N> {
    s.parse().unwrap()
}

pub fn catalog() -> InMemoryCatalog {
    let catalog = InMemoryCatalog::new([
        Product::new(
            sku("APL-GALA"),
            "Gala apples",
            vec![Category::Fruit],
            eur(299),
            PricingUnit::PerKg,
            "IT",
            Nutrition {
                energy_kcal: 52,
                protein_mg: 300,
                carbohydrate_mg: 13_800,
                sugar_mg: 10_400,
                fat_mg: 200,
                fibre_mg: 2_400,
            },
        )
        .unwrap(),
        Product::new(
            sku("PIN-GOLD"),
            "Golden pineapple",
            vec![Category::Fruit, Category::Imported],
            eur(349),
            PricingUnit::PerUnit,
            "CR",
            Nutrition::default(),
        )
        .unwrap(),
        Product::new(
            sku("USD-LIME"),
            "Limes (US store)",
            vec![Category::Fruit],
            Money::new(99, Currency::USD).unwrap(),
            PricingUnit::PerUnit,
            "MX",
            Nutrition::default(),
        )
        .unwrap(),
    ]);
    for w in ["WH-BER-1", "WH-1"] {
        catalog.register_warehouse(sample_warehouse(w));
    }
    for id in ["SUP-ALTO-ADIGE", "SUP-1"] {
        catalog.register_supplier(sample_supplier(id));
    }
    catalog
}

pub fn order_services() -> OrderServices {
    OrderServices {
        catalog: Arc::new(catalog()),
        clock: Arc::new(FixedClock::at(now())),
        slot_horizon: Duration::days(14),
    }
}

pub fn inventory_services_at(t: DateTime<Utc>) -> InventoryServices {
    InventoryServices {
        clock: Arc::new(FixedClock::at(t)),
        catalog: Arc::new(catalog()),
    }
}

pub fn slot() -> DeliverySlot {
    DeliverySlot::new(now() + Duration::hours(26), now() + Duration::hours(28)).unwrap()
}

pub fn address() -> Address {
    Address::new(
        "Ada Lovelace",
        "Invalidenstraße 1",
        None,
        "Berlin",
        "10115",
        "DE",
    )
    .unwrap()
}

pub fn order_id() -> OrderId {
    "0192f3a4-5b6c-7d8e-9f00-112233445566".parse().unwrap()
}

pub fn other_order_id() -> OrderId {
    "0192f3a4-5b6c-7d8e-9f00-aabbccddeeff".parse().unwrap()
}

pub fn batch_id() -> BatchId {
    "0192f3a4-0000-7000-8000-0000000b0001".parse().unwrap()
}

pub fn payment_id() -> PaymentId {
    "0192f3a4-0000-7000-8000-00000000aa01".parse().unwrap()
}

pub fn delivery_id() -> DeliveryId {
    "0192f3a4-0000-7000-8000-00000000dd01".parse().unwrap()
}

pub fn customer_id() -> CustomerId {
    "0192f3a4-0000-7000-8000-00000000c0de".parse().unwrap()
}

pub fn rider_id() -> RiderId {
    "0192f3a4-0000-7000-8000-0000000041de".parse().unwrap()
}

pub fn other_rider_id() -> RiderId {
    "0192f3a4-0000-7000-8000-0000000041df".parse().unwrap()
}
