use std::sync::Arc;

use crate::common::*;
use chrono::Duration;
use cqrs_es::test::TestFramework;
use domain::clock::FixedClock;
use domain::timer::{Timer, TimerCommand as C, TimerError as E, TimerServices};
use event_schemas::timer::*;

fn at(t: chrono::DateTime<chrono::Utc>) -> TestFramework<Timer> {
    TestFramework::with(TimerServices {
        clock: Arc::new(FixedClock::at(t)),
    })
}

fn kind() -> TimerKind {
    TimerKind::BatchExpiry {
        batch_id: batch_id(),
    }
}

fn due() -> chrono::DateTime<chrono::Utc> {
    now() + Duration::hours(5)
}

fn scheduled() -> TimerEvent {
    TimerScheduled {
        timer_id: kind().timer_id(),
        timer: kind(),
        due_at: due(),
    }
    .into()
}

#[test]
fn scheduling_is_once_and_idempotent() {
    at(now())
        .given_no_previous_events()
        .when(C::Schedule {
            timer: kind(),
            due_at: due(),
        })
        .then_expect_events(vec![scheduled()]);
    at(now())
        .given(vec![scheduled()])
        .when(C::Schedule {
            timer: kind(),
            due_at: due(),
        })
        .then_expect_events(vec![]);
    at(now())
        .given(vec![scheduled()])
        .when(C::Schedule {
            timer: TimerKind::ExpiryWarning {
                batch_id: batch_id(),
            },
            due_at: due(),
        })
        .then_expect_error(E::Rescheduled);
}

#[test]
fn the_id_derives_from_purpose_and_target() {
    assert_eq!(kind().timer_id(), kind().timer_id());
    assert_ne!(
        kind().timer_id(),
        TimerKind::ExpiryWarning {
            batch_id: batch_id()
        }
        .timer_id()
    );
    assert_eq!(kind().timer_id().get_version_num(), 5);
}

#[test]
fn fires_once_and_only_when_due() {
    at(due() - Duration::seconds(1))
        .given(vec![scheduled()])
        .when(C::Fire)
        .then_expect_error(E::NotDue { due_at: due() });
    at(due())
        .given(vec![scheduled()])
        .when(C::Fire)
        .then_expect_events(vec![TimerFired { fired_at: due() }.into()]);
    at(due() + Duration::hours(1))
        .given(vec![scheduled(), TimerFired { fired_at: due() }.into()])
        .when(C::Fire)
        .then_expect_events(vec![]);
    at(due())
        .given_no_previous_events()
        .when(C::Fire)
        .then_expect_error(E::NotScheduled);
}

#[test]
fn cancelled_timers_never_fire() {
    let cancelled: TimerEvent = TimerCancelled {
        reason: text("order paid"),
    }
    .into();
    at(now())
        .given(vec![scheduled()])
        .when(C::Cancel {
            reason: text("order paid"),
        })
        .then_expect_events(vec![cancelled.clone()]);
    at(due() + Duration::hours(1))
        .given(vec![scheduled(), cancelled.clone()])
        .when(C::Fire)
        .then_expect_events(vec![]);
    at(due())
        .given(vec![scheduled(), TimerFired { fired_at: due() }.into()])
        .when(C::Cancel {
            reason: text("too late"),
        })
        .then_expect_error(E::AlreadyFired);
}
