//! `timers`: every durable timer and whether it is scheduled, fired or
//! cancelled (`rm_timers`); what the scheduler reads to know what is due.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::timer::{TimerEvent, TimerKind};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Deserialize;
use store::sql::{exec, fetch};
use store::{Store, StoreError, StoreTx};

use super::{all_typed, decode, ts, ReadModel, Table};

const TIMERS: &str = "rm_timers";

pub(super) struct Timers;

/// One timer.
#[derive(Debug, Clone, Deserialize)]
pub struct TimerRow {
    /// The timer's stream id.
    pub timer_id: String,
    /// expiry_warning, batch_expiry or reservation_hold.
    pub kind: String,
    /// The batch or order it is about.
    pub target: String,
    pub due_at: DateTime<Utc>,
    /// scheduled, fired or cancelled.
    pub status: String,
    pub fired_at: Option<DateTime<Utc>>,
    pub position: u64,
}

/// Up to `limit` scheduled timers due at `now` or before, earliest first.
pub async fn due_timers(
    store: &Store,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<TimerRow>, StoreError> {
    // The index on (status, due_at) serves this and `next_due`.
    let rows = fetch(
        store,
        &format!(
            "SELECT * FROM {TIMERS} WHERE status = 'scheduled' AND due_at <= ? ORDER BY due_at LIMIT ?"
        ),
        &[ts(&now).into(), (limit as i64).into()],
    )
    .await?;
    all_typed(TIMERS, rows)
}

/// When the next scheduled timer after `now` is due, if any.
pub async fn next_due(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    #[derive(Deserialize)]
    struct Due {
        due_at: DateTime<Utc>,
    }
    let rows = fetch(
        store,
        &format!(
            "SELECT due_at FROM {TIMERS} WHERE status = 'scheduled' AND due_at > ? ORDER BY due_at LIMIT 1"
        ),
        &[ts(&now).into()],
    )
    .await?;
    Ok(all_typed::<Due>(TIMERS, rows)?.pop().map(|d| d.due_at))
}

/// Every timer still scheduled.
pub async fn scheduled_timers(store: &Store) -> Result<Vec<TimerRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {TIMERS} WHERE status = 'scheduled' ORDER BY due_at, timer_id"),
        &[],
    )
    .await?;
    all_typed(TIMERS, rows)
}

#[async_trait]
impl ReadModel for Timers {
    fn name(&self) -> &'static str {
        "timers"
    }

    fn tables(&self) -> &'static [Table] {
        &[Table {
            name: TIMERS,
            order_by: "timer_id",
        }]
    }

    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {TIMERS}{suffix} (timer_id TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, \
                 due_at TEXT NOT NULL, status TEXT NOT NULL, fired_at TEXT, position BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX ix_timers_due_{tag} ON {TIMERS}{suffix} (status, due_at)"),
        ]
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_type == TimerEvent::STREAM_TYPE
    }

    async fn apply(&self, tx: &mut StoreTx, s: &str, e: &RecordedEvent) -> Result<(), StoreError> {
        let AnyEvent::Timer(ev) = decode(e)? else {
            return Ok(());
        };
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        let t = format!("{TIMERS}{s}");
        match ev {
            TimerEvent::TimerScheduled(e) => {
                let (kind, target) = match &e.timer {
                    TimerKind::ExpiryWarning { batch_id } => {
                        ("expiry_warning", batch_id.to_string())
                    }
                    TimerKind::BatchExpiry { batch_id } => ("batch_expiry", batch_id.to_string()),
                    TimerKind::ReservationHold { order_id } => {
                        ("reservation_hold", order_id.to_string())
                    }
                };
                exec(tx, &format!("INSERT INTO {t} (timer_id, kind, target, due_at, status, position) VALUES (?, ?, ?, ?, 'scheduled', ?)"),
                    &[id.into(), kind.into(), target.into(), ts(&e.due_at).into(), pos.into()]).await?;
            }
            TimerEvent::TimerFired(f) => {
                exec(tx, &format!("UPDATE {t} SET status = 'fired', fired_at = ?, position = ? WHERE timer_id = ?"),
                    &[ts(&f.fired_at).into(), pos.into(), id.into()]).await?;
            }
            TimerEvent::TimerCancelled(_) => {
                exec(
                    tx,
                    &format!(
                        "UPDATE {t} SET status = 'cancelled', position = ? WHERE timer_id = ?"
                    ),
                    &[pos.into(), id.into()],
                )
                .await?;
            }
        }
        Ok(())
    }
}
