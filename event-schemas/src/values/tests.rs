use super::*;
use std::str::FromStr;

use chrono::Utc;
use serde_json::json;

#[test]
fn money_rejects_negative_and_unknown_currency() {
    assert!(
        serde_json::from_value::<Money>(json!({"amount_minor": -1, "currency": "EUR"})).is_err()
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
