//! Turning batches of events into rows, with the first events of their
//! streams at hand, and writing the rows to ClickHouse in blocks.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use event_schemas::RecordedEvent;
use store::{Store, StoreError};

use crate::ch::{Ch, ChError};
use crate::facts::{self, FactError, Facts, Origin};
use crate::tables::Table;

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    ClickHouse(#[from] ChError),
    #[error("the event store failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Fact(#[from] FactError),
}

/// The first events of recently seen streams (they never change), so a
/// stream's later events need no read of the store.
pub struct Mapper {
    /// Where to read a first event that is not at hand (`None`: nowhere,
    /// the events mapped carry their streams' first events).
    store: Option<Store>,
    origins: lru::LruCache<(String, String), Arc<Origin>>,
}

impl Mapper {
    pub fn new(store: &Store, capacity: usize) -> Self {
        Mapper {
            store: Some(store.clone()),
            origins: lru::LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
        }
    }

    /// A mapper for events that come with their streams' first events
    /// (tests, tools): a missing one is an error.
    pub fn offline(capacity: usize) -> Self {
        Mapper {
            store: None,
            origins: lru::LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
        }
    }

    /// Adds the rows of `events` to `out`: for each table, only events
    /// after that table's position in `after`.
    pub async fn map<E: Borrow<RecordedEvent>>(
        &mut self,
        events: &[E],
        after: &BTreeMap<Table, u64>,
        out: &mut Facts,
    ) -> Result<(), WriteError> {
        for event in events {
            let event: &RecordedEvent = event.borrow();
            let wanted = |t: Table| after.get(&t).is_some_and(|p| event.global_position > *p);
            if wanted(Table::Events) {
                out.events.push(facts::event_row(event));
            }
            let any_fact = Table::ALL.iter().any(|t| *t != Table::Events && wanted(*t));
            if facts::is_origin(event) {
                if let Some(origin) = Origin::of(event) {
                    self.origins.put(
                        (event.stream_type.clone(), event.stream_id.clone()),
                        Arc::new(origin),
                    );
                }
            }
            if !any_fact {
                continue;
            }
            let origin = if facts::needs_origin(event) {
                self.origin(event).await?
            } else {
                None
            };
            facts::add_facts(event, origin.as_deref(), &wanted, out)?;
        }
        Ok(())
    }

    async fn origin(&mut self, event: &RecordedEvent) -> Result<Option<Arc<Origin>>, StoreError> {
        let key = (event.stream_type.clone(), event.stream_id.clone());
        if let Some(origin) = self.origins.get(&key) {
            return Ok(Some(origin.clone()));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let first = store
            .read_stream(&event.stream_type, &event.stream_id)
            .await?
            .into_iter()
            .next();
        let origin = first.as_ref().and_then(Origin::of).map(Arc::new);
        if let Some(o) = &origin {
            self.origins.put(key, o.clone());
        }
        Ok(origin)
    }
}

/// Writes `facts` to `ch`'s tables with `suffix`, one block per table, the
/// five at once; returns once ClickHouse acknowledged every block.
pub async fn write(ch: &Ch, suffix: &str, facts: &Facts) -> Result<(), ChError> {
    let (events, lines, stock, payments, deliveries) = (
        ch.table("events", suffix),
        ch.table("order_lines", suffix),
        ch.table("stock_movements", suffix),
        ch.table("payments", suffix),
        ch.table("deliveries", suffix),
    );
    tokio::try_join!(
        ch.insert(&events, &facts.events),
        ch.insert(&lines, &facts.order_lines),
        ch.insert(&stock, &facts.stock_movements),
        ch.insert(&payments, &facts.payments),
        ch.insert(&deliveries, &facts.deliveries),
    )?;
    Ok(())
}
