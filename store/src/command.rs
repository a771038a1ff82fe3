//! Executing a command against an aggregate: decide, append, and on a lost
//! race (another writer appended to the stream first) decide again on the
//! fresh state, with backoff, a bounded number of times.
//!
//! Retrying is safe because the command is re-decided against the state that
//! won; it is never re-applied blindly.
//!
//! Aggregate states are cached in memory (bounded, LRU) and a command is
//! first decided on the cached state, or on the empty state for a stream not
//! in the cache. That is sound because of how each outcome is confirmed:
//! - a decision that appends is confirmed by the append itself: it writes
//!   at the next stream version, which fails if anyone appended since;
//! - a rejection, or a decision to append nothing, is never returned on the
//!   strength of the cache: the aggregate is loaded fresh and the command
//!   decided again first.
//!
//! So a stale cache can cost a retry, never a wrong answer; and the common
//! path (create a stream, or act on one this process touched last) is one
//! round trip to the database.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use event_schemas::envelope::keys;
use event_schemas::EventMetadata;
use lru::LruCache;

use crate::repo::COMMITTED;
use crate::{Repo, Store, StoreError};

/// How often and how patiently a command retries after losing a race.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// One attempt: a lost race is reported, not retried.
    pub fn never() -> Self {
        RetryPolicy {
            attempts: 1,
            ..Default::default()
        }
    }
}

/// What a successful command appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Events appended (0 when the command changed nothing).
    pub events: usize,
    /// The stream's version after the command.
    pub stream_version: u64,
    /// Global position of the last event appended, if any.
    pub last_position: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race for this stream.
    #[error("stream kept changing concurrently; gave up after {attempts} attempts")]
    Conflict { attempts: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A cached aggregate: state, version and snapshot counter.
struct Cached<A> {
    aggregate: A,
    version: usize,
    snapshot: Option<usize>,
}

/// Commands for one aggregate type, on one store.
pub struct Aggregates<A: Aggregate> {
    events: PersistedEventStore<Repo, A>,
    services: A::Services,
    retry: RetryPolicy,
    snapshot_every: usize,
    cache: Option<Mutex<LruCache<String, Cached<A>>>>,
}

impl<A> Aggregates<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    pub fn new(store: &Store, services: A::Services) -> Self {
        let repo = store.repo();
        let snapshot_every = store.config().snapshot_every;
        let events = match snapshot_every {
            0 => PersistedEventStore::new_event_store(repo),
            n => PersistedEventStore::new_snapshot_store(repo, n),
        }
        .with_upcasters(event_schemas::upcast::cqrs_upcasters());
        Aggregates {
            events,
            services,
            retry: RetryPolicy::default(),
            snapshot_every,
            cache: NonZeroUsize::new(store.config().aggregate_cache)
                .map(|n| Mutex::new(LruCache::new(n))),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// The aggregate's current state and version (0: no events yet), read
    /// from the store.
    pub async fn load(&self, id: &str) -> Result<(A, u64), StoreError> {
        let ctx = self.load_fresh(id).await?;
        Ok((ctx.aggregate, ctx.current_sequence as u64))
    }

    /// The aggregate's state, from this process's cache when it holds the
    /// stream at `min_version` or later, else read from the store (and
    /// cached). For process managers reacting to an event at
    /// `min_version`: what they read is never older than the event, and
    /// is current unless another process has written since (which costs a
    /// rejected command and a fresh read, never a wrong append: appends are
    /// checked against the stream's version).
    pub async fn load_cached(&self, id: &str, min_version: u64) -> Result<(A, u64), StoreError> {
        if let Some(c) = &self.cache {
            if let Some(hit) = c.lock().expect("cache lock").get(id) {
                if hit.version as u64 >= min_version {
                    return Ok((hit.aggregate.clone(), hit.version as u64));
                }
            }
        }
        let ctx = self.load_fresh(id).await?;
        let found = (ctx.aggregate.clone(), ctx.current_sequence as u64);
        self.remember(
            id,
            ctx.aggregate,
            ctx.current_sequence,
            ctx.current_snapshot,
        );
        Ok(found)
    }

    async fn load_fresh(&self, id: &str) -> Result<EventStoreAggregateContext<A>, StoreError> {
        self.events.load_aggregate(id).await.map_err(store_error)
    }

    fn cached(&self, id: &str) -> EventStoreAggregateContext<A> {
        let hit = self.cache.as_ref().and_then(|c| {
            c.lock()
                .expect("cache lock")
                .get(id)
                .map(|c| EventStoreAggregateContext {
                    aggregate_id: id.to_string(),
                    aggregate: c.aggregate.clone(),
                    current_sequence: c.version,
                    current_snapshot: c.snapshot,
                })
        });
        hit.unwrap_or_else(|| EventStoreAggregateContext {
            aggregate_id: id.to_string(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        })
    }

    /// Caches a state of `id`, unless the cache already holds a later one
    /// (two tasks loading or appending at once may finish in either order).
    fn remember(&self, id: &str, aggregate: A, version: usize, snapshot: Option<usize>) {
        if let Some(c) = &self.cache {
            let mut c = c.lock().expect("cache lock");
            if c.peek(id).is_some_and(|held| held.version > version) {
                return;
            }
            c.put(
                id.to_string(),
                Cached {
                    aggregate,
                    version,
                    snapshot,
                },
            );
        }
    }

    fn forget(&self, id: &str) {
        if let Some(c) = &self.cache {
            c.lock().expect("cache lock").pop(id);
        }
    }

    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Appended, CommandError<A::Error>> {
        let started = std::time::Instant::now();
        let result = self.decide_and_append(id, command, metadata).await;
        let outcome = match &result {
            Ok(a) if a.events > 0 => {
                metrics::counter!("freshledger_events_appended_total", "stream_type" => A::TYPE)
                    .increment(a.events as u64);
                "appended"
            }
            Ok(_) => "unchanged",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        metrics::counter!("freshledger_commands_total", "aggregate" => A::TYPE, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("freshledger_command_duration_seconds", "aggregate" => A::TYPE)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn decide_and_append(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Appended, CommandError<A::Error>> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut attempts = 0;
        // What every event of the commit carries: the command's metadata
        // and the trace context it runs in.
        let mut map = metadata.to_map();
        if let Some(tp) = telemetry::traceparent() {
            map.entry(keys::TRACEPARENT.to_string()).or_insert(tp);
        }
        let mut verified = self.cache.is_none();
        let mut ctx = if verified {
            self.load_fresh(id).await?
        } else {
            self.cached(id)
        };
        loop {
            // Decide on a scratch copy. cqrs-es 0.5's `EventSink::write`
            // applies each event to the aggregate it is given, and `commit`
            // applies them again when it builds a snapshot; deciding on the
            // context's own aggregate would snapshot every event twice.
            let mut scratch = ctx.aggregate.clone();
            let sink = EventSink::default();
            let decision = scratch.handle(command.clone(), &self.services, &sink).await;
            let decided = sink.collect().await;
            if decision.is_err() || decided.is_empty() {
                if !verified {
                    ctx = self.load_fresh(id).await?;
                    verified = true;
                    continue;
                }
                self.remember(
                    id,
                    ctx.aggregate,
                    ctx.current_sequence,
                    ctx.current_snapshot,
                );
                decision.map_err(CommandError::Rejected)?;
                return Ok(Appended {
                    events: 0,
                    stream_version: ctx.current_sequence as u64,
                    last_position: None,
                });
            }
            attempts += 1;
            let (from, snapshot) = (ctx.current_sequence, ctx.current_snapshot);
            let n = decided.len();
            let (result, positions) = COMMITTED
                .scope(RefCell::new(Vec::new()), async {
                    let r = self.events.commit(decided, ctx, map.clone()).await;
                    (r, COMMITTED.with(|c| c.take()))
                })
                .await;
            match result {
                Ok(_) => {
                    let version = from + n;
                    let snapshotted = self.snapshot_every > 0
                        && (from % self.snapshot_every) + n >= self.snapshot_every;
                    if snapshotted {
                        // The snapshot counter moved; let the next load read it.
                        self.forget(id);
                    } else {
                        self.remember(id, scratch, version, snapshot);
                    }
                    return Ok(Appended {
                        events: n,
                        stream_version: version as u64,
                        last_position: positions.last().map(|p| *p as u64),
                    });
                }
                Err(AggregateError::AggregateConflict) => {
                    metrics::counter!("freshledger_command_conflicts_total", "aggregate" => A::TYPE)
                        .increment(1);
                    self.forget(id);
                    match delays.next() {
                        Some(delay) => {
                            tracing::debug!(
                                aggregate = A::TYPE,
                                id,
                                attempts,
                                "append conflict; retrying"
                            );
                            tokio::time::sleep(delay).await;
                            ctx = self.load_fresh(id).await?;
                            verified = true;
                        }
                        None => return Err(CommandError::Conflict { attempts }),
                    }
                }
                Err(e) => {
                    self.forget(id);
                    return Err(CommandError::Store(store_error(e)));
                }
            }
        }
    }
}

fn store_error<E: std::error::Error>(e: AggregateError<E>) -> StoreError {
    StoreError::Persistence(e.to_string())
}
