//! Old history, committed as fixtures, reads back as the current version.

use cqrs_es::persist::SerializedEvent;
use cqrs_es::DomainEvent;
use event_schemas::order::{OrderEvent, PaymentMethod};
use event_schemas::upcast::{cqrs_upcasters, upcast};
use event_schemas::values::PricingUnit;

fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../../fixtures/OrderPlaced.v1.0.json")).unwrap()
}

fn check(event: OrderEvent) {
    let OrderEvent::OrderPlaced(placed) = &event else {
        panic!("not OrderPlaced: {event:?}")
    };
    assert_eq!(event.event_version(), "2.0");
    assert_eq!(placed.lines[0].unit_price.per, PricingUnit::PerKg);
    assert_eq!(placed.lines[0].unit_price.amount.amount_minor(), 299);
    assert_eq!(placed.lines[1].unit_price.per, PricingUnit::PerUnit);
    assert_eq!(placed.payment_method, PaymentMethod::Card);
    // 1.5 kg at 2.99 = 4.49 (half-up), 2 x 3.49 = 6.98
    assert_eq!(placed.total().unwrap().amount_minor(), 449 + 698);
}

#[test]
fn v1_order_placed_upcasts_to_v2() {
    let (version, payload) = upcast("OrderPlaced", "1.0".into(), fixture()).unwrap();
    assert_eq!(version, "2.0");
    check(serde_json::from_value(payload).unwrap());
}

#[test]
fn v1_order_placed_upcasts_through_cqrs_es() {
    let stored = SerializedEvent::new(
        "0192f3a4-5b6c-7d8e-9f00-112233445566".into(),
        1,
        "Order".into(),
        "OrderPlaced".into(),
        "1.0".into(),
        fixture(),
        serde_json::json!({}),
    );
    let upcasters = cqrs_upcasters();
    let up = upcasters
        .iter()
        .find(|u| u.can_upcast("OrderPlaced", "1.0"))
        .expect("an upcaster for OrderPlaced 1.0");
    assert!(!up.can_upcast("OrderPlaced", "2.0"));
    let event = up.upcast(stored);
    assert_eq!(event.event_version, "2.0");
    check(serde_json::from_value(event.payload).unwrap());
}

#[test]
fn current_versions_pass_through_untouched() {
    let v2 = upcast("OrderPlaced", "1.0".into(), fixture()).unwrap().1;
    let (version, again) = upcast("OrderPlaced", "2.0".into(), v2.clone()).unwrap();
    assert_eq!(version, "2.0");
    assert_eq!(again, v2);
}

#[test]
fn a_v1_that_is_not_v1_is_an_error_not_a_guess() {
    let mut broken = fixture();
    broken["OrderPlaced"]["lines"][0]["quantity"]["amount"] = serde_json::json!(0);
    assert!(upcast("OrderPlaced", "1.0".into(), broken).is_err());
}
