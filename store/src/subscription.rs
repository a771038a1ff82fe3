//! Named, durable subscriptions to the global log.
//!
//! A subscription catches up from its checkpoint, then follows live (woken by
//! local appends and cross-process notifications, with polling as the
//! fallback). Each batch of events is handled inside one database
//! transaction that also advances the checkpoint, so a handler whose effect
//! lives in the same database applies each event exactly once, whatever
//! crashes. A handler with effects elsewhere (Kafka, ClickHouse, e-mail) gets
//! at-least-once delivery and deduplicates on `RecordedEvent::event_id`.
//!
//! The checkpoint only moves by a compare-and-set on its old value, so two
//! processes running the same subscription never both commit the same
//! events: the loser rolls back and re-reads.
//!
//! A failing event is retried with backoff; if it still fails, the
//! subscription is *parked* at that event with the error recorded, and never
//! skips it. [`Store::resume_subscription`] retries it; [`Store::reset_subscription`]
//! rewinds (to rebuild what it feeds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_schemas::RecordedEvent;
use sqlx::{Postgres, Sqlite, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::turns::Class;
use crate::{sql, Backend, Store, StoreError};

pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The transaction a batch runs in; the checkpoint commits in it too.
/// Opaque outside the store: statements run in it through [`sql::exec`]
/// and [`sql::fetch_tx`].
pub struct StoreTx(pub(crate) Tx);

pub(crate) enum Tx {
    Postgres(Transaction<'static, Postgres>),
    /// With this process's turn at the write lock, held until it ends.
    Sqlite(Transaction<'static, Sqlite>, crate::WriteTurn),
}

/// A subscriber whose effect lives in the same database: exactly once.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Whether `event` can change anything this handler writes. A batch
    /// with nothing wanted only moves the checkpoint (one statement).
    fn wants(&self, _event: &RecordedEvent) -> bool {
        true
    }

    /// Applies one event. Writes made through `tx` commit atomically with
    /// the checkpoint; an error rolls the whole batch back.
    async fn handle(&self, tx: &mut StoreTx, event: &RecordedEvent) -> Result<(), HandlerError>;
}

/// A subscriber whose effects are elsewhere (commands to aggregates, a
/// broker, a gateway): at least once. It runs outside the checkpoint's
/// transaction (on SQLite, which has one writer, a command inside it would
/// wait for itself), the checkpoint advances after it succeeds, and a crash
/// in between redelivers: effects must be idempotent or deduplicate on
/// `RecordedEvent::event_id`.
#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    /// Whether `event` can call for a reaction (or settle anything). A
    /// batch with nothing wanted only moves the checkpoint.
    fn wants(&self, _event: &RecordedEvent) -> bool {
        true
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError>;

    /// With [`Subscription::with_concurrency`] above 1: events with the
    /// same key are reacted to in log order, one after the other, and a run
    /// of keyed events in a batch works on up to that many keys at once.
    /// `None` (the default): the event is reacted to alone, after
    /// everything before it and before anything after it.
    fn key(&self, _event: &RecordedEvent) -> Option<String> {
        None
    }

    /// Runs inside the checkpoint's transaction, for each event of a batch
    /// whose reactions all succeeded: state the reactor keeps about its own
    /// progress (a saga's state) commits atomically with the checkpoint.
    async fn settle(&self, _tx: &mut StoreTx, _event: &RecordedEvent) -> Result<(), HandlerError> {
        Ok(())
    }
}

enum Consumer {
    Handler(Arc<dyn Handler>),
    Reactor(Arc<dyn Reactor>),
}

impl Consumer {
    fn wants(&self, event: &RecordedEvent) -> bool {
        match self {
            Consumer::Handler(h) => h.wants(event),
            Consumer::Reactor(r) => r.wants(event),
        }
    }
}

/// One reaction, in a span that continues the event's trace, so the
/// commands it sends carry that trace on (see `telemetry`).
fn reaction<'a>(
    name: &str,
    reactor: &'a dyn Reactor,
    e: &'a RecordedEvent,
) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'a {
    let span = tracing::info_span!(
        "react",
        subscription = name,
        event_type = %e.event_type,
        position = e.global_position,
        correlation_id = %e.correlation_id,
        trace_id = tracing::field::Empty,
    );
    telemetry::follow(&span, e.trace_parent.as_deref());
    reactor.react(e).instrument(span)
}

/// Reacts to `events`: runs of keyed events concurrently by key (up to
/// `concurrency` keys at once), the rest alone, in log order.
async fn react_all(
    name: &str,
    reactor: &dyn Reactor,
    events: &[&RecordedEvent],
    concurrency: usize,
) -> Result<(), HandlerError> {
    let react = |e| reaction(name, reactor, e);
    // Each event's key, worked out once.
    let keyed: Vec<(&RecordedEvent, Option<String>)> = events
        .iter()
        .map(|&e| (e, (concurrency > 1).then(|| reactor.key(e)).flatten()))
        .collect();
    let mut rest = &keyed[..];
    while let Some((first, key)) = rest.first() {
        if key.is_none() {
            react(first).await?;
            rest = &rest[1..];
            continue;
        }
        let run = rest
            .iter()
            .position(|(_, k)| k.is_none())
            .unwrap_or(rest.len());
        let mut groups: Vec<Vec<&RecordedEvent>> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = Default::default();
        for (e, key) in &rest[..run] {
            let key = key.as_deref().expect("a keyed run");
            let i = *index.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(e);
        }
        for chunk in groups.chunks(concurrency) {
            // Boxed, so the borrows need not be proven Send for every lifetime.
            let work: Vec<futures_util::future::BoxFuture<'_, Result<(), HandlerError>>> = chunk
                .iter()
                .map(|group| {
                    Box::pin(async move {
                        for e in group {
                            react(e).await?;
                        }
                        Ok(())
                    }) as futures_util::future::BoxFuture<'_, _>
                })
                .collect();
            futures_util::future::try_join_all(work).await?;
        }
        rest = &rest[run..];
    }
    Ok(())
}

const ADVANCE: &str = "UPDATE subscriptions SET position = ?, updated_at = CURRENT_TIMESTAMP \
                       WHERE name = ? AND position = ? AND status = 'running'";

/// The log's head and every subscription ([`Store::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub head: u64,
    pub subscriptions: Vec<SubscriptionStatus>,
}

impl Progress {
    /// Events appended that `s` has not applied yet.
    pub fn lag(&self, s: &SubscriptionStatus) -> u64 {
        self.head.saturating_sub(s.position)
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    pub name: String,
    pub position: u64,
    pub parked: bool,
    pub parked_at_position: Option<u64>,
    pub last_error: Option<String>,
}

/// A named subscription and its handler.
pub struct Subscription {
    name: String,
    store: Store,
    consumer: Consumer,
    batch_size: usize,
    attempts: usize,
    retry_delay: Duration,
    concurrency: usize,
}

/// Where a runner left its checkpoint, and the count of in-process
/// checkpoint moves it has seen.
#[derive(Default)]
struct Known {
    position: Option<u64>,
    moves: u64,
}

enum Step {
    Idle,
    Progressed,
    Parked,
}

impl Subscription {
    /// An exactly-once subscription (effects in the store's database).
    pub fn new(name: impl Into<String>, store: &Store, handler: Arc<dyn Handler>) -> Self {
        Self::with(name, store, Consumer::Handler(handler))
    }

    /// An at-least-once subscription (effects elsewhere).
    pub fn reactor(name: impl Into<String>, store: &Store, reactor: Arc<dyn Reactor>) -> Self {
        Self::with(name, store, Consumer::Reactor(reactor))
    }

    fn with(name: impl Into<String>, store: &Store, consumer: Consumer) -> Self {
        Subscription {
            name: name.into(),
            store: store.clone(),
            consumer,
            batch_size: 500,
            attempts: 5,
            retry_delay: Duration::from_millis(50),
            concurrency: 1,
        }
    }

    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// A reactor's keys worked on at once within a batch (see
    /// [`Reactor::key`]); 1, the default, reacts to one event at a time.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Attempts per failing event before parking, and the first delay
    /// between them (doubling).
    pub fn with_retries(mut self, attempts: usize, first_delay: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.retry_delay = first_delay;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `stop` is cancelled. Returns only on stop or on a
    /// database error it cannot get past (which the caller should log and
    /// restart after a pause). Several processes: see [`Self::run_leased`].
    pub async fn run(&self, stop: CancellationToken) -> Result<(), StoreError> {
        self.follow(&stop, None).await
    }

    /// Runs whenever this process holds the subscription's lease (named
    /// after it; see [`Store::run_leased`]), until `stop`: on several
    /// processes sharing a database, one of them runs it at a time, and a
    /// reactor checks the lease is still its own before each batch of
    /// reactions. `tell` hears the lease's turns.
    pub async fn run_leased(&self, stop: &CancellationToken, tell: impl FnMut(crate::Turn)) {
        self.store
            .run_leased(&self.name, stop, tell, |lease| self.hold(lease))
            .await
    }

    async fn hold(&self, mut lease: crate::Lease) -> Result<(), StoreError> {
        let stopping = lease.stopping().clone();
        let result = self.follow(&stopping, Some(&mut lease)).await;
        lease.release().await;
        result
    }

    async fn follow(
        &self,
        stop: &CancellationToken,
        mut lease: Option<&mut crate::Lease>,
    ) -> Result<(), StoreError> {
        self.store.ensure_subscription(&self.name).await?;
        let mut wake = self.store.wakeups();
        let poll = self.store.config().poll_interval;
        let mut known = Known::default();
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            // Mark what we have seen before reading, so a wake-up that races
            // with the read is not lost.
            wake.borrow_and_update();
            match self.step(&mut known, lease.as_deref_mut()).await? {
                Step::Progressed => continue,
                Step::Idle | Step::Parked => {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = wake.changed() => {},
                        _ = tokio::time::sleep(poll) => {
                            // Nothing woke us: look at the checkpoint itself
                            // (another process may have moved it).
                            known.position = None;
                        },
                    }
                }
            }
        }
    }

    /// Processes what is available now, until the log is exhausted or the
    /// subscription parks. For tests and rebuilds.
    pub async fn catch_up(&self) -> Result<SubscriptionStatus, StoreError> {
        self.store.ensure_subscription(&self.name).await?;
        let mut known = Known::default();
        while let Step::Progressed = self.step(&mut known, None).await? {}
        self.store.subscription(&self.name).await
    }

    /// One batch. `known` is the checkpoint as this runner last left it.
    /// Trusting it saves a read per batch: the compare-and-set that moves
    /// the checkpoint still catches another process, a reset or a rebuild's
    /// swap; a move in this process is announced by
    /// [`Store::checkpoints_moved`], and an idle runner that nothing woke
    /// re-reads it.
    async fn step(
        &self,
        known: &mut Known,
        lease: Option<&mut crate::Lease>,
    ) -> Result<Step, StoreError> {
        let moves = self.store.checkpoint_moves();
        let from = match known.position.filter(|_| known.moves == moves) {
            Some(p) => p,
            None => {
                let status = self.store.subscription(&self.name).await?;
                if status.parked {
                    known.position = None;
                    return Ok(Step::Parked);
                }
                known.moves = moves;
                status.position
            }
        };
        known.position = None;
        let events = self.store.read_tail(from, self.batch_size).await?;
        if events.is_empty() {
            known.position = Some(from);
            return Ok(Step::Idle);
        }
        // A reactor's effects leave the database: only while the lease is
        // this process's. (A handler's compare-and-set suffices.)
        if let (Consumer::Reactor(_), Some(lease)) = (&self.consumer, lease) {
            if !lease.check().await {
                return Err(StoreError::LeaseLost(self.name.clone()));
            }
        }
        // The whole batch in one transaction. `Ok(false)`: the checkpoint
        // moved under us, so re-read. On failure, go event by event to
        // isolate the one that fails.
        match self.apply(from, &events).await {
            Ok(true) => {
                known.position = events.last().map(|e| e.global_position);
                return Ok(Step::Progressed);
            }
            Ok(false) => return Ok(Step::Progressed),
            Err(_) => {}
        }
        let mut position = from;
        for event in &events {
            let mut delay = self.retry_delay;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.apply(position, std::slice::from_ref(event)).await {
                    Ok(true) => break,
                    Ok(false) => return Ok(Step::Progressed),
                    Err(e) if attempt < self.attempts => {
                        tracing::warn!(subscription = %self.name, position = event.global_position, attempt, error = %e, "handler failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                    Err(e) => {
                        tracing::error!(subscription = %self.name, position = event.global_position, error = %e, "handler keeps failing; parking subscription");
                        self.store
                            .park_subscription(&self.name, event.global_position, &e.to_string())
                            .await?;
                        return Ok(Step::Parked);
                    }
                }
            }
            position = event.global_position;
        }
        known.position = Some(position);
        Ok(Step::Progressed)
    }

    /// Handles `events` and moves the checkpoint from `from` to the last
    /// one, atomically. `Ok(false)`: the checkpoint was not at `from` (another
    /// process advanced it, or it was reset); nothing was applied.
    async fn apply(&self, from: u64, events: &[Arc<RecordedEvent>]) -> Result<bool, ApplyError> {
        let to = events.last().expect("non-empty batch").global_position;
        let args = [to.into(), self.name.as_str().into(), from.into()];
        let wanted: Vec<&RecordedEvent> = events
            .iter()
            .map(|e| &**e)
            .filter(|e| self.consumer.wants(e))
            .collect();
        if wanted.is_empty() {
            // Nothing to apply: the checkpoint moves on its own.
            let moved = sql::exec_pool_as(&self.store, Class::Background, ADVANCE, &args)
                .await
                .map_err(ApplyError::Store)?;
            return Ok(moved == 1);
        }
        if let Consumer::Reactor(reactor) = &self.consumer {
            // Effects first, outside any transaction; then the checkpoint.
            // Not for events another runner has already passed.
            if self
                .store
                .subscription(&self.name)
                .await
                .map_err(ApplyError::Store)?
                .position
                != from
            {
                return Ok(false);
            }
            react_all(&self.name, reactor.as_ref(), &wanted, self.concurrency)
                .await
                .map_err(ApplyError::Handler)?;
        }
        let mut tx = self.store.begin().await.map_err(ApplyError::Store)?;
        // Move (and on Postgres lock) the checkpoint *before* any effect:
        // if it moved (another process, a reset, a rebuild's swap), nothing
        // may be applied. Lock order is always checkpoint row, then the
        // handler's tables; a rebuild's swap takes them in the same order.
        // (On SQLite, BEGIN IMMEDIATE already holds the single write lock.)
        let moved = sql::exec(&mut tx, ADVANCE, &args)
            .await
            .map_err(ApplyError::Store)?;
        if moved != 1 {
            tx.rollback().await.map_err(ApplyError::Store)?;
            return Ok(false);
        }
        for event in wanted {
            match &self.consumer {
                Consumer::Handler(handler) => handler.handle(&mut tx, event).await,
                Consumer::Reactor(reactor) => reactor.settle(&mut tx, event).await,
            }
            .map_err(ApplyError::Handler)?;
        }
        tx.commit().await.map_err(ApplyError::Store)?;
        Ok(true)
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("{0}")]
    Handler(HandlerError),
    #[error("{0}")]
    Store(StoreError),
}

impl StoreTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.0 {
            Tx::Postgres(t) => t.commit().await?,
            Tx::Sqlite(t, _turn) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.0 {
            Tx::Postgres(t) => t.rollback().await?,
            Tx::Sqlite(t, _turn) => t.rollback().await?,
        }
        Ok(())
    }
}

impl Store {
    /// A write transaction on the store's database (IMMEDIATE on SQLite, so
    /// it never has to upgrade a read lock), for background work: on SQLite
    /// it waits behind this process's commands ([`crate::turns`]).
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(StoreTx(match self.backend() {
            Backend::Postgres(p) => Tx::Postgres(p.begin().await?),
            Backend::Sqlite(p) => {
                let turn = self.write_turn(Class::Background).await;
                Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?, turn)
            }
        }))
    }

    /// Moves subscription `name`'s checkpoint from `from` to `to` inside
    /// `tx`, for a subscriber that runs its own loop (the Kafka relay): the
    /// move commits with whatever else `tx` writes. `false` when the
    /// checkpoint was not at `from` or the subscription is parked (another
    /// runner moved it, or an operator reset it): nothing may be committed.
    pub async fn advance_checkpoint(
        &self,
        tx: &mut StoreTx,
        name: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        Ok(sql::exec(tx, ADVANCE, &[to.into(), name.into(), from.into()]).await? == 1)
    }

    /// Creates the subscription's checkpoint row (at 0) if it is missing.
    pub async fn ensure_subscription_exists(&self, name: &str) -> Result<(), StoreError> {
        self.ensure_subscription(name).await
    }

    pub(crate) async fn ensure_subscription(&self, name: &str) -> Result<(), StoreError> {
        sql::exec_pool(
            self,
            "INSERT INTO subscriptions (name) VALUES (?) ON CONFLICT DO NOTHING",
            &[name.into()],
        )
        .await?;
        Ok(())
    }

    /// One subscription's checkpoint and state.
    pub async fn subscription(&self, name: &str) -> Result<SubscriptionStatus, StoreError> {
        self.read_subscriptions("WHERE name = ?", &[name.into()])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Config(format!("no subscription named {name:?}")))
    }

    /// Every subscription's checkpoint and state.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>, StoreError> {
        self.read_subscriptions("ORDER BY name", &[]).await
    }

    /// Every subscription and the log's head (waiting at most `bound` for
    /// it), read in that order: a reactor appends its reactions before it
    /// moves its checkpoint, so "every checkpoint at the head" then means
    /// settled. (Read the other way round, a reaction appended between the
    /// two reads made a stale head look settled.)
    pub async fn progress(&self, bound: Duration) -> Result<Progress, StoreError> {
        let subscriptions = self.subscriptions().await?;
        let head = self.head_within(bound).await?;
        Ok(Progress {
            head,
            subscriptions,
        })
    }

    async fn read_subscriptions(
        &self,
        clause: &str,
        args: &[sql::Arg],
    ) -> Result<Vec<SubscriptionStatus>, StoreError> {
        let rows = sql::fetch(
            self,
            &format!(
                "SELECT name, position, status, parked_at_position, last_error FROM subscriptions {clause}"
            ),
            args,
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SubscriptionStatus {
                name: r["name"].as_str().unwrap_or_default().to_string(),
                position: r["position"].as_i64().unwrap_or_default() as u64,
                parked: r["status"] == "parked",
                parked_at_position: r["parked_at_position"].as_i64().map(|p| p as u64),
                last_error: r["last_error"].as_str().map(str::to_string),
            })
            .collect())
    }

    async fn park_subscription(&self, name: &str, at: u64, error: &str) -> Result<(), StoreError> {
        sql::exec_pool(
            self,
            "UPDATE subscriptions SET status = 'parked', parked_at_position = ?, last_error = ?, \
             updated_at = CURRENT_TIMESTAMP WHERE name = ?",
            &[at.into(), error.into(), name.into()],
        )
        .await?;
        Ok(())
    }

    /// Un-parks a subscription: it retries the event it stopped at.
    pub async fn resume_subscription(&self, name: &str) -> Result<(), StoreError> {
        self.set_subscription(name, None).await
    }

    /// Moves a subscription's checkpoint to `position` (0: the beginning)
    /// and un-parks it, so it re-delivers everything after `position`.
    pub async fn reset_subscription(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.ensure_subscription(name).await?;
        self.set_subscription(name, Some(position)).await
    }

    async fn set_subscription(&self, name: &str, position: Option<u64>) -> Result<(), StoreError> {
        const RUNNING: &str =
            "UPDATE subscriptions SET status = 'running', parked_at_position = NULL, \
                               last_error = NULL, updated_at = CURRENT_TIMESTAMP";
        let done = match position {
            Some(p) => {
                sql::exec_pool(
                    self,
                    &format!("{RUNNING}, position = ? WHERE name = ?"),
                    &[p.into(), name.into()],
                )
                .await?
            }
            None => {
                sql::exec_pool(self, &format!("{RUNNING} WHERE name = ?"), &[name.into()]).await?
            }
        };
        if done == 0 {
            return Err(StoreError::Config(format!(
                "no subscription named {name:?}"
            )));
        }
        self.checkpoints_moved();
        Ok(())
    }
}
