//! Postgres: reading the log below a visibility horizon, and wake-ups.
//!
//! Positions come from a sequence, taken at INSERT and visible at COMMIT, so
//! position 11 can be visible while 10 is still in flight. The reader never
//! returns an event above a *safe head*, found in two steps:
//!
//! 1. One statement reads M, the highest visible position, and takes an xid
//!    X for the reader itself (`pg_current_xact_id()`), assigned after the
//!    statement's snapshot. Any transaction T holding a position p < M took
//!    p before M was taken, hence before the snapshot, and had its xid by
//!    then (`fl_next_position()` assigns it first); xids are handed out in
//!    order, so xid(T) < X.
//! 2. Wait until no transaction that holds a position and has an xid below
//!    X is in progress. `fl_next_position()` marks a transaction before it
//!    takes a position: it takes a shared advisory lock keyed by its own
//!    xid and holds it until the transaction ends. So the reader waits for
//!    the xids below X, read from fresh snapshots taken after its own
//!    transaction committed (their `xmax`, latest completed xid + 1, is
//!    above X, so every running xid below X is in their in-progress list),
//!    whose key it cannot lock exclusively. (Step 1's own snapshot is not
//!    enough: a running transaction whose xid is above every completed one
//!    lies at or above its `xmax` and is not listed.) Transactions of other
//!    databases, of other tables, or that only read do not hold readers
//!    back. (Keys are an xid's low 31 bits: two running xids 2^31 apart
//!    would share one, and the reader would merely wait for both.)
//!
//! Then every position <= M is final: committed and visible, or rolled back
//! and gone for good. An appender whose transaction stays open still holds
//! readers back (skipping it could lose an event); the wait reports itself
//! ([`crate::stall`]). A migration refuses a position that did not come
//! from `fl_next_position()`, so no INSERT can sidestep the xid rule.
use std::time::Duration;

use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::raw::StoredEvent;
use crate::stall::{Blocker, Horizon, REPORT_AFTER};
use crate::StoreError;

pub(crate) const CHANNEL: &str = "freshledger_events";

const COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

fn raw(row: PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
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

/// M and the reader's xid X, from one statement; and whether anything can
/// be in flight at all (if the statement's snapshot listed no running xid
/// and X is its `xmax`, no xid below X can be running).
async fn horizon_now(pool: &PgPool) -> Result<(i64, String, bool), StoreError> {
    let (max, x, in_flight): (i64, String, bool) = sqlx::query_as(
        "SELECT COALESCE((SELECT max(position) FROM events), 0), \
                pg_current_xact_id()::text, \
                EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot())) \
                  OR pg_snapshot_xmax(pg_current_snapshot()) <> pg_current_xact_id()",
    )
    .fetch_one(pool)
    .await?;
    Ok((max, x, in_flight))
}

/// The in-progress transactions with an xid below `$1` that hold a
/// position: those whose appender key (migration 0008) cannot be locked
/// exclusively. A key that can be is held only for this statement.
const BLOCKERS: &str = "SELECT r.xid::text \
     FROM pg_snapshot_xip(pg_current_snapshot()) AS r(xid) \
     WHERE r.xid < $1::text::xid8 \
       AND NOT pg_try_advisory_xact_lock(1181499728, ((r.xid::text::bigint) & 2147483647)::int) \
     ORDER BY 1";

/// The sessions of the transactions `xids` (each holds an `ExclusiveLock`
/// on its own transaction id); read from `pg_locks`, so only to describe a
/// wait that lasts.
const SESSIONS: &str = "SELECT DISTINCT t.pid \
     FROM unnest($1::text[]) AS r(xid) \
     JOIN pg_locks t ON t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted \
      AND t.transactionid = ((r.xid::bigint) & 4294967295)::text::xid \
     ORDER BY 1";

/// Waits until no transaction that can still add an event and has an xid
/// below `x` is in progress; reports the wait once it lasts.
async fn wait_below(pool: &PgPool, x: &str, horizon: &Horizon) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_micros(500);
    // The transactions last described, and when: described again only
    // when they change, or once a second (the loop polls every <= 50 ms).
    let mut described: Option<(Vec<String>, std::time::Instant)> = None;
    loop {
        let blockers: Vec<String> = sqlx::query_scalar(BLOCKERS).bind(x).fetch_all(pool).await?;
        if blockers.is_empty() {
            return Ok(());
        }
        let waited = started.elapsed();
        let stale = described
            .as_ref()
            .is_none_or(|(xids, at)| *xids != blockers || at.elapsed() >= REPORT_AFTER);
        if waited >= REPORT_AFTER && stale {
            let pids: Vec<i32> = sqlx::query_scalar(SESSIONS)
                .bind(&blockers)
                .fetch_all(pool)
                .await
                .unwrap_or_default();
            horizon.blocked(waited, describe(pool, &pids).await);
            described = Some((blockers, std::time::Instant::now()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// What the server says about the sessions `pids` (as much as it shows).
async fn describe(pool: &PgPool, pids: &[i32]) -> Vec<Blocker> {
    type Row = (
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Result<Vec<Row>, _> = sqlx::query_as(
        "SELECT p.pid, a.application_name, a.datname::text, a.state, \
                EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::bigint \
         FROM unnest($1::int4[]) AS p(pid) LEFT JOIN pg_stat_activity a ON a.pid = p.pid \
         ORDER BY p.pid",
    )
    .bind(pids)
    .fetch_all(pool)
    .await;
    let rows = rows.unwrap_or_else(|_| pids.iter().map(|&p| (p, None, None, None, None)).collect());
    rows.into_iter()
        .map(|(pid, application, database, state, age)| Blocker {
            pid,
            application,
            database,
            state,
            transaction_age_seconds: age,
        })
        .collect()
}

/// The highest position below which the log can no longer change.
pub(crate) async fn safe_head(pool: &PgPool, horizon: &Horizon) -> Result<i64, StoreError> {
    let (max, x, in_flight) = horizon_now(pool).await?;
    if in_flight {
        wait_below(pool, &x, horizon).await?;
    }
    horizon.proven(max.max(0) as u64);
    Ok(max)
}

pub(crate) async fn read_all(
    pool: &PgPool,
    after: i64,
    limit: i64,
    horizon: &Horizon,
) -> Result<Vec<StoredEvent>, StoreError> {
    // Nothing new: answer without taking an xid.
    let max: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
        .fetch_one(pool)
        .await?;
    if max <= after {
        return Ok(Vec::new());
    }
    let max = safe_head(pool, horizon).await?;
    read_range(pool, after, max, limit).await
}

/// Up to `limit` events in `(after, max]`; `max` must be a safe head.
pub(crate) async fn read_range(
    pool: &PgPool,
    after: i64,
    max: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
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
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    ))
    .bind(stream_type)
    .bind(stream_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

/// Every event of the streams `ids` of one type, in log order.
pub(crate) async fn read_streams(
    pool: &PgPool,
    stream_type: &str,
    ids: &[String],
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = ANY($2) ORDER BY position"
    ))
    .bind(stream_type)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

/// The events at `positions` (those that exist), in log order.
pub(crate) async fn read_positions(
    pool: &PgPool,
    positions: &[i64],
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE position = ANY($1) ORDER BY position"
    ))
    .bind(positions)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

pub(crate) async fn read_correlation(
    pool: &PgPool,
    correlation_id: Uuid,
) -> Result<Vec<StoredEvent>, StoreError> {
    read_where(
        pool,
        "correlation_id = $1::uuid",
        &correlation_id.to_string(),
    )
    .await
}

pub(crate) async fn read_idempotency_key(
    pool: &PgPool,
    key: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    read_where(pool, "metadata ->> 'idempotency_key' = $1", key).await
}

/// Every committed event matching `condition` (one parameter, `$1`, bound
/// as text), in log order.
async fn read_where(
    pool: &PgPool,
    condition: &str,
    value: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE {condition} ORDER BY position"
    ))
    .bind(value)
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
    // Notifications carry the sender's id, so this process ignores its own:
    // its subscribers were woken in-process already.
    let me = Uuid::new_v4().to_string();
    let sender = me.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&sender)
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
                Ok(n) if n.payload() == me => {}
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
    rows.into_iter().map(serialized).collect()
}

/// A row of the events table as cqrs-es wants it.
pub(crate) fn serialized(
    r: PgRow,
) -> Result<cqrs_es::persist::SerializedEvent, cqrs_es::persist::PersistenceError> {
    Ok(cqrs_es::persist::SerializedEvent {
        aggregate_type: r.try_get("aggregate_type").map_err(persistence)?,
        aggregate_id: r.try_get("aggregate_id").map_err(persistence)?,
        sequence: r.try_get::<i64, _>("sequence").map_err(persistence)? as usize,
        event_type: r.try_get("event_type").map_err(persistence)?,
        event_version: r.try_get("event_version").map_err(persistence)?,
        payload: r.try_get("payload").map_err(persistence)?,
        metadata: r.try_get("metadata").map_err(persistence)?,
    })
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
