use crate::common::*;
use cqrs_es::test::TestFramework;
use domain::delivery::{Delivery, DeliveryCommand as C, DeliveryError as E, DeliveryStatus as S};
use domain::values::GeoPoint;
use event_schemas::delivery::*;

type Fx = TestFramework<Delivery>;

fn fx() -> Fx {
    Fx::with(())
}

fn created() -> DeliveryEvent {
    DeliveryCreated {
        delivery_id: delivery_id(),
        order_id: order_id(),
        slot: slot(),
        address: address(),
        cold_chain: true,
    }
    .into()
}

fn assigned(r: domain::values::RiderId) -> DeliveryEvent {
    RiderAssigned { rider_id: r }.into()
}

fn picked_up() -> DeliveryEvent {
    DeliveryPickedUp {
        rider_id: rider_id(),
    }
    .into()
}

fn failed() -> DeliveryEvent {
    DeliveryAttemptFailed {
        reason: text("nobody home"),
    }
    .into()
}

fn here() -> GeoPoint {
    GeoPoint::new(52_531_000, 13_384_000).unwrap()
}

#[test]
fn creating_a_delivery() {
    fx().given_no_previous_events()
        .when(C::CreateDelivery {
            delivery_id: delivery_id(),
            order_id: order_id(),
            slot: slot(),
            address: address(),
            cold_chain: true,
        })
        .then_expect_events(vec![created()]);
    fx().given(vec![created()])
        .when(C::CreateDelivery {
            delivery_id: delivery_id(),
            order_id: order_id(),
            slot: slot(),
            address: address(),
            cold_chain: true,
        })
        .then_expect_error(E::AlreadyCreated);
    fx().given_no_previous_events()
        .when(C::AssignRider {
            rider_id: rider_id(),
        })
        .then_expect_error(E::NotCreated);
}

#[test]
fn riders_are_assigned_and_reassigned_before_pickup() {
    fx().given(vec![created()])
        .when(C::AssignRider {
            rider_id: rider_id(),
        })
        .then_expect_events(vec![assigned(rider_id())]);
    fx().given(vec![created(), assigned(rider_id())])
        .when(C::AssignRider {
            rider_id: other_rider_id(),
        })
        .then_expect_events(vec![assigned(other_rider_id())]);
    fx().given(vec![created(), assigned(rider_id()), picked_up()])
        .when(C::AssignRider {
            rider_id: other_rider_id(),
        })
        .then_expect_error(E::IllegalTransition {
            state: S::InTransit,
            action: "assign a rider to",
        });
}

#[test]
fn only_the_assigned_rider_picks_up() {
    fx().given(vec![created(), assigned(rider_id())])
        .when(C::PickUp {
            rider_id: rider_id(),
        })
        .then_expect_events(vec![picked_up()]);
    fx().given(vec![created(), assigned(rider_id())])
        .when(C::PickUp {
            rider_id: other_rider_id(),
        })
        .then_expect_error(E::WrongRider {
            given: other_rider_id(),
        });
    fx().given(vec![created()])
        .when(C::PickUp {
            rider_id: rider_id(),
        })
        .then_expect_error(E::IllegalTransition {
            state: S::Created,
            action: "pick up",
        });
}

#[test]
fn locations_are_reported_only_in_transit() {
    fx().given(vec![created(), assigned(rider_id()), picked_up()])
        .when(C::ReportLocation { location: here() })
        .then_expect_events(vec![LocationReported { location: here() }.into()]);
    fx().given(vec![created(), assigned(rider_id())])
        .when(C::ReportLocation { location: here() })
        .then_expect_error(E::IllegalTransition {
            state: S::RiderAssigned,
            action: "report the location of",
        });
}

#[test]
fn completing_with_proof() {
    let proof = ProofOfDelivery::Signature {
        signed_by: text("A. Lovelace"),
    };
    fx().given(vec![created(), assigned(rider_id()), picked_up()])
        .when(C::CompleteDelivery {
            proof: proof.clone(),
        })
        .then_expect_events(vec![DeliveryCompleted {
            proof: proof.clone(),
        }
        .into()]);
    let done: DeliveryEvent = DeliveryCompleted {
        proof: proof.clone(),
    }
    .into();
    fx().given(vec![created(), assigned(rider_id()), picked_up(), done])
        .when(C::CompleteDelivery { proof })
        .then_expect_error(E::IllegalTransition {
            state: S::Delivered,
            action: "complete",
        });
}

#[test]
fn a_failed_attempt_goes_out_again() {
    fx().given(vec![created(), assigned(rider_id()), picked_up()])
        .when(C::FailAttempt {
            reason: text("nobody home"),
        })
        .then_expect_events(vec![failed()]);
    fx().given(vec![created(), assigned(rider_id()), picked_up(), failed()])
        .when(C::PickUp {
            rider_id: rider_id(),
        })
        .then_expect_events(vec![picked_up()]);
    fx().given(vec![created(), assigned(rider_id()), picked_up(), failed()])
        .when(C::AssignRider {
            rider_id: other_rider_id(),
        })
        .then_expect_events(vec![assigned(other_rider_id())]);
    fx().given(vec![created(), assigned(rider_id())])
        .when(C::FailAttempt {
            reason: text("nobody home"),
        })
        .then_expect_error(E::IllegalTransition {
            state: S::RiderAssigned,
            action: "fail an attempt of",
        });
}
