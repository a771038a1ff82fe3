use crate::common::*;
use cqrs_es::test::TestFramework;
use domain::order::{
    transition, LineRequest, Order, OrderAction, OrderCommand as C, OrderError as E, OrderStatus,
    PackRequest, TRANSITIONS,
};
use domain::values::*;
use event_schemas::order::*;

type Fx = TestFramework<Order>;

fn fx() -> Fx {
    Fx::with(order_services())
}

fn place_cmd(method: PaymentMethod) -> C {
    C::PlaceOrder {
        order_id: order_id(),
        customer_id: customer_id(),
        warehouse_id: "WH-BER-1".parse().unwrap(),
        lines: vec![
            LineRequest {
                sku: sku("APL-GALA"),
                quantity: g(1_500),
            },
            LineRequest {
                sku: sku("PIN-GOLD"),
                quantity: u(2),
            },
        ],
        delivery_slot: slot(),
        delivery_address: address(),
        payment_method: method,
    }
}

fn placed_with(method: PaymentMethod) -> OrderEvent {
    OrderPlaced {
        order_id: order_id(),
        customer_id: customer_id(),
        warehouse_id: "WH-BER-1".parse().unwrap(),
        lines: vec![
            OrderLine {
                sku: sku("APL-GALA"),
                quantity: g(1_500),
                unit_price: UnitPrice {
                    amount: eur(299),
                    per: PricingUnit::PerKg,
                },
            },
            OrderLine {
                sku: sku("PIN-GOLD"),
                quantity: u(2),
                unit_price: UnitPrice {
                    amount: eur(349),
                    per: PricingUnit::PerUnit,
                },
            },
        ],
        delivery_slot: slot(),
        delivery_address: address(),
        payment_method: method,
    }
    .into()
}

fn placed() -> OrderEvent {
    placed_with(PaymentMethod::Card)
}

const TOTAL: i64 = 449 + 698;

fn allocations() -> Vec<Allocation> {
    vec![
        Allocation {
            sku: sku("APL-GALA"),
            batch_id: batch_id(),
            quantity: g(1_000),
        },
        Allocation {
            sku: sku("APL-GALA"),
            batch_id: "0192f3a4-0000-7000-8000-0000000b0002".parse().unwrap(),
            quantity: g(500),
        },
        Allocation {
            sku: sku("PIN-GOLD"),
            batch_id: "0192f3a4-0000-7000-8000-0000000b0003".parse().unwrap(),
            quantity: u(2),
        },
    ]
}

fn allocated() -> OrderEvent {
    AllocationConfirmed {
        allocations: allocations(),
    }
    .into()
}

fn paid() -> OrderEvent {
    OrderPaid {
        payment_id: payment_id(),
        amount: eur(TOTAL),
    }
    .into()
}

fn pack_cmd(grams: u64, units: u64) -> C {
    C::PackOrder {
        lines: vec![
            PackRequest {
                sku: sku("APL-GALA"),
                packed_quantity: g(grams),
            },
            PackRequest {
                sku: sku("PIN-GOLD"),
                packed_quantity: u(units),
            },
        ],
    }
}

fn packed() -> OrderEvent {
    OrderPacked {
        lines: vec![
            PackedLine {
                sku: sku("APL-GALA"),
                packed_quantity: g(1_420),
                price: eur(425),
            },
            PackedLine {
                sku: sku("PIN-GOLD"),
                packed_quantity: u(2),
                price: eur(698),
            },
        ],
    }
    .into()
}

fn shipped() -> OrderEvent {
    OrderShipped {
        delivery_id: delivery_id(),
    }
    .into()
}

fn cancelled() -> OrderEvent {
    OrderCancelled {
        reason: CancellationReason::CustomerRequest,
        note: None,
    }
    .into()
}

#[test]
fn placing_prices_lines_from_the_catalogue() {
    fx().given_no_previous_events()
        .when(place_cmd(PaymentMethod::Card))
        .then_expect_events(vec![placed()]);
}

#[test]
fn an_order_is_placed_once() {
    fx().given(vec![placed()])
        .when(place_cmd(PaymentMethod::Card))
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Created),
            action: OrderAction::Place,
        });
}

fn place_with_lines(lines: Vec<LineRequest>) -> C {
    let C::PlaceOrder {
        order_id,
        customer_id,
        warehouse_id,
        delivery_slot,
        delivery_address,
        payment_method,
        ..
    } = place_cmd(PaymentMethod::Card)
    else {
        unreachable!()
    };
    C::PlaceOrder {
        order_id,
        customer_id,
        warehouse_id,
        lines,
        delivery_slot,
        delivery_address,
        payment_method,
    }
}

#[test]
fn placing_rejects_bad_lines() {
    fx().given_no_previous_events()
        .when(place_with_lines(vec![]))
        .then_expect_error(E::NoLines);
    fx().given_no_previous_events()
        .when(place_with_lines(vec![LineRequest {
            sku: sku("NOT-SOLD"),
            quantity: u(1),
        }]))
        .then_expect_error(E::UnknownSku(sku("NOT-SOLD")));
    fx().given_no_previous_events()
        .when(place_with_lines(vec![LineRequest {
            sku: sku("APL-GALA"),
            quantity: u(3),
        }]))
        .then_expect_error(E::UnitMismatch {
            sku: sku("APL-GALA"),
            expected: UnitOfMeasure::Gram,
            given: UnitOfMeasure::Unit,
        });
    let line = LineRequest {
        sku: sku("PIN-GOLD"),
        quantity: u(1),
    };
    fx().given_no_previous_events()
        .when(place_with_lines(vec![line.clone(), line.clone()]))
        .then_expect_error(E::DuplicateSku(sku("PIN-GOLD")));
    fx().given_no_previous_events()
        .when(place_with_lines(vec![
            line.clone(),
            LineRequest {
                sku: sku("USD-LIME"),
                quantity: u(1),
            },
        ]))
        .then_expect_error(E::MixedCurrencies);
    fx().given_no_previous_events()
        .when(place_with_lines(vec![line; 101]))
        .then_expect_error(E::TooManyLines);
}

/// The card order of `place_cmd`, for `slot` at `warehouse`.
fn place_at(slot: DeliverySlot, warehouse: WarehouseId) -> C {
    let mut cmd = place_cmd(PaymentMethod::Card);
    if let C::PlaceOrder {
        delivery_slot,
        warehouse_id,
        ..
    } = &mut cmd
    {
        *delivery_slot = slot;
        *warehouse_id = warehouse;
    }
    cmd
}

fn berlin() -> WarehouseId {
    "WH-BER-1".parse().unwrap()
}

#[test]
fn placing_for_a_slot_that_has_started_is_refused() {
    let past = DeliverySlot::new(now() - chrono::Duration::hours(1), now()).unwrap();
    fx().given_no_previous_events()
        .when(place_at(past, berlin()))
        .then_expect_error(E::SlotInPast);
}

#[test]
fn commands_on_a_missing_order_say_not_found() {
    use domain::error::{DomainError, ErrorKind};
    let err = fx()
        .given_no_previous_events()
        .when(C::ShipOrder {
            delivery_id: delivery_id(),
        })
        .inspect_result()
        .unwrap_err();
    assert_eq!(err.code(), "order_not_found");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn allocation_must_cover_every_line_exactly() {
    fx().given(vec![placed()])
        .when(C::ConfirmAllocation {
            allocations: allocations(),
        })
        .then_expect_events(vec![allocated()]);
    let mut short = allocations();
    short.pop();
    fx().given(vec![placed()])
        .when(C::ConfirmAllocation { allocations: short })
        .then_expect_error(E::AllocationMismatch);
    let mut extra = allocations();
    extra.push(Allocation {
        sku: sku("USD-LIME"),
        batch_id: batch_id(),
        quantity: u(1),
    });
    fx().given(vec![placed()])
        .when(C::ConfirmAllocation { allocations: extra })
        .then_expect_error(E::AllocationMismatch);
}

#[test]
fn paying_takes_the_order_to_paid() {
    fx().given(vec![placed(), allocated()])
        .when(C::MarkPaid {
            payment_id: payment_id(),
            amount: eur(TOTAL),
        })
        .then_expect_events(vec![paid()]);
}

#[test]
fn paying_the_wrong_amount_is_refused() {
    fx().given(vec![placed()])
        .when(C::MarkPaid {
            payment_id: payment_id(),
            amount: eur(TOTAL - 1),
        })
        .then_expect_error(E::PaymentAmountMismatch {
            expected: eur(TOTAL),
            given: eur(TOTAL - 1),
        });
}

#[test]
fn cash_on_delivery_orders_are_not_paid_online() {
    fx().given(vec![placed_with(PaymentMethod::CashOnDelivery)])
        .when(C::MarkPaid {
            payment_id: payment_id(),
            amount: eur(TOTAL),
        })
        .then_expect_error(E::CashOnDeliveryNotPaidOnline);
}

#[test]
fn packing_records_actual_weights_and_prices() {
    fx().given(vec![placed(), allocated(), paid()])
        .when(pack_cmd(1_420, 2))
        .then_expect_events(vec![packed()]);
}

#[test]
fn cash_on_delivery_orders_pack_without_payment() {
    let events = fx()
        .given(vec![
            placed_with(PaymentMethod::CashOnDelivery),
            allocated(),
        ])
        .when(pack_cmd(1_500, 2))
        .inspect_result()
        .unwrap();
    assert!(matches!(events[..], [OrderEvent::OrderPacked(_)]));
}

#[test]
fn card_orders_cannot_pack_before_payment() {
    fx().given(vec![placed(), allocated()])
        .when(pack_cmd(1_500, 2))
        .then_expect_error(E::NotPaid);
}

#[test]
fn packing_needs_allocated_stock() {
    fx().given(vec![placed_with(PaymentMethod::CashOnDelivery)])
        .when(pack_cmd(1_500, 2))
        .then_expect_error(E::NotAllocated);
}

#[test]
fn packing_more_than_ordered_is_refused() {
    fx().given(vec![placed(), allocated(), paid()])
        .when(pack_cmd(1_651, 2))
        .then_expect_error(E::PackMismatch(
            "APL-GALA: 1651 packed, at most 1650 allowed".into(),
        ));
    fx().given(vec![placed(), allocated(), paid()])
        .when(pack_cmd(1_500, 3))
        .then_expect_error(E::PackMismatch(
            "PIN-GOLD: 3 packed, at most 2 allowed".into(),
        ));
    fx().given(vec![placed(), allocated(), paid()])
        .when(C::PackOrder {
            lines: vec![PackRequest {
                sku: sku("APL-GALA"),
                packed_quantity: g(1_500),
            }],
        })
        .then_expect_error(E::PackMismatch("1 lines packed, 2 ordered".into()));
}

#[test]
fn ship_and_deliver() {
    fx().given(vec![placed(), allocated(), paid(), packed()])
        .when(C::ShipOrder {
            delivery_id: delivery_id(),
        })
        .then_expect_events(vec![shipped()]);
    fx().given(vec![placed(), allocated(), paid(), packed(), shipped()])
        .when(C::MarkDelivered {
            delivery_id: delivery_id(),
        })
        .then_expect_events(vec![OrderDelivered {
            delivery_id: delivery_id(),
        }
        .into()]);
}

#[test]
fn delivering_with_another_delivery_is_refused() {
    let other: DeliveryId = "0192f3a4-0000-7000-8000-00000000dd99".parse().unwrap();
    fx().given(vec![placed(), allocated(), paid(), packed(), shipped()])
        .when(C::MarkDelivered { delivery_id: other })
        .then_expect_error(E::WrongDelivery { given: other });
}

#[test]
fn shipping_before_packing_is_an_illegal_transition() {
    fx().given(vec![placed(), allocated(), paid()])
        .when(C::ShipOrder {
            delivery_id: delivery_id(),
        })
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Paid),
            action: OrderAction::Ship,
        });
}

#[test]
fn cancelling_is_allowed_only_before_shipping() {
    for given in [
        vec![placed()],
        vec![placed(), allocated(), paid()],
        vec![placed(), allocated(), paid(), packed()],
    ] {
        fx().given(given)
            .when(C::CancelOrder {
                reason: CancellationReason::CustomerRequest,
                note: None,
            })
            .then_expect_events(vec![cancelled()]);
    }
    fx().given(vec![placed(), allocated(), paid(), packed(), shipped()])
        .when(C::CancelOrder {
            reason: CancellationReason::CustomerRequest,
            note: None,
        })
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Shipped),
            action: OrderAction::Cancel,
        });
    fx().given(vec![placed(), cancelled()])
        .when(C::CancelOrder {
            reason: CancellationReason::CustomerRequest,
            note: None,
        })
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Cancelled),
            action: OrderAction::Cancel,
        });
}

#[test]
fn refunds_never_exceed_what_was_paid() {
    let given = vec![placed(), allocated(), paid(), cancelled()];
    fx().given(given.clone())
        .when(C::RequestRefund {
            amount: eur(TOTAL),
            reason: RefundReason::OrderCancelled,
        })
        .then_expect_events(vec![RefundRequested {
            amount: eur(TOTAL),
            reason: RefundReason::OrderCancelled,
        }
        .into()]);
    fx().given(given.clone())
        .when(C::RequestRefund {
            amount: eur(TOTAL + 1),
            reason: RefundReason::OrderCancelled,
        })
        .then_expect_error(E::RefundExceedsPaid {
            requested: eur(TOTAL + 1),
            refundable: eur(TOTAL),
        });
    let mut twice = given;
    twice.push(
        RefundRequested {
            amount: eur(1_000),
            reason: RefundReason::OrderCancelled,
        }
        .into(),
    );
    fx().given(twice)
        .when(C::RequestRefund {
            amount: eur(TOTAL - 999),
            reason: RefundReason::OrderCancelled,
        })
        .then_expect_error(E::RefundExceedsPaid {
            requested: eur(TOTAL - 999),
            refundable: eur(TOTAL - 1_000),
        });
}

#[test]
fn an_unpaid_cancelled_order_has_nothing_to_refund() {
    fx().given(vec![placed(), cancelled()])
        .when(C::RequestRefund {
            amount: eur(1),
            reason: RefundReason::OrderCancelled,
        })
        .then_expect_error(E::RefundExceedsPaid {
            requested: eur(1),
            refundable: eur(0),
        });
}

#[test]
fn refunds_before_packing_are_illegal() {
    fx().given(vec![placed(), allocated(), paid()])
        .when(C::RequestRefund {
            amount: eur(1),
            reason: RefundReason::CustomerComplaint,
        })
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Paid),
            action: OrderAction::RequestRefund,
        });
}

#[test]
fn the_transition_table_is_the_documented_lifecycle() {
    use OrderStatus::*;
    assert_eq!(transition(None, OrderAction::Place), Some(Created));
    assert_eq!(transition(Some(Created), OrderAction::MarkPaid), Some(Paid));
    assert_eq!(transition(Some(Paid), OrderAction::Pack), Some(Packed));
    assert_eq!(transition(Some(Packed), OrderAction::Ship), Some(Shipped));
    assert_eq!(
        transition(Some(Shipped), OrderAction::Deliver),
        Some(Delivered)
    );
    assert_eq!(transition(Some(Shipped), OrderAction::Cancel), None);
    assert_eq!(transition(Some(Delivered), OrderAction::Cancel), None);
    assert_eq!(transition(Some(Cancelled), OrderAction::Pack), None);
    // Every pair appears once: the table is a function.
    for (i, a) in TRANSITIONS.iter().enumerate() {
        for b in &TRANSITIONS[i + 1..] {
            assert!(!(a.0 == b.0 && a.1 == b.1), "duplicate entry {a:?}");
        }
    }
}

fn cancel_line(s: &str) -> C {
    C::CancelLine {
        sku: sku(s),
        reason: CancellationReason::BatchExpired,
        note: None,
    }
}

fn line_cancelled(refund: Option<i64>) -> OrderEvent {
    OrderLineCancelled {
        sku: sku("PIN-GOLD"),
        price: eur(698),
        reason: CancellationReason::BatchExpired,
        note: None,
        refund: refund.map(eur),
    }
    .into()
}

#[test]
fn a_line_is_cancelled_before_packing_and_refunded_when_paid() {
    // Unpaid: nothing to refund, and the order is then paid without it.
    fx().given(vec![placed(), allocated()])
        .when(cancel_line("PIN-GOLD"))
        .then_expect_events(vec![line_cancelled(None)]);
    fx().given(vec![placed(), allocated(), line_cancelled(None)])
        .when(C::MarkPaid {
            payment_id: payment_id(),
            amount: eur(449),
        })
        .then_expect_events(vec![OrderPaid {
            payment_id: payment_id(),
            amount: eur(449),
        }
        .into()]);
    // Paid: its price goes back.
    fx().given(vec![placed(), allocated(), paid()])
        .when(cancel_line("PIN-GOLD"))
        .then_expect_events(vec![line_cancelled(Some(698))]);
    // What is left is what is allocated and packed.
    fx().given(vec![
        placed(),
        allocated(),
        paid(),
        line_cancelled(Some(698)),
    ])
    .when(C::ConfirmAllocation {
        allocations: allocations()[..2].to_vec(),
    })
    .then_expect_events(vec![AllocationConfirmed {
        allocations: allocations()[..2].to_vec(),
    }
    .into()]);
    fx().given(vec![
        placed(),
        allocated(),
        paid(),
        line_cancelled(Some(698)),
    ])
    .when(pack_cmd(1_500, 2))
    .then_expect_error_message("packed lines do not match the order: 2 lines packed, 1 ordered");
    // Once, never the last line, never an unknown one, never after packing.
    fx().given(vec![placed(), allocated(), line_cancelled(None)])
        .when(cancel_line("PIN-GOLD"))
        .then_expect_error(E::NoSuchLine(sku("PIN-GOLD")));
    fx().given(vec![placed(), allocated(), line_cancelled(None)])
        .when(cancel_line("APL-GALA"))
        .then_expect_error(E::LastLine);
    fx().given(vec![placed()])
        .when(cancel_line("USD-LIME"))
        .then_expect_error(E::NoSuchLine(sku("USD-LIME")));
    fx().given(vec![placed(), allocated(), paid(), packed()])
        .when(cancel_line("PIN-GOLD"))
        .then_expect_error(E::IllegalTransition {
            state: Some(OrderStatus::Packed),
            action: OrderAction::CancelLine,
        });
}

#[test]
fn placing_for_a_slot_beyond_the_horizon_or_an_unknown_warehouse_is_refused() {
    // The horizon is 14 days: a slot starting on the last minute of it is
    // taken, one starting a minute later is not.
    let starting = |t: chrono::DateTime<chrono::Utc>| {
        DeliverySlot::new(t, t + chrono::Duration::hours(2)).unwrap()
    };
    let edge = now() + chrono::Duration::days(14);
    fx().given_no_previous_events()
        .when(place_at(
            starting(edge + chrono::Duration::minutes(1)),
            berlin(),
        ))
        .then_expect_error(E::SlotTooFarAhead { days: 14 });
    let events = fx()
        .given_no_previous_events()
        .when(place_at(starting(edge), berlin()))
        .inspect_result();
    assert!(events.is_ok(), "{events:?}");
    let nowhere: WarehouseId = "WH-NOWHERE".parse().unwrap();
    fx().given_no_previous_events()
        .when(place_at(slot(), nowhere.clone()))
        .then_expect_error(E::UnknownWarehouse(nowhere));
}
