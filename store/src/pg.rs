//! Postgres: reading the log below a visibility horizon, and wake-ups.
//!
//! Positions come from a sequence, taken at INSERT and visible at COMMIT, so
//! position 11 can be visible while 10 is still in flight. The reader never
//! returns an event above a *safe head*: it takes one snapshot S together
//! with the highest visible position M, then waits until every transaction
//! that was in progress in S has ended. Any transaction holding a position
//! below M took it before M was taken, hence before S, and it had its xid by
//! then (`fl_next_position()` assigns it first), so it is in S's in-progress
//! list. Once those have ended, every position <= M is final: committed and
//! visible, or rolled back and gone for good.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::log::RawEvent;
use crate::StoreError;

pub(crate) const CHANNEL: &str = "freshledger_events";

const COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

fn raw(row: PgRow) -> Result<RawEvent, StoreError> {
    Ok(RawEvent {
        position: row.try_get("position")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// The highest position below which the log can no longer change.
pub(crate) async fn safe_head(pool: &PgPool) -> Result<i64, StoreError> {
    let (snapshot, max): (String, i64) = sqlx::query_as(
        "SELECT pg_current_snapshot()::text, COALESCE((SELECT max(position) FROM events), 0)",
    )
    .fetch_one(pool)
    .await?;
    wait_for_in_flight(pool, &snapshot).await?;
    Ok(max)
}

/// Waits until no transaction in progress in `snapshot` is still running.
async fn wait_for_in_flight(pool: &PgPool, snapshot: &str) -> Result<(), StoreError> {
    // "xmin:xmax:xip,xip,..." — nothing was in flight when the list is empty.
    if snapshot.ends_with(':') {
        return Ok(());
    }
    let mut delay = Duration::from_micros(500);
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_snapshot_xip($1::text::pg_snapshot) AS x(xid) \
             WHERE pg_xact_status(x.xid) = 'in progress'",
        )
        .bind(snapshot)
        .fetch_one(pool)
        .await?;
        if running == 0 {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

pub(crate) async fn read_all(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<RawEvent>, StoreError> {
    let (snapshot, max): (String, i64) = sqlx::query_as(
        "SELECT pg_current_snapshot()::text, COALESCE((SELECT max(position) FROM events), 0)",
    )
    .fetch_one(pool)
    .await?;
    if max <= after {
        return Ok(Vec::new());
    }
    wait_for_in_flight(pool, &snapshot).await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
    ))
    .bind(after)
    .bind(max)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

pub(crate) async fn read_stream(
    pool: &PgPool,
    stream_type: &str,
    stream_id: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    ))
    .bind(stream_type)
    .bind(stream_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

pub(crate) async fn read_correlation(
    pool: &PgPool,
    correlation_id: Uuid,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE correlation_id = $1 ORDER BY position"
    ))
    .bind(correlation_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

/// Starts the two wake-up tasks and returns the handle that asks for a
/// cross-process notification.
///
/// NOTIFY is deliberately *not* sent inside the appending transaction:
/// Postgres serialises the commits of notifying transactions on one lock,
/// which would serialise every append. Instead, after a local commit, one
/// task sends at most one NOTIFY at a time (requests coalesce while one is
/// pending), and a listener wakes local subscribers on notifications from
/// other processes. Subscriptions also poll, so a lost notification delays
/// but never loses an event.
pub(crate) async fn spawn_notifier(
    pool: PgPool,
    wake: watch::Sender<u64>,
) -> Result<mpsc::Sender<()>, StoreError> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let notify_pool = pool.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&notify_pool)
                .await
            {
                tracing::debug!(error = %e, "could not send event notification");
                if notify_pool.is_closed() {
                    return;
                }
            }
        }
    });
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(_) => wake.send_modify(|n| *n = n.wrapping_add(1)),
                Err(e) => {
                    if pool.is_closed() || wake.is_closed() {
                        return;
                    }
                    tracing::debug!(error = %e, "event listener reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok(tx)
}

// ---------------------------------------------------------------------------
// Appends. postgres-es writes each event with BEGIN / INSERT / COMMIT and
// cannot say which positions it got. A plain append (no snapshot due) is one
// multi-row INSERT instead: atomic as a single statement, one round trip,
// and RETURNING gives the positions for read-your-writes.

fn persistence(e: sqlx::Error) -> cqrs_es::persist::PersistenceError {
    use cqrs_es::persist::PersistenceError;
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return PersistenceError::OptimisticLockError;
        }
    }
    PersistenceError::ConnectionError(Box::new(e))
}

pub(crate) async fn append(
    pool: &PgPool,
    events: &[cqrs_es::persist::SerializedEvent],
) -> Result<Vec<i64>, cqrs_es::persist::PersistenceError> {
    let mut sql = String::from(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ",
    );
    for i in 0..events.len() {
        let b = i * 7;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}::json, ${}::json)",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    sql.push_str(" RETURNING position");
    let mut q = sqlx::query_scalar::<_, i64>(&sql);
    for e in events {
        q = q
            .bind(&e.aggregate_type)
            .bind(&e.aggregate_id)
            .bind(e.sequence as i64)
            .bind(&e.event_type)
            .bind(&e.event_version)
            .bind(e.payload.to_string())
            .bind(e.metadata.to_string());
    }
    let mut positions = q.fetch_all(pool).await.map_err(persistence)?;
    positions.sort_unstable();
    Ok(positions)
}

/// Like postgres-es' `get_last_events`, with the sequence bound rather than
/// formatted into the SQL (which made every load prepare a new statement).
pub(crate) async fn get_events_after(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: usize,
) -> Result<Vec<cqrs_es::persist::SerializedEvent>, cqrs_es::persist::PersistenceError> {
    let rows = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(after_sequence as i64)
    .fetch_all(pool)
    .await
    .map_err(persistence)?;
    rows.into_iter()
        .map(|r| {
            Ok(cqrs_es::persist::SerializedEvent {
                aggregate_type: r.try_get("aggregate_type").map_err(persistence)?,
                aggregate_id: r.try_get("aggregate_id").map_err(persistence)?,
                sequence: r.try_get::<i64, _>("sequence").map_err(persistence)? as usize,
                event_type: r.try_get("event_type").map_err(persistence)?,
                event_version: r.try_get("event_version").map_err(persistence)?,
                payload: r.try_get("payload").map_err(persistence)?,
                metadata: r.try_get("metadata").map_err(persistence)?,
            })
        })
        .collect()
}

/// Positions of events just committed by postgres-es (the snapshot path).
pub(crate) async fn positions_of(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    first: usize,
    last: usize,
) -> Result<Vec<i64>, cqrs_es::persist::PersistenceError> {
    sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND sequence BETWEEN $3 AND $4 ORDER BY position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(first as i64)
    .bind(last as i64)
    .fetch_all(pool)
    .await
    .map_err(persistence)
}
