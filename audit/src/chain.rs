//! The chain's tables (`audit_events`, `audit_checkpoints`): the typed API
//! every other part of the crate uses, and the keeper that extends the
//! chain as the log grows.

use chrono::{DateTime, Utc};
use event_schemas::envelope::keys;
use serde::Deserialize;
use store::sql::{self, Arg};
use store::{Store, StoreError, StoredEvent};

use crate::canonical::{link_event, stamp, Hash, GENESIS};
use crate::checkpoint::{AuditKey, Checkpoint};
use crate::verify::Link;

const TABLES: &str = include_str!("tables.sql");
/// Rows per INSERT (11 values each, within both backends' parameter limits).
const ROWS_PER_INSERT: usize = 400;

pub(crate) async fn ensure(store: &Store) -> Result<(), StoreError> {
    sql::exec_script(store, TABLES).await
}

fn corrupt(table: &'static str, key: impl ToString, reason: impl ToString) -> StoreError {
    StoreError::CorruptRow {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// The chain's last link (position and hash); genesis when empty.
pub async fn last_link(store: &Store) -> Result<(u64, Hash), StoreError> {
    link_before(store, i64::MAX as u64).await
}

#[derive(Deserialize)]
struct LinkRow {
    position: i64,
    previous: i64,
    hash: String,
}

/// The links in `(after, up_to]`.
pub async fn links(store: &Store, after: u64, up_to: u64) -> Result<Vec<Link>, StoreError> {
    let rows = sql::fetch(
        store,
        "SELECT position, previous, hash FROM audit_events WHERE position > ? AND position <= ? ORDER BY position",
        &[after.into(), up_to.into()],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let r: LinkRow = sql::typed("audit_events", r)?;
            Ok(Link {
                position: r.position as u64,
                previous: r.previous as u64,
                hash: r
                    .hash
                    .parse()
                    .map_err(|e| corrupt("audit_events", r.position, e))?,
            })
        })
        .collect()
}

/// The link at `position`, if the chain has one.
pub async fn link_at(store: &Store, position: u64) -> Result<Option<Link>, StoreError> {
    Ok(links(store, position.saturating_sub(1), position)
        .await?
        .pop())
}

/// The last link at or below `position` (where an export from
/// `position + 1` starts).
pub async fn link_before(store: &Store, position: u64) -> Result<(u64, Hash), StoreError> {
    let rows = sql::fetch(
        store,
        "SELECT position, hash FROM audit_events WHERE position <= ? ORDER BY position DESC LIMIT 1",
        &[position.into()],
    )
    .await?;
    match rows.first() {
        None => Ok((0, GENESIS)),
        Some(r) => {
            let p = r["position"].as_i64().unwrap_or_default() as u64;
            let hash = r["hash"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| corrupt("audit_events", p, e))?;
            Ok((p, hash))
        }
    }
}

#[derive(Deserialize)]
struct CheckpointRow {
    position: i64,
    hash: String,
    signed_at: String,
    public_key: Option<String>,
    signature: Option<String>,
}

/// The checkpoints in `(after, up_to]`, in position order.
pub async fn checkpoints(
    store: &Store,
    after: u64,
    up_to: u64,
) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = sql::fetch(
        store,
        "SELECT position, hash, signed_at, public_key, signature FROM audit_checkpoints \
         WHERE position > ? AND position <= ? ORDER BY position",
        &[after.into(), (up_to.min(i64::MAX as u64)).into()],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let r: CheckpointRow = sql::typed("audit_checkpoints", r)?;
            let bad = |e: String| corrupt("audit_checkpoints", r.position, e);
            Ok(Checkpoint {
                position: r.position as u64,
                hash: r.hash.parse().map_err(bad)?,
                signed_at: DateTime::parse_from_rfc3339(&r.signed_at)
                    .map_err(|e| bad(e.to_string()))?
                    .with_timezone(&Utc),
                public_key: r.public_key,
                signature: r.signature,
            })
        })
        .collect()
}

/// The newest checkpoint.
pub async fn last_checkpoint(store: &Store) -> Result<Option<Checkpoint>, StoreError> {
    let rows = sql::fetch(
        store,
        "SELECT max(position) AS p FROM audit_checkpoints",
        &[],
    )
    .await?;
    match rows.first().and_then(|r| r["p"].as_i64()) {
        None => Ok(None),
        Some(p) => Ok(checkpoints(store, p as u64 - 1, p as u64).await?.pop()),
    }
}

/// One event's row: its link and what auditors search by.
fn row_args(e: &StoredEvent, previous: u64, hash: &Hash, out: &mut Vec<Arg>) {
    let meta = |k: &str| {
        e.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let occurred = DateTime::parse_from_rfc3339(meta(keys::OCCURRED_AT))
        .map(|t| stamp(t.with_timezone(&Utc)))
        .unwrap_or_default();
    out.extend([
        Arg::Int(e.position),
        previous.into(),
        hash.hex().into(),
        e.aggregate_type.as_str().into(),
        e.aggregate_id.as_str().into(),
        e.event_type.as_str().into(),
        meta(keys::ACTOR).into(),
        meta(keys::CORRELATION_ID).into(),
        occurred.into(),
        stamp(e.recorded_at).into(),
    ]);
}

/// Chains `events` (in position order, after the link `(from, hash)`) and
/// writes their rows, and the checkpoints `sign` makes, in one transaction.
/// `sign(position, hash, last)` is asked after each event (`last`: the
/// batch's last). A row that exists already (another keeper got there)
/// fails the whole batch.
pub(crate) async fn append(
    store: &Store,
    from: (u64, Hash),
    events: &[StoredEvent],
    mut sign: impl FnMut(u64, Hash, bool) -> Option<Checkpoint>,
) -> Result<((u64, Hash), Vec<Checkpoint>), AppendError> {
    let (mut previous, mut hash) = from;
    let mut args = Vec::with_capacity(events.len() * 10);
    let mut checkpoints = Vec::new();
    for (i, e) in events.iter().enumerate() {
        hash = link_event(&hash, e).map_err(|why| AppendError::Unhashable {
            position: e.position as u64,
            why,
        })?;
        row_args(e, previous, &hash, &mut args);
        previous = e.position as u64;
        checkpoints.extend(sign(previous, hash, i + 1 == events.len()));
    }
    if events.is_empty() {
        return Ok(((previous, hash), checkpoints));
    }
    let mut tx = store.begin().await?;
    for chunk in args.chunks(ROWS_PER_INSERT * 10) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len() / 10].join(", ");
        sql::exec(
            &mut tx,
            &format!(
                "INSERT INTO audit_events (position, previous, hash, stream_type, stream_id, event_type, \
                 actor, correlation_id, occurred_at, recorded_at) VALUES {rows}"
            ),
            chunk,
        )
        .await?;
    }
    for cp in &checkpoints {
        insert_checkpoint(&mut tx, cp).await?;
    }
    tx.commit().await?;
    Ok(((previous, hash), checkpoints))
}

pub(crate) async fn insert_checkpoint(
    tx: &mut store::StoreTx,
    cp: &Checkpoint,
) -> Result<(), StoreError> {
    sql::exec(
        tx,
        "INSERT INTO audit_checkpoints (position, hash, signed_at, public_key, signature) VALUES (?, ?, ?, ?, ?)",
        &[
            cp.position.into(),
            cp.hash.hex().into(),
            stamp(cp.signed_at).into(),
            cp.public_key.clone().into(),
            cp.signature.clone().into(),
        ],
    )
    .await?;
    Ok(())
}

/// A checkpoint of the chain's head made now.
pub(crate) fn checkpoint_now(position: u64, hash: Hash, key: Option<&AuditKey>) -> Checkpoint {
    Checkpoint::new(position, hash, Utc::now(), key)
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event at {position} cannot be hashed: {why}")]
    Unhashable { position: u64, why: String },
}
