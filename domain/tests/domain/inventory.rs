use crate::common::*;
use chrono::Duration;
use cqrs_es::test::TestFramework;
use domain::inventory::{InventoryBatch, InventoryBatchCommand as C, InventoryError as E};
use event_schemas::inventory::*;

type Fx = TestFramework<InventoryBatch>;

fn expires() -> chrono::DateTime<chrono::Utc> {
    now() + Duration::days(5)
}

fn received() -> InventoryBatchEvent {
    BatchReceived {
        batch_id: batch_id(),
        sku: sku("APL-GALA"),
        warehouse_id: "WH-BER-1".parse().unwrap(),
        supplier_id: "SUP-ALTO-ADIGE".parse().unwrap(),
        quantity: g(10_000),
        received_at: now(),
        expires_at: expires(),
        procurement_cost: eur(1_000),
        cold_chain: ColdChain::Chilled,
    }
    .into()
}

fn reserved(order: domain::values::OrderId, grams: u64) -> InventoryBatchEvent {
    StockReserved {
        order_id: order,
        quantity: g(grams),
    }
    .into()
}

fn at_now() -> Fx {
    Fx::with(inventory_services_at(now()))
}

fn after_expiry() -> Fx {
    Fx::with(inventory_services_at(expires() + Duration::minutes(1)))
}

fn receive_cmd() -> C {
    C::ReceiveBatch {
        batch_id: batch_id(),
        sku: sku("APL-GALA"),
        warehouse_id: "WH-BER-1".parse().unwrap(),
        supplier_id: "SUP-ALTO-ADIGE".parse().unwrap(),
        quantity: g(10_000),
        expires_at: expires(),
        procurement_cost: eur(1_000),
        cold_chain: ColdChain::Chilled,
    }
}

#[test]
fn receiving_records_the_batch() {
    at_now()
        .given_no_previous_events()
        .when(receive_cmd())
        .then_expect_events(vec![received()]);
}

#[test]
fn a_batch_is_received_once() {
    at_now()
        .given(vec![received()])
        .when(receive_cmd())
        .then_expect_error(E::AlreadyReceived);
}

#[test]
fn a_batch_must_expire_after_it_is_received() {
    after_expiry()
        .given_no_previous_events()
        .when(receive_cmd())
        .then_expect_error(E::ExpiryNotAfterReceipt {
            received_at: expires() + Duration::minutes(1),
            expires_at: expires(),
        });
}

#[test]
fn only_catalogued_products_are_received_in_their_unit() {
    let C::ReceiveBatch {
        batch_id,
        warehouse_id,
        supplier_id,
        expires_at,
        procurement_cost,
        cold_chain,
        ..
    } = receive_cmd()
    else {
        unreachable!()
    };
    let with = |sku: &str, quantity| C::ReceiveBatch {
        batch_id,
        sku: sku.parse().unwrap(),
        warehouse_id: warehouse_id.clone(),
        supplier_id: supplier_id.clone(),
        quantity,
        expires_at,
        procurement_cost,
        cold_chain,
    };
    at_now()
        .given_no_previous_events()
        .when(with("NOT-SOLD", g(1_000)))
        .then_expect_error(E::UnknownSku(sku("NOT-SOLD")));
    // Pineapples are sold per unit, so they are received in units.
    at_now()
        .given_no_previous_events()
        .when(with("PIN-GOLD", g(1_000)))
        .then_expect_error(E::UnitMismatch {
            batch: domain::values::UnitOfMeasure::Unit,
            given: domain::values::UnitOfMeasure::Gram,
        });
}

#[test]
fn commands_on_an_unknown_batch_are_refused() {
    at_now()
        .given_no_previous_events()
        .when(C::RaiseExpiryWarning)
        .then_expect_error(E::NotReceived);
}

#[test]
fn reserving_sets_stock_aside() {
    at_now()
        .given(vec![received()])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(1_500),
        })
        .then_expect_events(vec![reserved(order_id(), 1_500)]);
}

#[test]
fn reserving_again_for_the_same_order_is_idempotent() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(1_500),
        })
        .then_expect_events(vec![]);
}

#[test]
fn reserving_a_larger_total_for_the_same_order_tops_it_up() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(2_000),
        })
        .then_expect_events(vec![reserved(order_id(), 500)]);
}

#[test]
fn topping_up_needs_the_difference_available() {
    at_now()
        .given(vec![
            received(),
            reserved(order_id(), 1_500),
            reserved(other_order_id(), 8_000),
        ])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(2_500),
        })
        .then_expect_error(E::InsufficientStock {
            requested: 1_000,
            available: 500,
        });
}

#[test]
fn reserving_a_smaller_total_for_the_same_order_is_refused() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(1_000),
        })
        .then_expect_error(E::ReservationMismatch {
            order_id: order_id(),
            existing: 1_500,
            requested: 1_000,
        });
}

#[test]
fn reserving_more_than_available_is_refused() {
    at_now()
        .given(vec![received(), reserved(other_order_id(), 9_000)])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(1_001),
        })
        .then_expect_error(E::InsufficientStock {
            requested: 1_001,
            available: 1_000,
        });
}

#[test]
fn reserving_in_the_wrong_unit_is_refused() {
    at_now()
        .given(vec![received()])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: u(1),
        })
        .then_expect_error(E::UnitMismatch {
            batch: domain::values::UnitOfMeasure::Gram,
            given: domain::values::UnitOfMeasure::Unit,
        });
}

#[test]
fn nothing_is_reserved_from_a_batch_past_its_expiry_even_before_it_is_marked() {
    after_expiry()
        .given(vec![received()])
        .when(C::ReserveStock {
            order_id: order_id(),
            quantity: g(1),
        })
        .then_expect_error(E::Expired);
}

#[test]
fn releasing_gives_the_whole_reservation_back() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::ReleaseReservation {
            order_id: order_id(),
            reason: ReleaseReason::OrderCancelled,
        })
        .then_expect_events(vec![ReservationReleased {
            order_id: order_id(),
            quantity: g(1_500),
            reason: ReleaseReason::OrderCancelled,
        }
        .into()]);
}

#[test]
fn releasing_nothing_is_idempotent() {
    at_now()
        .given(vec![received()])
        .when(C::ReleaseReservation {
            order_id: order_id(),
            reason: ReleaseReason::HoldExpired,
        })
        .then_expect_events(vec![]);
}

#[test]
fn releasing_is_allowed_after_expiry() {
    after_expiry()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::ReleaseReservation {
            order_id: order_id(),
            reason: ReleaseReason::BatchExpired,
        })
        .then_expect_events(vec![ReservationReleased {
            order_id: order_id(),
            quantity: g(1_500),
            reason: ReleaseReason::BatchExpired,
        }
        .into()]);
}

#[test]
fn picking_less_than_reserved_releases_the_rest() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::PickStock {
            order_id: order_id(),
            quantity: g(1_400),
        })
        .then_expect_events(vec![
            StockPicked {
                order_id: order_id(),
                quantity: g(1_400),
            }
            .into(),
            ReservationReleased {
                order_id: order_id(),
                quantity: g(100),
                reason: ReleaseReason::PickedShort,
            }
            .into(),
        ]);
}

#[test]
fn picking_twice_is_idempotent() {
    at_now()
        .given(vec![
            received(),
            reserved(order_id(), 1_500),
            StockPicked {
                order_id: order_id(),
                quantity: g(1_500),
            }
            .into(),
        ])
        .when(C::PickStock {
            order_id: order_id(),
            quantity: g(1_500),
        })
        .then_expect_events(vec![]);
}

#[test]
fn picking_needs_a_reservation() {
    at_now()
        .given(vec![received()])
        .when(C::PickStock {
            order_id: order_id(),
            quantity: g(1),
        })
        .then_expect_error(E::NoReservation {
            order_id: order_id(),
        });
}

#[test]
fn picking_more_than_reserved_is_refused() {
    at_now()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::PickStock {
            order_id: order_id(),
            quantity: g(1_501),
        })
        .then_expect_error(E::PickExceedsReservation {
            requested: 1_501,
            reserved: 1_500,
        });
}

#[test]
fn picking_after_expiry_is_refused() {
    after_expiry()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::PickStock {
            order_id: order_id(),
            quantity: g(1_500),
        })
        .then_expect_error(E::Expired);
}

#[test]
fn a_count_sets_on_hand() {
    at_now()
        .given(vec![received()])
        .when(C::AdjustStock {
            counted_on_hand: 9_800,
            note: Some(text("weekly count")),
        })
        .then_expect_events(vec![StockAdjusted {
            previous_on_hand: 10_000,
            counted_on_hand: 9_800,
            note: Some(text("weekly count")),
        }
        .into()]);
}

#[test]
fn a_count_below_what_is_reserved_is_refused() {
    at_now()
        .given(vec![received(), reserved(order_id(), 5_000)])
        .when(C::AdjustStock {
            counted_on_hand: 4_999,
            note: None,
        })
        .then_expect_error(E::CountBelowReserved {
            counted: 4_999,
            reserved: 5_000,
        });
}

#[test]
fn adjusting_after_expiry_is_refused() {
    after_expiry()
        .given(vec![received()])
        .when(C::AdjustStock {
            counted_on_hand: 1,
            note: None,
        })
        .then_expect_error(E::Expired);
}

#[test]
fn writing_off_records_reason_and_pro_rated_cost() {
    at_now()
        .given(vec![received()])
        .when(C::WriteOffStock {
            quantity: g(2_500),
            reason: WriteOffReason::Spoiled,
            note: None,
        })
        .then_expect_events(vec![StockWrittenOff {
            quantity: g(2_500),
            reason: WriteOffReason::Spoiled,
            cost: eur(250),
            note: None,
        }
        .into()]);
}

#[test]
fn writing_off_reserved_stock_is_refused() {
    at_now()
        .given(vec![received(), reserved(order_id(), 9_000)])
        .when(C::WriteOffStock {
            quantity: g(1_001),
            reason: WriteOffReason::Damaged,
            note: None,
        })
        .then_expect_error(E::InsufficientStock {
            requested: 1_001,
            available: 1_000,
        });
}

#[test]
fn writing_off_is_allowed_after_expiry() {
    after_expiry()
        .given(vec![
            received(),
            BatchExpired {
                expires_at: expires(),
                on_hand: 10_000,
                reserved: 0,
            }
            .into(),
        ])
        .when(C::WriteOffStock {
            quantity: g(10_000),
            reason: WriteOffReason::Expired,
            note: None,
        })
        .then_expect_events(vec![StockWrittenOff {
            quantity: g(10_000),
            reason: WriteOffReason::Expired,
            cost: eur(1_000),
            note: None,
        }
        .into()]);
}

#[test]
fn the_expiry_warning_is_raised_once() {
    at_now()
        .given(vec![received()])
        .when(C::RaiseExpiryWarning)
        .then_expect_events(vec![ExpiryWarningRaised {
            expires_at: expires(),
            on_hand: 10_000,
        }
        .into()]);
    at_now()
        .given(vec![
            received(),
            ExpiryWarningRaised {
                expires_at: expires(),
                on_hand: 10_000,
            }
            .into(),
        ])
        .when(C::RaiseExpiryWarning)
        .then_expect_events(vec![]);
}

#[test]
fn expiry_is_recorded_with_what_remains() {
    after_expiry()
        .given(vec![received(), reserved(order_id(), 1_500)])
        .when(C::MarkExpired)
        .then_expect_events(vec![BatchExpired {
            expires_at: expires(),
            on_hand: 10_000,
            reserved: 1_500,
        }
        .into()]);
}

#[test]
fn expiry_before_its_time_is_refused() {
    at_now()
        .given(vec![received()])
        .when(C::MarkExpired)
        .then_expect_error(E::NotYetExpired {
            expires_at: expires(),
        });
}

#[test]
fn expiring_twice_is_idempotent() {
    after_expiry()
        .given(vec![
            received(),
            BatchExpired {
                expires_at: expires(),
                on_hand: 10_000,
                reserved: 0,
            }
            .into(),
        ])
        .when(C::MarkExpired)
        .then_expect_events(vec![]);
}

#[test]
fn errors_have_stable_codes_and_kinds() {
    use domain::error::{DomainError, ErrorKind};
    assert_eq!(E::NotReceived.code(), "batch_not_found");
    assert_eq!(E::NotReceived.kind(), ErrorKind::NotFound);
    assert_eq!(E::Expired.kind(), ErrorKind::Conflict);
}

#[test]
fn no_warning_is_raised_once_the_batch_is_past_expiry() {
    // Found by the property test: a late timer must not warn about a batch
    // that has already expired by the clock.
    after_expiry()
        .given(vec![received()])
        .when(C::RaiseExpiryWarning)
        .then_expect_events(vec![]);
}

#[test]
fn a_batch_names_a_registered_warehouse_and_supplier_that_can_store_it() {
    let with = |warehouse: &str, supplier: &str, cold_chain: ColdChain| C::ReceiveBatch {
        batch_id: batch_id(),
        sku: sku("APL-GALA"),
        warehouse_id: warehouse.parse().unwrap(),
        supplier_id: supplier.parse().unwrap(),
        quantity: g(10_000),
        expires_at: expires(),
        procurement_cost: eur(1_000),
        cold_chain,
    };
    at_now()
        .given_no_previous_events()
        .when(with("WH-NOWHERE", "SUP-1", ColdChain::Chilled))
        .then_expect_error(E::UnknownWarehouse("WH-NOWHERE".parse().unwrap()));
    at_now()
        .given_no_previous_events()
        .when(with("WH-1", "SUP-NOBODY", ColdChain::Chilled))
        .then_expect_error(E::UnknownSupplier("SUP-NOBODY".parse().unwrap()));

    // A warehouse with an ambient zone only cannot take a chilled batch.
    let catalog = catalog();
    let mut ambient = domain::registry::sample_warehouse("WH-DRY");
    ambient.zones.retain(|z| z.storage == ColdChain::Ambient);
    catalog.register_warehouse(ambient);
    let services = domain::inventory::InventoryServices {
        clock: std::sync::Arc::new(domain::FixedClock::at(now())),
        catalog: std::sync::Arc::new(catalog),
    };
    Fx::with(services)
        .given_no_previous_events()
        .when(with("WH-DRY", "SUP-1", ColdChain::Chilled))
        .then_expect_error(E::StorageUnavailable {
            warehouse_id: "WH-DRY".parse().unwrap(),
            storage: ColdChain::Chilled,
        });
}

#[test]
fn an_expiry_more_than_a_year_after_receipt_is_refused() {
    let at = |expires_at| C::ReceiveBatch {
        batch_id: batch_id(),
        sku: sku("APL-GALA"),
        warehouse_id: "WH-BER-1".parse().unwrap(),
        supplier_id: "SUP-ALTO-ADIGE".parse().unwrap(),
        quantity: g(10_000),
        expires_at,
        procurement_cost: eur(1_000),
        cold_chain: ColdChain::Chilled,
    };
    let too_far =
        now() + Duration::days(domain::inventory::MAX_SHELF_LIFE_DAYS) + Duration::seconds(1);
    at_now()
        .given_no_previous_events()
        .when(at(too_far))
        .then_expect_error(E::ExpiryTooFar {
            received_at: now(),
            expires_at: too_far,
        });
    let last = now() + Duration::days(domain::inventory::MAX_SHELF_LIFE_DAYS);
    assert!(at_now()
        .given_no_previous_events()
        .when(at(last))
        .inspect_result()
        .is_ok());
}
