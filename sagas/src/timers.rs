//! The scheduler: fires timers whose time has come.
//!
//! It reads due timers from the `timers` read model and fires each through
//! the `Timer` aggregate. Firing is an append at the timer's next version,
//! so with two server processes on one database exactly one `TimerFired`
//! is recorded; the other finds the timer fired and does nothing. What a
//! fired timer *does* is up to the process managers that subscribe to
//! `TimerFired`, so a replay of the log never fires anything again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::Clock;
use domain::timer::{Timer, TimerCommand, TimerError};
use event_schemas::{Actor, EventMetadata};
use store::{Aggregates, CommandError, Store, StoreError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Fires every due timer once; returns how many it fired and when the next
/// one is due, if any (now, when more may already be due).
pub async fn fire_due(
    store: &Store,
    timers: &Aggregates<Timer>,
    clock: &dyn Clock,
) -> Result<(usize, Option<DateTime<Utc>>), StoreError> {
    let now = clock.now();
    // Only what is due: this runs on every wake-up, and most find nothing
    // to do.
    const BATCH: usize = 500;
    let due = projections::models::due_timers(store, now, BATCH).await?;
    let mut fired = 0;
    for timer in &due {
        let id = timer.timer_id.as_str();
        let meta = EventMetadata {
            occurred_at: clock.now(),
            correlation_id: Uuid::parse_str(id).unwrap_or_else(|_| Uuid::now_v7()),
            causation_id: None,
            actor: Actor::system("scheduler"),
            idempotency_key: None,
        };
        match timers.execute(id, TimerCommand::Fire, &meta).await {
            Ok(a) => fired += a.events,
            // Another scheduler's clock, or a read model ahead of ours.
            Err(CommandError::Rejected(TimerError::NotDue { .. })) => {}
            Err(CommandError::Rejected(e)) => {
                tracing::warn!(timer = id, error = %e, "timer not fired");
            }
            Err(CommandError::Conflict { .. }) => {}
            Err(CommandError::Store(e)) => return Err(e),
        }
    }
    metrics::gauge!("freshledger_timers_due").set(due.len() as f64);
    metrics::counter!("freshledger_timers_fired_total").increment(fired as u64);
    if due.len() == BATCH {
        // More may be due already.
        return Ok((fired, Some(now)));
    }
    Ok((fired, projections::models::next_due(store, now).await?))
}

/// Runs the scheduler until `stop`: fire what is due, then sleep until the
/// next timer is due (at most `poll`), until nudged (the clock moved), or
/// until new events may have scheduled an earlier one. New events wake it
/// at most every [`SETTLE`]: most appends schedule nothing, and looking
/// costs two queries.
pub async fn run(
    store: Store,
    timers: Arc<Aggregates<Timer>>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    stop: CancellationToken,
) {
    let mut wake = store.wakeups();
    let mut nudges = store.nudges();
    while !stop.is_cancelled() {
        wake.borrow_and_update();
        nudges.borrow_and_update();
        let pause = match fire_due(&store, &timers, clock.as_ref()).await {
            // Already due (a backlog): go again at once.
            Ok((_, Some(next))) => (next - clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll),
            Ok((_, None)) => poll,
            Err(e) => {
                tracing::error!(error = %e, "scheduler could not fire timers");
                poll
            }
        };
        let due = tokio::time::Instant::now() + pause;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudges.changed() => {}
            _ = wake.changed() => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = nudges.changed() => {}
                    _ = tokio::time::sleep_until(due.min(tokio::time::Instant::now() + SETTLE)) => {}
                }
            }
            _ = tokio::time::sleep_until(due) => {}
        }
    }
}

/// The lease the scheduler runs under (one process at a time fires).
pub const LEASE: &str = "timer-scheduler";

/// [`run`], whenever this process holds the lease [`LEASE`], until `stop`.
/// Several schedulers would each fire a timer once (the `Timer` aggregate
/// records one `TimerFired`), but one is enough.
pub async fn run_leased(
    store: Store,
    timers: Arc<Aggregates<Timer>>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    stop: CancellationToken,
) {
    store
        .run_leased(
            LEASE,
            &stop,
            |_| {},
            |lease| {
                let (store, timers, clock) = (store.clone(), timers.clone(), clock.clone());
                async move {
                    let stopping = lease.stopping().clone();
                    run(store, timers, clock, poll, stopping).await;
                    lease.release().await;
                    Ok::<(), std::convert::Infallible>(())
                }
            },
        )
        .await
}

/// The least time between two looks prompted by new events.
pub const SETTLE: Duration = Duration::from_millis(50);
