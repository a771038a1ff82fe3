//! FEFO allocation: examples and properties.

use chrono::{DateTime, Duration, Utc};
use domain::allocation::{fefo, Candidate, Shortfall};
use domain::values::{BatchId, Quantity};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

fn batch(n: u128, days: i64, available: u64) -> Candidate {
    Candidate {
        batch_id: BatchId::from_uuid(uuid::Uuid::from_u128(n)),
        expires_at: t0() + Duration::days(days),
        available,
    }
}

#[test]
fn takes_the_first_expiring_batch_first_and_spans_batches() {
    let c = [batch(1, 9, 5_000), batch(2, 3, 1_000), batch(3, 5, 800)];
    let plan = fefo(
        Quantity::grams(2_500).unwrap(),
        &c,
        t0() + Duration::days(1),
        Duration::days(1),
    )
    .unwrap();
    let got: Vec<(u128, u64)> = plan
        .iter()
        .map(|t| (t.batch_id.as_uuid().as_u128(), t.quantity.amount()))
        .collect();
    assert_eq!(got, vec![(2, 1_000), (3, 800), (1, 700)]);
}

#[test]
fn skips_batches_that_would_arrive_too_close_to_expiry() {
    let c = [batch(1, 2, 5_000), batch(2, 6, 5_000)];
    // Delivered by day 1; batch 1 would have 1 day left, the margin is 2.
    let plan = fefo(
        Quantity::grams(100).unwrap(),
        &c,
        t0() + Duration::days(1),
        Duration::days(2),
    )
    .unwrap();
    assert_eq!(plan[0].batch_id.as_uuid().as_u128(), 2);
}

#[test]
fn reports_a_shortfall_with_what_could_be_had() {
    let c = [batch(1, 9, 300), batch(2, 1, 10_000)];
    let err = fefo(
        Quantity::grams(500).unwrap(),
        &c,
        t0() + Duration::days(1),
        Duration::hours(12),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Shortfall {
            requested: 500,
            available: 300
        }
    );
}

proptest! {
    #[test]
    fn plans_are_exact_fresh_within_availability_and_fefo(
        batches in prop::collection::vec((0i64..20, 0u64..3_000), 0..12),
        want in 1u64..10_000,
        margin_days in 0i64..4,
    ) {
        let c: Vec<Candidate> = batches.iter().enumerate().map(|(i, (d, a))| batch(i as u128, *d, *a)).collect();
        let deliver_by = t0() + Duration::days(2);
        let margin = Duration::days(margin_days);
        let fresh_total: u64 = c.iter().filter(|b| b.expires_at >= deliver_by + margin).map(|b| b.available).sum();
        match fefo(Quantity::grams(want).unwrap(), &c, deliver_by, margin) {
            Ok(plan) => {
                prop_assert_eq!(plan.iter().map(|t| t.quantity.amount()).sum::<u64>(), want);
                let mut last = None;
                for t in &plan {
                    let b = c.iter().find(|b| b.batch_id == t.batch_id).unwrap();
                    prop_assert!(t.quantity.amount() <= b.available, "more than available");
                    prop_assert!(b.expires_at >= deliver_by + margin, "a batch not fresh enough");
                    prop_assert!(last.is_none_or(|l| l <= b.expires_at), "not first-expiring first");
                    last = Some(b.expires_at);
                }
                prop_assert_eq!(plan.iter().map(|t| t.batch_id).collect::<std::collections::BTreeSet<_>>().len(), plan.len());
            }
            Err(s) => {
                prop_assert!(fresh_total < want);
                prop_assert_eq!(s.available, fresh_total);
            }
        }
    }
}
