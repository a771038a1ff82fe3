//! Events Kafka would not take, and the events of their streams that wait
//! behind them (`relay_dead_letters`, owned here). Read by `/api/v1/log`
//! and the `freshledger relay` commands; retried or skipped by an operator.

use std::collections::HashSet;

use chrono::Utc;
use event_schemas::RecordedEvent;
use serde::{Deserialize, Serialize};
use store::sql::{exec, exec_pool, fetch, typed};
use store::{Store, StoreError, StoreTx};

const TABLES: &str = include_str!("tables.sql");

/// Statuses a row can have.
pub mod status {
    /// Kafka refused the event: its stream waits until an operator acts.
    pub const POISON: &str = "poison";
    /// A later event of a poisoned stream, waiting its turn.
    pub const BLOCKED: &str = "blocked";
    /// An operator asked for the poison event to be sent again.
    pub const RETRY: &str = "retry";
    /// An operator gave the poison event up; its stream goes on.
    pub const SKIPPED: &str = "skipped";
    /// Sent after all, in its stream's order.
    pub const DELIVERED: &str = "delivered";
    /// The statuses that hold a stream back.
    pub(crate) const PENDING: &str = "('poison', 'blocked', 'retry')";
}

/// One dead-lettered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub global_position: u64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    pub status: String,
    pub error: Option<String>,
    pub failed_at: String,
    pub resolved_at: Option<String>,
}

/// Why an operator's action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no dead-lettered event at position {0}")]
    NotFound(u64),
    #[error("the event at position {position} is {status}, not poison: act on the poison event its stream waits behind{}", .blocker.map(|b| format!(" (position {b})")).unwrap_or_default())]
    NotPoison {
        position: u64,
        status: String,
        blocker: Option<u64>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the relay's table if missing (idempotent).
pub async fn ensure_tables(store: &Store) -> Result<(), StoreError> {
    store::sql::exec_script(store, TABLES).await?;
    Ok(())
}

const COLUMNS: &str = "global_position, event_id, stream_type, stream_id, event_type, status, \
                       error, failed_at, resolved_at";

/// The dead letters still holding a stream back, oldest first; with
/// `all`, also those resolved (skipped, delivered).
pub async fn list(store: &Store, all: bool) -> Result<Vec<DeadLetter>, StoreError> {
    let filter = if all {
        String::new()
    } else {
        format!("WHERE status IN {}", status::PENDING)
    };
    let rows = fetch(
        store,
        &format!("SELECT {COLUMNS} FROM relay_dead_letters {filter} ORDER BY global_position"),
        &[],
    )
    .await?;
    rows.into_iter()
        .map(|r| typed("relay_dead_letters", r))
        .collect()
}

/// How many dead letters hold streams back.
pub async fn pending_count(store: &Store) -> Result<u64, StoreError> {
    let rows = fetch(
        store,
        &format!(
            "SELECT count(*) AS n FROM relay_dead_letters WHERE status IN {}",
            status::PENDING
        ),
        &[],
    )
    .await?;
    Ok(rows[0]["n"].as_i64().unwrap_or_default() as u64)
}

/// Sends the poison event at `position` again (then the events waiting
/// behind it, in order).
pub async fn retry(store: &Store, position: u64) -> Result<DeadLetter, ActionError> {
    act(store, position, status::RETRY).await
}

/// Gives the poison event at `position` up; the events waiting behind it
/// are sent, in order.
pub async fn skip(store: &Store, position: u64) -> Result<DeadLetter, ActionError> {
    act(store, position, status::SKIPPED).await
}

async fn act(store: &Store, position: u64, to: &str) -> Result<DeadLetter, ActionError> {
    let resolved = (to == status::SKIPPED).then(|| Utc::now().to_rfc3339());
    let changed = exec_pool(
        store,
        "UPDATE relay_dead_letters SET status = ?, resolved_at = ? \
         WHERE global_position = ? AND status = 'poison'",
        &[to.into(), resolved.into(), position.into()],
    )
    .await?;
    let row = one(store, position)
        .await?
        .ok_or(ActionError::NotFound(position))?;
    if changed == 0 {
        let blocker = list(store, false)
            .await?
            .into_iter()
            .find(|d| {
                d.stream_type == row.stream_type
                    && d.stream_id == row.stream_id
                    && d.status == status::POISON
            })
            .map(|d| d.global_position);
        return Err(ActionError::NotPoison {
            position,
            status: row.status,
            blocker,
        });
    }
    Ok(row)
}

async fn one(store: &Store, position: u64) -> Result<Option<DeadLetter>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT {COLUMNS} FROM relay_dead_letters WHERE global_position = ?"),
        &[position.into()],
    )
    .await?;
    rows.into_iter()
        .next()
        .map(|r| typed("relay_dead_letters", r))
        .transpose()
}

/// The streams held back now, as (stream type, stream id).
pub(crate) async fn held_streams(store: &Store) -> Result<HashSet<(String, String)>, StoreError> {
    let rows = fetch(
        store,
        &format!(
            "SELECT DISTINCT stream_type, stream_id FROM relay_dead_letters WHERE status IN {}",
            status::PENDING
        ),
        &[],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r["stream_type"].as_str().unwrap_or_default().to_string(),
                r["stream_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Records `event` as dead-lettered (with the checkpoint's transaction).
pub(crate) async fn record(
    tx: &mut StoreTx,
    event: &RecordedEvent,
    status: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    exec(
        tx,
        &format!(
            "INSERT INTO relay_dead_letters ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) \
             ON CONFLICT (global_position) DO NOTHING"
        ),
        &[
            event.global_position.into(),
            event.event_id.to_string().into(),
            event.stream_type.as_str().into(),
            event.stream_id.as_str().into(),
            event.event_type.as_str().into(),
            status.into(),
            error.map(str::to_string).into(),
            Utc::now().to_rfc3339().into(),
        ],
    )
    .await?;
    Ok(())
}

/// The waiting rows of streams an operator released (their oldest pending
/// row is not poison), grouped by stream, each group in log order.
pub(crate) async fn released(store: &Store) -> Result<Vec<Vec<DeadLetter>>, StoreError> {
    let mut groups: Vec<Vec<DeadLetter>> = Vec::new();
    for row in list(store, false).await? {
        match groups
            .iter_mut()
            .find(|g| g[0].stream_type == row.stream_type && g[0].stream_id == row.stream_id)
        {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups.retain(|g| g[0].status != status::POISON);
    Ok(groups)
}

/// Marks a waiting row sent, or poison again with `error`.
pub(crate) async fn settle(
    store: &Store,
    position: u64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    match error {
        None => exec_pool(
            store,
            "UPDATE relay_dead_letters SET status = 'delivered', resolved_at = ? WHERE global_position = ?",
            &[Utc::now().to_rfc3339().into(), position.into()],
        )
        .await?,
        Some(e) => exec_pool(
            store,
            "UPDATE relay_dead_letters SET status = 'poison', error = ?, failed_at = ? WHERE global_position = ?",
            &[e.into(), Utc::now().to_rfc3339().into(), position.into()],
        )
        .await?,
    };
    Ok(())
}
