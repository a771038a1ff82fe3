//! The Kafka relay: every event of the global log to Kafka, in order per
//! stream, nothing lost; and the public integration events.
//!
//! A subscriber of the log with a loop of its own (not the store's generic
//! runner, which awaits one reaction at a time): it reads a batch after its
//! checkpoint, hands every message of the batch to the producer at once,
//! waits until the broker acknowledged each one (`acks=all`, idempotent
//! producer), and only then moves the checkpoint, in the same transaction
//! that records any dead letters of the batch. A crash anywhere redelivers
//! from the checkpoint: at least once, duplicates only across a crash, and
//! consumers dedupe on `event_id`.
//!
//! Order per stream: messages are keyed by stream id (one partition per
//! stream), handed to the producer in log order and never re-enqueued out
//! of order: the idempotent producer retries in order, a full queue makes
//! the relay wait and hand over the *same* message again, and deliveries
//! never time out (a broker that is down makes the relay wait, and say so
//! in `/readyz`, rather than fail messages and leave gaps).
//!
//! One active relay per database: a lease ([`store::Lease`]) held for as
//! long as it runs; other processes stand by and take over within about a
//! second of the holder's death.
//!
//! Poison events (too large, refused by the broker, impossible to map)
//! become dead letters ([`dead_letters`]); later events of the same stream
//! wait behind them, every other stream flows on.

pub mod dead_letters;
mod producer;
pub mod records;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use event_schemas::integration;
use event_schemas::RecordedEvent;
use futures_util::FutureExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::Serialize;
use store::{Lease, Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use dead_letters::DeadLetter;
pub use records::Topics;

/// The relay's checkpoint (a store subscription) and its lease.
pub const SUBSCRIPTION: &str = "kafka-relay";

/// How long a message may wait for the broker's acknowledgement before the
/// relay reports itself unhealthy (it goes on waiting).
const ACK_PATIENCE: Duration = Duration::from_secs(5);
/// How often the relay reads the dead letters afresh (to see an
/// operator's retry or skip).
const HELD_REFRESH: Duration = Duration::from_secs(1);

/// How to reach Kafka and what to write there.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics are `{prefix}.{stream-type}.v1` and `{prefix}.integration.v1`.
    pub topic_prefix: String,
    /// Partitions of the topics the relay creates (existing ones are kept).
    pub partitions: i32,
    /// Replicas of the topics the relay creates.
    pub replication_factor: i32,
    /// Largest message the relay sends; a larger event is dead-lettered.
    /// Keep it at or below the broker's limit.
    pub max_message_bytes: usize,
    /// Events read from the log and handed to the producer at once.
    pub batch_size: usize,
    /// Further librdkafka settings (`security.protocol`, `sasl.*`,
    /// `compression.type`, ...).
    pub options: Vec<(String, String)>,
}

impl RelayConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        RelayConfig {
            brokers: brokers.into(),
            topic_prefix: "freshledger".into(),
            partitions: 6,
            replication_factor: 1,
            max_message_bytes: 1_000_000,
            batch_size: 2_000,
            options: Vec::new(),
        }
    }
}

/// What the relay is doing.
pub type RelayState = store::WorkState;

/// The relay as `/readyz` and `/api/v1/log` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    pub state: RelayState,
    /// Active and acknowledged, or standing by behind a live holder.
    pub healthy: bool,
    /// What is wrong, when something is.
    pub problem: Option<String>,
    pub since: DateTime<Utc>,
    /// The relay's checkpoint: every event up to it is acknowledged (or
    /// dead-lettered).
    pub position: u64,
    pub head: u64,
    /// Events appended but not yet acknowledged by Kafka.
    pub lag: u64,
    /// Dead letters still holding a stream back.
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug)]
struct Health {
    state: RelayState,
    problem: Option<String>,
    since: DateTime<Utc>,
    /// The broker's latest complaint (connection refused, ...), kept to
    /// explain a wait.
    client_error: Option<String>,
}

impl Health {
    fn set(&mut self, state: RelayState, problem: Option<String>) {
        if self.state != state || self.problem != problem {
            self.since = Utc::now();
        }
        self.state = state;
        self.problem = problem;
    }
}

type SharedHealth = Arc<Mutex<Health>>;

/// Why a round of relaying stopped.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the event store failed: {0}")]
    Store(#[from] StoreError),
    #[error("Kafka at {brokers}: {error}")]
    Kafka { brokers: String, error: String },
    #[error("the lease was lost (its database session ended)")]
    LeaseLost,
}

/// The relay of one process. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    store: Store,
    config: Arc<RelayConfig>,
    topics: Topics,
    health: SharedHealth,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Sent,
    /// Its stream waits behind a dead letter.
    Held,
    /// Kafka would not take it (or it cannot be mapped).
    Poison(String),
}

/// A batch's outcome: the events up to `end` (exclusive) are settled (sent,
/// held or poison); a transient failure stopped the rest.
struct Outcome {
    verdicts: Vec<Verdict>,
    end: usize,
    failure: Option<RelayError>,
}

impl Relay {
    /// Prepares the relay's table and checkpoint; [`Relay::spawn`] runs it.
    pub async fn new(store: &Store, config: RelayConfig) -> Result<Relay, StoreError> {
        dead_letters::ensure_tables(store).await?;
        store.ensure_subscription_exists(SUBSCRIPTION).await?;
        Ok(Relay {
            store: store.clone(),
            topics: Topics::new(&config.topic_prefix),
            config: Arc::new(config),
            health: Arc::new(Mutex::new(Health {
                state: RelayState::Starting,
                problem: None,
                since: Utc::now(),
                client_error: None,
            })),
        })
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Runs the relay until `stop`; never gives up on errors (it retries
    /// with backoff and reports them).
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        let relay = self.clone();
        tokio::spawn(async move { relay.run(stop).await })
    }

    /// Where the relay stands.
    pub async fn report(&self) -> Result<RelayReport, StoreError> {
        let (state, problem, since) = {
            let h = self.health.lock().expect("health lock");
            (h.state, h.problem.clone(), h.since)
        };
        let position = self.store.subscription(SUBSCRIPTION).await?.position;
        let head = self.store.head_within(Duration::from_secs(1)).await?;
        Ok(RelayReport {
            state,
            healthy: matches!(state, RelayState::Active | RelayState::Standby) && problem.is_none(),
            problem,
            since,
            position,
            head,
            lag: head.saturating_sub(position),
            dead_letters: dead_letters::list(&self.store, false).await?,
        })
    }

    fn set(&self, state: RelayState, problem: Option<String>) {
        self.health.lock().expect("health lock").set(state, problem);
    }

    async fn run(&self, stop: CancellationToken) {
        self.store
            .run_leased(
                SUBSCRIPTION,
                &stop,
                |turn| {
                    let (state, problem) = turn.state();
                    self.set(state, problem)
                },
                |lease| async move {
                    let stopping = lease.stopping().clone();
                    self.active(lease, &stopping).await
                },
            )
            .await;
    }

    /// Says that the broker has kept the relay waiting since `started`.
    fn waiting(&self, started: Instant) {
        let last = self
            .health
            .lock()
            .expect("health lock")
            .client_error
            .clone();
        self.set(
            RelayState::Active,
            Some(format!(
                "Kafka at {} has not acknowledged for {} s{}",
                self.config.brokers,
                started.elapsed().as_secs(),
                last.map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            )),
        );
    }

    fn kafka_error(&self, error: impl std::fmt::Display) -> RelayError {
        RelayError::Kafka {
            brokers: self.config.brokers.clone(),
            error: error.to_string(),
        }
    }

    /// Relays while holding `lease`. `Ok` only when stopped (the lease is
    /// then handed back at once).
    async fn active(&self, mut lease: Lease, stop: &CancellationToken) -> Result<(), RelayError> {
        let producer =
            producer::create(&self.config, self.health.clone()).map_err(|e| self.kafka_error(e))?;
        // Also the first sign of whether Kafka can be reached at all; a
        // shutdown does not wait for its timeout.
        let topics = self.topics.all();
        tokio::select! {
            made = producer::ensure_topics(&self.config, &topics) => {
                made.map_err(|e| self.kafka_error(e))?
            }
            _ = stop.cancelled() => {
                lease.release().await;
                return Ok(());
            }
        }
        self.set(RelayState::Active, None);
        tracing::info!(brokers = %self.config.brokers, "Kafka relay active");
        let mut origins = Origins::new();
        let mut from = self.store.subscription(SUBSCRIPTION).await?.position;
        let mut wake = self.store.wakeups();
        let poll = self.store.config().poll_interval;
        // Streams held back by dead letters, read afresh every second (an
        // operator's retry or skip) and kept up to date in between.
        let mut held: HashSet<(String, String)> = HashSet::new();
        let mut refreshed: Option<Instant> = None;
        // The batch after the one in flight, read while it was.
        let mut prefetched: Option<(u64, Vec<Arc<RecordedEvent>>)> = None;
        loop {
            if stop.is_cancelled() {
                lease.release().await;
                return Ok(());
            }
            if !lease.check().await {
                return Err(RelayError::LeaseLost);
            }
            if refreshed.is_none_or(|r| r.elapsed() >= HELD_REFRESH) {
                held = dead_letters::held_streams(&self.store).await?;
                if !held.is_empty() {
                    self.drain_released(&producer, &mut origins, stop).await?;
                    held = dead_letters::held_streams(&self.store).await?;
                }
                refreshed = Some(Instant::now());
            }
            wake.borrow_and_update();
            let events = match prefetched.take() {
                Some((after, events)) if after == from => events,
                _ => self.store.read_tail(from, self.config.batch_size).await?,
            };
            if events.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => {},
                    _ = wake.changed() => {},
                    _ = tokio::time::sleep(poll) => {
                        // Nothing woke us: an operator may have reset the
                        // checkpoint (under load, the compare-and-set of the
                        // next commit notices that instead).
                        from = self.store.subscription(SUBSCRIPTION).await?.position;
                    },
                }
                continue;
            }
            // Catching up (a full batch): read the next batch while this
            // one waits for its acknowledgements.
            let last = events.last().expect("a batch").global_position;
            let full = events.len() == self.config.batch_size;
            let (outcome, next) = tokio::join!(
                self.publish(&producer, &events, &mut held, &mut origins, stop),
                async {
                    match full {
                        true => Some(self.store.read_tail(last, self.config.batch_size).await),
                        false => None,
                    }
                }
            );
            let outcome = outcome?;
            if let Some(next) = next {
                prefetched = Some((last, next?));
            }
            let Some(outcome) = outcome else {
                // Stopped while waiting for acknowledgements: nothing moves.
                lease.release().await;
                return Ok(());
            };
            if outcome.end > 0 {
                let to = events[outcome.end - 1].global_position;
                let mut tx = self.store.begin().await?;
                if !self
                    .store
                    .advance_checkpoint(&mut tx, SUBSCRIPTION, from, to)
                    .await?
                {
                    // Moved under us (an operator's reset): start again there.
                    tx.rollback().await?;
                    from = self.store.subscription(SUBSCRIPTION).await?.position;
                    continue;
                }
                for (event, verdict) in events.iter().zip(&outcome.verdicts).take(outcome.end) {
                    match verdict {
                        Verdict::Sent => {}
                        Verdict::Held => {
                            dead_letters::record(
                                &mut tx,
                                event,
                                dead_letters::status::BLOCKED,
                                None,
                            )
                            .await?
                        }
                        Verdict::Poison(error) => {
                            tracing::error!(position = event.global_position, stream_id = %event.stream_id, %error, "Kafka refused an event; its stream waits behind it");
                            dead_letters::record(
                                &mut tx,
                                event,
                                dead_letters::status::POISON,
                                Some(error),
                            )
                            .await?
                        }
                    }
                }
                tx.commit().await?;
                from = to;
            }
            if let Some(failure) = outcome.failure {
                return Err(failure);
            }
        }
    }

    /// Hands every message of `events` to the producer in log order, then
    /// waits for each acknowledgement. `None`: stopped while waiting.
    async fn publish(
        &self,
        producer: &FutureProducer<producer::Context>,
        events: &[Arc<RecordedEvent>],
        held: &mut HashSet<(String, String)>,
        origins: &mut Origins,
        stop: &CancellationToken,
    ) -> Result<Option<Outcome>, RelayError> {
        let mut verdicts = vec![Verdict::Sent; events.len()];
        let mut pending: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(events.len() * 2);
        let mut failure: Option<(usize, RelayError)> = None;
        'events: for (i, event) in events.iter().enumerate() {
            let stream = (event.stream_type.clone(), event.stream_id.clone());
            if held.contains(&stream) {
                verdicts[i] = Verdict::Held;
                continue;
            }
            let records = match self.records(event, origins).await {
                Ok(records) => records,
                Err(Unsendable::Poison(error)) => {
                    verdicts[i] = Verdict::Poison(error);
                    held.insert(stream);
                    continue;
                }
                Err(Unsendable::Store(e)) => {
                    failure = Some((i, e.into()));
                    break;
                }
            };
            for record in &records {
                match self.enqueue(producer, record, stop).await {
                    Ok(Some(delivery)) => pending.push((i, delivery)),
                    Ok(None) => return Ok(None),
                    Err(e) if producer::is_permanent(&e) => {
                        verdicts[i] = Verdict::Poison(e.to_string());
                        held.insert(stream);
                        continue 'events;
                    }
                    Err(e) => {
                        failure = Some((i, self.kafka_error(e)));
                        break 'events;
                    }
                }
            }
        }
        for (i, delivery) in pending {
            match self.acknowledged(producer, delivery, stop).await {
                Ack::Stopped => return Ok(None),
                Ack::Done => {}
                Ack::Failed(e) if producer::is_permanent(&e) => {
                    if verdicts[i] == Verdict::Sent {
                        verdicts[i] = Verdict::Poison(e.to_string());
                        let event = &events[i];
                        held.insert((event.stream_type.clone(), event.stream_id.clone()));
                    }
                }
                Ack::Failed(e) => {
                    if failure.as_ref().is_none_or(|(j, _)| i < *j) {
                        failure = Some((i, self.kafka_error(e)));
                    }
                }
            }
        }
        let end = failure.as_ref().map_or(events.len(), |(i, _)| *i);
        Ok(Some(Outcome {
            verdicts,
            end,
            failure: failure.map(|(_, e)| e),
        }))
    }

    /// Hands one message to the producer. A full queue is waited out and the
    /// *same* message handed over again, so nothing overtakes it.
    /// `Ok(None)`: stopped while waiting for room.
    async fn enqueue(
        &self,
        producer: &FutureProducer<producer::Context>,
        record: &records::Record,
        stop: &CancellationToken,
    ) -> Result<Option<DeliveryFuture>, KafkaError> {
        let started = Instant::now();
        let mut complained = false;
        loop {
            let message = FutureRecord::to(&record.topic)
                .key(&record.key)
                .payload(&record.value)
                .headers(record.headers());
            match producer.send_result(message) {
                Ok(delivery) => {
                    if complained {
                        self.set(RelayState::Active, None);
                    }
                    return Ok(Some(delivery));
                }
                Err((e, _)) if producer::is_queue_full(&e) => {
                    // The queue drains only as the broker acknowledges.
                    if started.elapsed() > ACK_PATIENCE {
                        complained = true;
                        self.waiting(started);
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {},
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits for the broker's answer on one message, reporting a long wait.
    async fn acknowledged(
        &self,
        producer: &FutureProducer<producer::Context>,
        delivery: DeliveryFuture,
        stop: &CancellationToken,
    ) -> Ack {
        let mut delivery = delivery.fuse();
        let started = Instant::now();
        let mut complained = false;
        loop {
            tokio::select! {
                result = &mut delivery => {
                    if complained {
                        self.set(RelayState::Active, None);
                    }
                    return match result {
                        Ok(Ok(_)) => Ack::Done,
                        Ok(Err((e, _))) => Ack::Failed(e),
                        Err(_) => Ack::Failed(KafkaError::Canceled),
                    };
                }
                _ = stop.cancelled() => return Ack::Stopped,
                _ = tokio::time::sleep(ACK_PATIENCE) => {
                    if let Some((code, reason)) = producer::fatal(producer) {
                        tracing::error!(%code, reason, "the Kafka producer failed fatally; starting a new one");
                        return Ack::Failed(KafkaError::MessageProduction(code));
                    }
                    complained = true;
                    self.waiting(started);
                }
            }
        }
    }

    /// The messages for one event: its envelope on the stream type's
    /// topic, and its public event, if it has one.
    async fn records(
        &self,
        event: &RecordedEvent,
        origins: &mut Origins,
    ) -> Result<Vec<records::Record>, Unsendable> {
        let mut out = vec![records::internal(&self.topics, event)];
        // A stream's first event passes through here before the events
        // that need it: remember it on the way (a read saved per stream).
        if event.stream_version == 1 && integration::origin_needed_for(&event.stream_type) {
            origins.remember(event);
        }
        let origin = if integration::needs_origin(event) {
            origins.get(&self.store, event).await?
        } else {
            None
        };
        match integration::integration_event(event, origin.as_deref()) {
            Ok(Some(public)) => out.push(records::public(&self.topics, event, &public)),
            Ok(None) => {}
            Err(e) => {
                return Err(Unsendable::Poison(format!(
                    "mapping to a public event: {e}"
                )))
            }
        }
        if let Some(big) = out
            .iter()
            .find(|r| r.value.len() > self.config.max_message_bytes)
        {
            return Err(Unsendable::Poison(format!(
                "the message for {} is {} bytes, over the limit of {} (--kafka-max-message-bytes)",
                big.topic,
                big.value.len(),
                self.config.max_message_bytes
            )));
        }
        Ok(out)
    }

    /// Publishes, one by one and in order, the waiting events of streams an
    /// operator released (retried or skipped their poison event).
    async fn drain_released(
        &self,
        producer: &FutureProducer<producer::Context>,
        origins: &mut Origins,
        stop: &CancellationToken,
    ) -> Result<(), RelayError> {
        for stream in dead_letters::released(&self.store).await? {
            for row in stream {
                if row.status == dead_letters::status::SKIPPED {
                    continue;
                }
                let position = row.global_position;
                let event = self
                    .store
                    .read_all(position - 1, 1)
                    .await?
                    .into_iter()
                    .next()
                    .filter(|e| e.global_position == position);
                let Some(event) = event else {
                    dead_letters::settle(
                        &self.store,
                        position,
                        Some("the event is no longer in the log"),
                    )
                    .await?;
                    break;
                };
                let records = match self.records(&event, origins).await {
                    Ok(records) => records,
                    Err(Unsendable::Poison(error)) => {
                        dead_letters::settle(&self.store, position, Some(&error)).await?;
                        break;
                    }
                    Err(Unsendable::Store(e)) => return Err(e.into()),
                };
                let mut refused = None;
                for record in &records {
                    let delivery = match self.enqueue(producer, record, stop).await {
                        Ok(Some(d)) => d,
                        Ok(None) => return Ok(()),
                        Err(e) if producer::is_permanent(&e) => {
                            refused = Some(e.to_string());
                            break;
                        }
                        Err(e) => return Err(self.kafka_error(e)),
                    };
                    match self.acknowledged(producer, delivery, stop).await {
                        Ack::Done => {}
                        Ack::Stopped => return Ok(()),
                        Ack::Failed(e) if producer::is_permanent(&e) => {
                            refused = Some(e.to_string());
                            break;
                        }
                        Ack::Failed(e) => return Err(self.kafka_error(e)),
                    }
                }
                dead_letters::settle(&self.store, position, refused.as_deref()).await?;
                if refused.is_some() {
                    break;
                }
                tracing::info!(position, stream_id = %event.stream_id, "dead-lettered event sent after release");
            }
        }
        Ok(())
    }
}

enum Ack {
    Done,
    Failed(KafkaError),
    Stopped,
}

enum Unsendable {
    Poison(String),
    Store(StoreError),
}

impl From<StoreError> for Unsendable {
    fn from(e: StoreError) -> Self {
        Unsendable::Store(e)
    }
}

/// The first event of recently seen streams (it never changes).
struct Origins(lru::LruCache<(String, String), Arc<RecordedEvent>>);

impl Origins {
    fn new() -> Self {
        Origins(lru::LruCache::new(
            NonZeroUsize::new(50_000).expect("non-zero"),
        ))
    }

    fn remember(&mut self, first: &RecordedEvent) {
        self.0.put(
            (first.stream_type.clone(), first.stream_id.clone()),
            Arc::new(first.clone()),
        );
    }

    async fn get(
        &mut self,
        store: &Store,
        event: &RecordedEvent,
    ) -> Result<Option<Arc<RecordedEvent>>, StoreError> {
        let key = (event.stream_type.clone(), event.stream_id.clone());
        if let Some(origin) = self.0.get(&key) {
            return Ok(Some(origin.clone()));
        }
        let origin = store
            .read_stream(&event.stream_type, &event.stream_id)
            .await?
            .into_iter()
            .next()
            .map(Arc::new);
        if let Some(o) = &origin {
            self.0.put(key, o.clone());
        }
        Ok(origin)
    }
}
