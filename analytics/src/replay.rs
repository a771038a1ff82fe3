//! Replays: tables built anew from the log, up to a position (or the log
//! as it stood at a moment), beside the live ones, then swapped in.
//!
//! Three stages run at once: reading ranges of the log (four at a time,
//! decoded in parallel, handed on in order), turning them into rows, and
//! inserting large blocks into the `_next` tables. The swap marks
//! the tables in `analytics_positions` (the live projector stops moving
//! them), renames every `_next` table in with one `RENAME TABLE`
//! statement (readers see the old set or the new one), then sets their
//! positions to where the replay stopped: the live projector continues
//! from there. Replaying into a database no live projector writes to keeps
//! the log as it stood ("what did we know then").

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::ch::Ch;
use crate::facts::Facts;
use crate::mapper::{write, Mapper, WriteError};
use crate::tables::Table;
use crate::{positions, refresh_products};

/// Positions read from the log at once (one range).
const PAGE: usize = 10_000;
/// Ranges being read at once.
const READ_AHEAD: usize = 4;
/// Events whose rows are sent to ClickHouse as one block per table.
const BLOCK_EVENTS: usize = 50_000;
/// First events of streams kept at hand (a replay sees every stream's first
/// event before its others, so misses are rare).
const ORIGINS: usize = 1_000_000;

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The log's head when the replay starts.
    Head,
    /// Up to and including this position.
    Position(u64),
    /// The log as it stood at this moment.
    AsOf(DateTime<Utc>),
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub to: u64,
    pub events: u64,
    pub tables: Vec<Table>,
    pub elapsed: std::time::Duration,
}

/// The position a replay to `target` stops at.
pub async fn resolve(store: &Store, target: Target) -> Result<u64, WriteError> {
    let head = store.head().await?;
    Ok(match target {
        Target::Head => head,
        Target::Position(p) if p > head => {
            return Err(WriteError::Store(StoreError::Config(format!(
                "--to-position {p} is beyond the log's last position {head}"
            ))))
        }
        Target::Position(p) => p,
        Target::AsOf(at) => store.position_at(at).await?,
    })
}

/// Builds `tables` of `ch`'s database from the log up to `to` and swaps
/// them in. `progress(position, events)` is called after every block.
pub async fn replay(
    store: &Store,
    ch: &Ch,
    tables: &[Table],
    to: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Replayed, WriteError> {
    let started = Instant::now();
    let db = ch.database().to_string();
    // One replay per database at a time (they would build the same
    // `_next` tables).
    let Some(lease) = store.try_lease(&format!("analytics-replay:{db}")).await? else {
        return Err(WriteError::Store(StoreError::Config(format!(
            "another replay into ClickHouse database {db} is running; wait for it to finish"
        ))));
    };
    let replayed = build_and_swap(store, ch, tables, to, progress).await;
    lease.release().await;
    let events = replayed?;
    Ok(Replayed {
        to,
        events,
        tables: tables.to_vec(),
        elapsed: started.elapsed(),
    })
}

async fn build_and_swap(
    store: &Store,
    ch: &Ch,
    tables: &[Table],
    to: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, WriteError> {
    let db = ch.database().to_string();
    ch.prepare(false).await?;
    positions::ensure(store, &db).await?;
    for t in tables {
        ch.exec(&format!(
            "DROP TABLE IF EXISTS {}",
            ch.table(t.name(), "_next")
        ))
        .await?;
        ch.exec(&crate::tables::create_statement(&db, t.name(), "_next"))
            .await?;
    }
    let after: BTreeMap<Table, u64> = tables.iter().map(|t| (*t, 0)).collect();

    // Reader → (this task: mapper) → writer.
    let (pages_tx, mut pages) = mpsc::channel::<Vec<event_schemas::RecordedEvent>>(4);
    // Ranges of positions read at once (each on its own task, decoded in
    // parallel), handed on in log order: the log up to `to` is final.
    let reader_store = store.clone();
    let reader = tokio::spawn(async move {
        let mut in_flight = std::collections::VecDeque::new();
        let mut from = 0;
        loop {
            while in_flight.len() < READ_AHEAD && from < to {
                let up_to = (from + PAGE as u64).min(to);
                let store = reader_store.clone();
                in_flight.push_back(tokio::spawn(
                    async move { store.read_range(from, up_to).await },
                ));
                from = up_to;
            }
            let Some(next) = in_flight.pop_front() else {
                break;
            };
            let page = next
                .await
                .map_err(|e| StoreError::Config(format!("a log reader failed: {e}")))??;
            if !page.is_empty() && pages_tx.send(page).await.is_err() {
                break;
            }
        }
        Ok::<(), StoreError>(())
    });
    let (blocks_tx, mut blocks) = mpsc::channel::<(Facts, u64, u64)>(2);
    let writer_ch = ch.clone();
    let writer = async move {
        while let Some((facts, position, events)) = blocks.recv().await {
            write(&writer_ch, "_next", &facts).await?;
            progress(position, events);
        }
        Ok::<(), WriteError>(())
    };
    // Its own task, so mapping runs beside the writer's encoding.
    let mapper_store = store.clone();
    let mapping = tokio::spawn(async move {
        let mut mapper = Mapper::new(&mapper_store, ORIGINS);
        let mut facts = Facts::default();
        let (mut events, mut in_block, mut last) = (0u64, 0usize, 0u64);
        while let Some(page) = pages.recv().await {
            mapper.map(&page, &after, &mut facts).await?;
            events += page.len() as u64;
            in_block += page.len();
            last = page.last().map_or(last, |e| e.global_position);
            if in_block >= BLOCK_EVENTS {
                let block = std::mem::take(&mut facts);
                if blocks_tx.send((block, last, events)).await.is_err() {
                    break;
                }
                in_block = 0;
            }
        }
        if in_block > 0 || events == 0 {
            let _ = blocks_tx.send((facts, last, events)).await;
        }
        Ok::<u64, WriteError>(events)
    });
    let written = writer.await;
    let mapped = mapping
        .await
        .map_err(|e| StoreError::Config(format!("the mapper failed: {e}")))?;
    let read = reader
        .await
        .map_err(|e| StoreError::Config(format!("the log reader failed: {e}")))?;
    written?;
    let events = mapped?;
    read?;

    refresh_products(store, ch).await?;
    swap(store, ch, tables, to).await?;
    // The views read the new tables by name; replaced so a replay by a
    // newer build also brings its view definitions.
    crate::reports::create_views(ch, true).await?;
    Ok(events)
}

/// Renames every `_next` table in at once and sets their positions.
async fn swap(store: &Store, ch: &Ch, tables: &[Table], to: u64) -> Result<(), WriteError> {
    let db = ch.database();
    positions::begin_swap(store, db, tables).await?;
    let mut renames = Vec::new();
    let mut old = Vec::new();
    for t in tables {
        let live = ch.table(t.name(), "");
        if ch.exists(t.name(), "").await? {
            let retired = ch.table(t.name(), "_old");
            ch.exec(&format!("DROP TABLE IF EXISTS {retired}")).await?;
            renames.push(format!("{live} TO {retired}"));
            old.push(retired);
        }
        renames.push(format!("{} TO {live}", ch.table(t.name(), "_next")));
    }
    ch.exec(&format!("RENAME TABLE {}", renames.join(", ")))
        .await?;
    positions::finish_swap(store, db, tables, to).await?;
    for retired in old {
        ch.exec(&format!("DROP TABLE IF EXISTS {retired}")).await?;
    }
    Ok(())
}
