//! SQLite: the embedded default. One file; one writer at a time. A write
//! transaction takes the write lock at `BEGIN IMMEDIATE` and the position
//! (AUTOINCREMENT) under it, so positions become visible in commit order and
//! the visible log is always a gap-free prefix of what will ever commit.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use cqrs_es::persist::{PersistenceError, SerializedEvent, SerializedSnapshot};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::raw::StoredEvent;
use crate::StoreError;

const COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

fn json(position: i64, s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        position,
        reason: e.to_string(),
    })
}

fn raw(row: SqliteRow) -> Result<StoredEvent, StoreError> {
    let position: i64 = row.try_get("position")?;
    let recorded: String = row.try_get("recorded_at")?;
    Ok(StoredEvent {
        position,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: json(position, row.try_get("payload")?)?,
        metadata: json(position, row.try_get("metadata")?)?,
        recorded_at: DateTime::<Utc>::from_str(&recorded).map_err(|e| StoreError::Corrupt {
            position,
            reason: format!("recorded_at {recorded:?}: {e}"),
        })?,
    })
}

pub(crate) async fn head(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

pub(crate) async fn read_all(
    pool: &SqlitePool,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

/// Every event in `(after, up_to]` (positions at or below the head are
/// final on SQLite).
pub(crate) async fn read_range(
    pool: &SqlitePool,
    after: i64,
    up_to: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > ? AND position <= ? ORDER BY position"
    ))
    .bind(after)
    .bind(up_to)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

pub(crate) async fn read_stream(
    pool: &SqlitePool,
    stream_type: &str,
    stream_id: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = ? AND aggregate_id = ? ORDER BY sequence"
    ))
    .bind(stream_type)
    .bind(stream_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(raw).collect()
}

/// Every event of the streams `ids` of one type, in log order.
pub(crate) async fn read_streams(
    pool: &SqlitePool,
    stream_type: &str,
    ids: &[String],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out = Vec::new();
    // Within SQLite's limit on bound parameters.
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_type = ? AND aggregate_id IN ({marks})"
        );
        let mut q = sqlx::query(&sql).bind(stream_type);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(pool).await? {
            out.push(raw(row)?);
        }
    }
    out.sort_by_key(|e| e.position);
    Ok(out)
}

/// The events at `positions` (those that exist), in log order.
pub(crate) async fn read_positions(
    pool: &SqlitePool,
    positions: &[i64],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out = Vec::new();
    for chunk in positions.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT {COLUMNS} FROM events WHERE position IN ({marks})");
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q.bind(p);
        }
        for row in q.fetch_all(pool).await? {
            out.push(raw(row)?);
        }
    }
    out.sort_by_key(|e| e.position);
    Ok(out)
}

pub(crate) async fn read_correlation(
    pool: &SqlitePool,
    correlation_id: Uuid,
) -> Result<Vec<StoredEvent>, StoreError> {
    read_where(pool, "correlation_id = ?", &correlation_id.to_string()).await
}

pub(crate) async fn read_idempotency_key(
    pool: &SqlitePool,
    key: &str,
) -> Result<Vec<StoredEvent>, StoreError> {
    read_where(pool, "json_extract(metadata, '$.idempotency_key') = ?", key).await
}

/// Every committed event matching `condition` (one parameter), in log order.
async fn read_where(
    pool: &SqlitePool,
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

// ---------------------------------------------------------------------------
// The cqrs-es repository, SQLite flavour (same contract as postgres-es).

fn persistence(e: sqlx::Error) -> PersistenceError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return PersistenceError::OptimisticLockError;
        }
    }
    PersistenceError::ConnectionError(Box::new(e))
}

fn serialized(row: SqliteRow) -> Result<SerializedEvent, PersistenceError> {
    let sequence: i64 = row.try_get("sequence").map_err(persistence)?;
    let payload: String = row.try_get("payload").map_err(persistence)?;
    let metadata: String = row.try_get("metadata").map_err(persistence)?;
    Ok(SerializedEvent {
        aggregate_id: row.try_get("aggregate_id").map_err(persistence)?,
        sequence: sequence as usize,
        aggregate_type: row.try_get("aggregate_type").map_err(persistence)?,
        event_type: row.try_get("event_type").map_err(persistence)?,
        event_version: row.try_get("event_version").map_err(persistence)?,
        payload: serde_json::from_str(&payload)?,
        metadata: serde_json::from_str(&metadata)?,
    })
}

pub(crate) async fn get_events(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_id: &str,
    after_sequence: usize,
) -> Result<Vec<SerializedEvent>, PersistenceError> {
    sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(after_sequence as i64)
    .fetch_all(pool)
    .await
    .map_err(persistence)?
    .into_iter()
    .map(serialized)
    .collect()
}

pub(crate) async fn get_snapshot(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<SerializedSnapshot>, PersistenceError> {
    let Some(row) = sqlx::query(
        "SELECT last_sequence, current_snapshot, payload FROM snapshots \
         WHERE aggregate_type = ? AND aggregate_id = ?",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(pool)
    .await
    .map_err(persistence)?
    else {
        return Ok(None);
    };
    let last: i64 = row.try_get("last_sequence").map_err(persistence)?;
    let current: i64 = row.try_get("current_snapshot").map_err(persistence)?;
    let payload: String = row.try_get("payload").map_err(persistence)?;
    Ok(Some(SerializedSnapshot {
        aggregate_id: aggregate_id.to_string(),
        aggregate: serde_json::from_str(&payload)?,
        current_sequence: last as usize,
        current_snapshot: current as usize,
    }))
}

/// Appends events (and the snapshot update) in one write transaction.
/// A duplicate (type, id, sequence) means another writer won the race.
pub(crate) async fn persist(
    pool: &SqlitePool,
    aggregate_type: &str,
    events: &[SerializedEvent],
    snapshot: Option<(String, Value, usize)>,
) -> Result<Vec<i64>, PersistenceError> {
    let mut positions = Vec::with_capacity(events.len());
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(persistence)?;
    for e in events {
        let event_id = e.metadata.get("event_id").and_then(Value::as_str);
        let correlation = e.metadata.get("correlation_id").and_then(Value::as_str);
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, event_id, correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING position",
        )
        .bind(&e.aggregate_type)
        .bind(&e.aggregate_id)
        .bind(e.sequence as i64)
        .bind(&e.event_type)
        .bind(&e.event_version)
        .bind(e.payload.to_string())
        .bind(e.metadata.to_string())
        .bind(event_id)
        .bind(correlation)
        .fetch_one(&mut *tx)
        .await
        .map_err(persistence)?;
        positions.push(position);
    }
    if let Some((aggregate_id, payload, current_snapshot)) = snapshot {
        let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
        let done = if current_snapshot == 1 {
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(aggregate_type)
            .bind(&aggregate_id)
            .bind(last_sequence)
            .bind(current_snapshot as i64)
            .bind(payload.to_string())
            .execute(&mut *tx)
            .await
            .map_err(persistence)?
        } else {
            sqlx::query(
                "UPDATE snapshots SET last_sequence = ?, payload = ?, current_snapshot = ? \
                 WHERE aggregate_type = ? AND aggregate_id = ? AND current_snapshot = ?",
            )
            .bind(last_sequence)
            .bind(payload.to_string())
            .bind(current_snapshot as i64)
            .bind(aggregate_type)
            .bind(&aggregate_id)
            .bind(current_snapshot as i64 - 1)
            .execute(&mut *tx)
            .await
            .map_err(persistence)?
        };
        if done.rows_affected() != 1 {
            return Err(PersistenceError::OptimisticLockError);
        }
    }
    tx.commit().await.map_err(persistence)?;
    Ok(positions)
}

pub(crate) async fn get_all_of_type(
    pool: &SqlitePool,
    aggregate_type: &str,
) -> Result<Vec<SerializedEvent>, PersistenceError> {
    sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events WHERE aggregate_type = ? ORDER BY position",
    )
    .bind(aggregate_type)
    .fetch_all(pool)
    .await
    .map_err(persistence)?
    .into_iter()
    .map(serialized)
    .collect()
}
