//! Random command sequences never break an aggregate's invariants.

use std::sync::Arc;

use crate::common::*;
use chrono::Duration;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use domain::clock::FixedClock;
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC, InventoryServices};
use domain::order::{
    transition, LineRequest, Order, OrderAction, OrderCommand as OC, OrderStatus, PackRequest,
    TRANSITIONS,
};
use domain::payment::{Payment, PaymentCommand as PC};
use domain::values::*;
use event_schemas::inventory::*;
use event_schemas::order::*;
use proptest::prelude::*;

/// Runs one command the way cqrs-es does: on error the aggregate is as it was.
fn run<A: Aggregate + Clone>(
    agg: &mut A,
    cmd: A::Command,
    services: &A::Services,
) -> Result<Vec<A::Event>, A::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let before = agg.clone();
    let sink = EventSink::default();
    let result = rt.block_on(agg.handle(cmd, services, &sink));
    match result {
        Ok(()) => Ok(rt.block_on(sink.collect())),
        Err(e) => {
            *agg = before;
            Err(e)
        }
    }
}

fn order_ids() -> Vec<OrderId> {
    (0..4)
        .map(|i| {
            format!("0192f3a4-0000-7000-8000-0000000000{i:02}")
                .parse()
                .unwrap()
        })
        .collect()
}

#[derive(Debug, Clone)]
enum InvStep {
    Reserve(usize, u64),
    Release(usize),
    Pick(usize, u64),
    Adjust(u64),
    WriteOff(u64),
    Warn,
    Expire,
    Advance(i64),
}

fn inv_step() -> impl Strategy<Value = InvStep> {
    prop_oneof![
        4 => (0..4usize, 1..6_000u64).prop_map(|(o, q)| InvStep::Reserve(o, q)),
        2 => (0..4usize).prop_map(InvStep::Release),
        2 => (0..4usize, 1..6_000u64).prop_map(|(o, q)| InvStep::Pick(o, q)),
        1 => (0..15_000u64).prop_map(InvStep::Adjust),
        2 => (1..4_000u64).prop_map(InvStep::WriteOff),
        1 => Just(InvStep::Warn),
        1 => Just(InvStep::Expire),
        2 => (0..48i64).prop_map(InvStep::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inventory_batch_invariants_hold(steps in prop::collection::vec(inv_step(), 1..60)) {
        let clock = Arc::new(FixedClock::at(now()));
        let services = InventoryServices { clock: clock.clone(), catalog: Arc::new(catalog()) };
        let expires_at = now() + Duration::hours(72);
        let mut batch = InventoryBatch::default();
        run(&mut batch, IC::ReceiveBatch {
            batch_id: batch_id(),
            sku: sku("APL-GALA"),
            warehouse_id: "WH-1".parse().unwrap(),
            supplier_id: "SUP-1".parse().unwrap(),
            quantity: g(10_000),
            expires_at,
            procurement_cost: eur(5_000),
            cold_chain: ColdChain::Chilled,
        }, &services).unwrap();
        let orders = order_ids();
        for step in steps {
            let cmd = match step {
                InvStep::Reserve(o, q) => IC::ReserveStock { order_id: orders[o], quantity: g(q) },
                InvStep::Release(o) => IC::ReleaseReservation { order_id: orders[o], reason: ReleaseReason::OrderCancelled },
                InvStep::Pick(o, q) => IC::PickStock { order_id: orders[o], quantity: g(q) },
                InvStep::Adjust(c) => IC::AdjustStock { counted_on_hand: c, note: None },
                InvStep::WriteOff(q) => IC::WriteOffStock { quantity: g(q), reason: WriteOffReason::Damaged, note: None },
                InvStep::Warn => IC::RaiseExpiryWarning,
                InvStep::Expire => IC::MarkExpired,
                InvStep::Advance(h) => { clock.advance(Duration::hours(h)); continue; }
            };
            let was_expired = batch.is_expired() || clock_now(&services) >= expires_at;
            if let Ok(events) = run(&mut batch, cmd, &services) {
                for e in &events {
                    if was_expired {
                        prop_assert!(
                            matches!(e, InventoryBatchEvent::ReservationReleased(_)
                                | InventoryBatchEvent::StockWrittenOff(_)
                                | InventoryBatchEvent::BatchExpired(_)),
                            "after expiry only releases and write-offs, got {e:?}"
                        );
                    }
                }
            }
            prop_assert!(batch.reserved() <= batch.on_hand(), "reserved {} > on hand {}", batch.reserved(), batch.on_hand());
            prop_assert!(batch.books_balance(), "books do not balance: {batch:?}");
        }
    }
}

fn clock_now(s: &InventoryServices) -> chrono::DateTime<chrono::Utc> {
    s.clock.now()
}

fn order_command(kind: u8, amount: i64, method_cod: bool) -> OC {
    match kind {
        0 => OC::PlaceOrder {
            order_id: order_id(),
            customer_id: customer_id(),
            warehouse_id: "WH-1".parse().unwrap(),
            lines: vec![LineRequest {
                sku: sku("PIN-GOLD"),
                quantity: u(2),
            }],
            delivery_slot: slot(),
            delivery_address: address(),
            payment_method: if method_cod {
                PaymentMethod::CashOnDelivery
            } else {
                PaymentMethod::Card
            },
        },
        1 => OC::ConfirmAllocation {
            allocations: vec![Allocation {
                sku: sku("PIN-GOLD"),
                batch_id: batch_id(),
                quantity: u(2),
            }],
        },
        2 => OC::MarkPaid {
            payment_id: payment_id(),
            amount: eur(amount),
        },
        3 => OC::PackOrder {
            lines: vec![PackRequest {
                sku: sku("PIN-GOLD"),
                packed_quantity: u(1 + (amount as u64 % 2)),
            }],
        },
        4 => OC::ShipOrder {
            delivery_id: delivery_id(),
        },
        5 => OC::MarkDelivered {
            delivery_id: delivery_id(),
        },
        6 => OC::CancelOrder {
            reason: CancellationReason::CustomerRequest,
            note: None,
        },
        7 => OC::CancelLine {
            sku: sku("PIN-GOLD"),
            reason: CancellationReason::BatchExpired,
            note: None,
        },
        _ => OC::RequestRefund {
            amount: eur(amount.max(1)),
            reason: RefundReason::CustomerComplaint,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn orders_only_move_along_the_transition_table(
        cod in any::<bool>(),
        steps in prop::collection::vec((0u8..9, prop_oneof![Just(698i64), 0..1_000i64]), 1..40),
    ) {
        let services = order_services();
        let mut order = Order::default();
        for (kind, amount) in steps {
            let before = order.status();
            let cmd = order_command(kind, amount, cod);
            let action = cmd.action();
            match run(&mut order, cmd, &services) {
                Ok(events) => {
                    let expected = transition(before, action);
                    prop_assert!(expected.is_some(), "{before:?} --{action:?}--> accepted but not in the table");
                    if !events.is_empty() {
                        prop_assert_eq!(order.status(), expected);
                    }
                }
                Err(_) => prop_assert_eq!(order.status(), before),
            }
            let reachable: Vec<Option<OrderStatus>> =
                TRANSITIONS.iter().map(|(_, _, to)| Some(*to)).chain([None]).collect();
            prop_assert!(reachable.contains(&order.status()));
            if let (Some(paid), Some(refundable)) = (order.amount_paid(), order.refundable()) {
                prop_assert!(refundable.amount_minor() <= paid.amount_minor());
            }
            if order.status() == Some(OrderStatus::Paid) || order.amount_paid().is_some() {
                prop_assert!(!cod, "a cash-on-delivery order was paid online");
            }
        }
        let _ = OrderAction::Place;
    }
}

#[derive(Debug, Clone)]
enum PayStep {
    Authorize(i64),
    Capture(i64),
    Fail,
    Refund(i64),
    Collect(i64),
}

fn pay_step() -> impl Strategy<Value = PayStep> {
    prop_oneof![
        (500..2_000i64).prop_map(PayStep::Authorize),
        (0..800i64).prop_map(PayStep::Capture),
        Just(PayStep::Fail),
        (0..900i64).prop_map(PayStep::Refund),
        (0..1_500i64).prop_map(PayStep::Collect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn refunds_never_exceed_captures(cod in any::<bool>(), steps in prop::collection::vec(pay_step(), 1..40)) {
        let mut p = Payment::default();
        let method = if cod { PaymentMethod::CashOnDelivery } else { PaymentMethod::Card };
        run(&mut p, PC::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method,
            gateway: (!cod).then(|| text("simulated")),
            amount_due: eur(1_000),
        }, &()).unwrap();
        for step in steps {
            let m = |x: i64| eur(x);
            let cmd = match step {
                PayStep::Authorize(a) => PC::AuthorizePayment { amount: m(a), gateway_reference: text("a") },
                PayStep::Capture(a) => PC::CapturePayment { amount: m(a), gateway_reference: text("c") },
                PayStep::Fail => PC::FailPayment { code: text("declined"), message: text("no") },
                PayStep::Refund(a) => PC::RefundPayment { amount: m(a), gateway_reference: None, note: None },
                PayStep::Collect(a) => PC::CollectCash { amount: m(a), rider_id: rider_id() },
            };
            let _ = run(&mut p, cmd, &());
            let captured = p.amount_captured().unwrap().amount_minor();
            let collected = p.amount_collected().map_or(0, |m| m.amount_minor());
            let refunded = p.amount_refunded().unwrap().amount_minor();
            prop_assert!(refunded <= captured + collected, "refunded {refunded} > taken {}", captured + collected);
            if let Some(a) = p.amount_authorized() {
                prop_assert!(captured <= a.amount_minor());
            } else {
                prop_assert_eq!(captured, 0);
            }
        }
    }
}
