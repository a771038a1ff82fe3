use crate::common::*;
use cqrs_es::test::TestFramework;
use domain::payment::{Payment, PaymentCommand as C, PaymentError as E};
use domain::values::*;
use event_schemas::order::PaymentMethod;
use event_schemas::payment::*;

type Fx = TestFramework<Payment>;

fn fx() -> Fx {
    Fx::with(())
}

fn initiated(method: PaymentMethod) -> PaymentEvent {
    PaymentInitiated {
        payment_id: payment_id(),
        order_id: order_id(),
        method,
        gateway: (method == PaymentMethod::Card).then(|| text("simulated")),
        amount_due: eur(1_000),
    }
    .into()
}

fn card() -> PaymentEvent {
    initiated(PaymentMethod::Card)
}

fn authorized(minor: i64) -> PaymentEvent {
    PaymentAuthorized {
        amount: eur(minor),
        gateway_reference: text("auth_1"),
    }
    .into()
}

fn captured(minor: i64) -> PaymentEvent {
    PaymentCaptured {
        amount: eur(minor),
        gateway_reference: text("ch_1"),
    }
    .into()
}

#[test]
fn initiating_records_what_is_due() {
    fx().given_no_previous_events()
        .when(C::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method: PaymentMethod::Card,
            gateway: Some(text("simulated")),
            amount_due: eur(1_000),
        })
        .then_expect_events(vec![card()]);
    fx().given(vec![card()])
        .when(C::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method: PaymentMethod::Card,
            gateway: Some(text("simulated")),
            amount_due: eur(1_000),
        })
        .then_expect_error(E::AlreadyInitiated);
}

#[test]
fn card_needs_a_gateway_and_cash_has_none() {
    fx().given_no_previous_events()
        .when(C::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method: PaymentMethod::Card,
            gateway: None,
            amount_due: eur(1_000),
        })
        .then_expect_error(E::GatewayMismatch);
    fx().given_no_previous_events()
        .when(C::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method: PaymentMethod::CashOnDelivery,
            gateway: Some(text("simulated")),
            amount_due: eur(1_000),
        })
        .then_expect_error(E::GatewayMismatch);
    fx().given_no_previous_events()
        .when(C::InitiatePayment {
            payment_id: payment_id(),
            order_id: order_id(),
            method: PaymentMethod::CashOnDelivery,
            gateway: None,
            amount_due: eur(0),
        })
        .then_expect_error(E::ZeroAmount);
}

#[test]
fn unknown_payments_are_not_found() {
    fx().given_no_previous_events()
        .when(C::CapturePayment {
            amount: eur(1),
            gateway_reference: text("x"),
        })
        .then_expect_error(E::NotInitiated);
}

#[test]
fn authorization_covers_at_least_what_is_due_once() {
    fx().given(vec![card()])
        .when(C::AuthorizePayment {
            amount: eur(1_100),
            gateway_reference: text("auth_1"),
        })
        .then_expect_events(vec![authorized(1_100)]);
    fx().given(vec![card()])
        .when(C::AuthorizePayment {
            amount: eur(999),
            gateway_reference: text("auth_1"),
        })
        .then_expect_error(E::AuthorizationBelowDue {
            authorized: eur(999),
            due: eur(1_000),
        });
    fx().given(vec![card(), authorized(1_000)])
        .when(C::AuthorizePayment {
            amount: eur(1_000),
            gateway_reference: text("auth_2"),
        })
        .then_expect_error(E::AlreadyAuthorized);
    fx().given(vec![card()])
        .when(C::AuthorizePayment {
            amount: Money::new(1_000, Currency::USD).unwrap(),
            gateway_reference: text("auth_1"),
        })
        .then_expect_error(E::CurrencyMismatch {
            expected: Currency::EUR,
            given: Currency::USD,
        });
}

#[test]
fn partial_captures_up_to_the_authorization() {
    fx().given(vec![card(), authorized(1_000), captured(600)])
        .when(C::CapturePayment {
            amount: eur(400),
            gateway_reference: text("ch_2"),
        })
        .then_expect_events(vec![PaymentCaptured {
            amount: eur(400),
            gateway_reference: text("ch_2"),
        }
        .into()]);
    fx().given(vec![card(), authorized(1_000), captured(600)])
        .when(C::CapturePayment {
            amount: eur(401),
            gateway_reference: text("ch_2"),
        })
        .then_expect_error(E::CaptureExceedsAuthorized {
            requested: eur(401),
            remaining: eur(400),
        });
    fx().given(vec![card()])
        .when(C::CapturePayment {
            amount: eur(1),
            gateway_reference: text("ch_1"),
        })
        .then_expect_error(E::NotAuthorized);
}

#[test]
fn failure_is_final_and_only_before_money_moved() {
    let failed: PaymentEvent = PaymentFailed {
        code: text("card_declined"),
        message: text("insufficient funds"),
    }
    .into();
    fx().given(vec![card()])
        .when(C::FailPayment {
            code: text("card_declined"),
            message: text("insufficient funds"),
        })
        .then_expect_events(vec![failed.clone()]);
    fx().given(vec![card(), failed.clone()])
        .when(C::AuthorizePayment {
            amount: eur(1_000),
            gateway_reference: text("a"),
        })
        .then_expect_error(E::Failed);
    fx().given(vec![card(), authorized(1_000), captured(10)])
        .when(C::FailPayment {
            code: text("timeout"),
            message: text("gateway timed out"),
        })
        .then_expect_error(E::AlreadyCaptured);
}

#[test]
fn refunds_never_exceed_captures() {
    fx().given(vec![card(), authorized(1_000), captured(700)])
        .when(C::RefundPayment {
            amount: eur(700),
            gateway_reference: Some(text("re_1")),
            note: None,
        })
        .then_expect_events(vec![PaymentRefunded {
            amount: eur(700),
            gateway_reference: Some(text("re_1")),
            note: None,
        }
        .into()]);
    fx().given(vec![
        card(),
        authorized(1_000),
        captured(700),
        PaymentRefunded {
            amount: eur(500),
            gateway_reference: None,
            note: None,
        }
        .into(),
    ])
    .when(C::RefundPayment {
        amount: eur(201),
        gateway_reference: None,
        note: None,
    })
    .then_expect_error(E::RefundExceedsCaptured {
        requested: eur(201),
        refundable: eur(200),
    });
}

#[test]
fn cash_is_collected_once_for_cod_payments_only() {
    let cod = initiated(PaymentMethod::CashOnDelivery);
    let collected: PaymentEvent = CashCollected {
        amount: eur(1_000),
        rider_id: rider_id(),
    }
    .into();
    fx().given(vec![cod.clone()])
        .when(C::CollectCash {
            amount: eur(1_000),
            rider_id: rider_id(),
        })
        .then_expect_events(vec![collected.clone()]);
    fx().given(vec![cod.clone(), collected.clone()])
        .when(C::CollectCash {
            amount: eur(1_000),
            rider_id: rider_id(),
        })
        .then_expect_error(E::AlreadyCollected);
    fx().given(vec![card()])
        .when(C::CollectCash {
            amount: eur(1_000),
            rider_id: rider_id(),
        })
        .then_expect_error(E::WrongMethod {
            expected: PaymentMethod::CashOnDelivery,
        });
    fx().given(vec![cod.clone()])
        .when(C::AuthorizePayment {
            amount: eur(1_000),
            gateway_reference: text("a"),
        })
        .then_expect_error(E::WrongMethod {
            expected: PaymentMethod::Card,
        });
    // collected cash can be refunded, not more
    fx().given(vec![cod, collected])
        .when(C::RefundPayment {
            amount: eur(1_001),
            gateway_reference: None,
            note: None,
        })
        .then_expect_error(E::RefundExceedsCaptured {
            requested: eur(1_001),
            refundable: eur(1_000),
        });
}

#[test]
fn voiding_releases_an_uncaptured_hold_once() {
    let voided: PaymentEvent = PaymentVoided {
        amount: eur(1_000),
        gateway_reference: text("void_1"),
    }
    .into();
    fx().given(vec![card(), authorized(1_000)])
        .when(C::VoidPayment {
            gateway_reference: text("void_1"),
        })
        .then_expect_events(vec![voided.clone()]);
    // Nothing held, money already taken, or already voided: refused.
    fx().given(vec![card()])
        .when(C::VoidPayment {
            gateway_reference: text("void_1"),
        })
        .then_expect_error(E::NotAuthorized);
    fx().given(vec![card(), authorized(1_000), captured(100)])
        .when(C::VoidPayment {
            gateway_reference: text("void_1"),
        })
        .then_expect_error(E::AlreadyCaptured);
    fx().given(vec![card(), authorized(1_000), voided.clone()])
        .when(C::VoidPayment {
            gateway_reference: text("void_2"),
        })
        .then_expect_error(E::Voided);
    // A voided hold captures nothing and cannot fail afterwards.
    fx().given(vec![card(), authorized(1_000), voided.clone()])
        .when(C::CapturePayment {
            amount: eur(100),
            gateway_reference: text("ch_1"),
        })
        .then_expect_error(E::Voided);
    fx().given(vec![card(), authorized(1_000), voided])
        .when(C::FailPayment {
            code: text("timeout"),
            message: text("late"),
        })
        .then_expect_error(E::Voided);
    // Cash has no hold to void.
    fx().given(vec![initiated(PaymentMethod::CashOnDelivery)])
        .when(C::VoidPayment {
            gateway_reference: text("void_1"),
        })
        .then_expect_error(E::WrongMethod {
            expected: PaymentMethod::Card,
        });
}
