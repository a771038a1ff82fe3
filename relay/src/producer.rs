//! The Kafka producer the relay writes with, its topics, and which of its
//! errors mean "this message will never go" rather than "try again".

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode as Code;

use crate::{RelayConfig, SharedHealth};

/// Keeps the client's latest complaint (broker down, connection refused)
/// to explain a wait in the relay's report.
pub(crate) struct Context {
    health: SharedHealth,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client");
        self.health.lock().expect("health lock").client_error = Some(format!("{error}: {reason}"));
    }
}

impl rdkafka::producer::ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

fn client_config(config: &RelayConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        // Exactly once into each partition, in order, through retries.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        // Never give a message up for lateness: a broker that is down makes
        // the relay wait (and report it), instead of leaving gaps.
        .set("message.timeout.ms", "0")
        // Java clients' partitioner: every client maps a stream id to the
        // same partition.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        // Small produce requests must not wait for Nagle's algorithm.
        .set("socket.nagle.disable", "true")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set(
            "message.max.bytes",
            (config.max_message_bytes + 4096).to_string(),
        );
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

pub(crate) fn create(
    config: &RelayConfig,
    health: SharedHealth,
) -> Result<FutureProducer<Context>, KafkaError> {
    client_config(config).create_with_context(Context { health })
}

/// Creates the relay's topics that do not exist yet. Fails when Kafka
/// cannot be reached.
pub(crate) async fn ensure_topics(config: &RelayConfig, topics: &[String]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(config).create().map_err(|e| e.to_string())?;
    let admin = std::sync::Arc::new(admin);
    let existing: HashSet<String> = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(10))
                .map(|m| m.topics().iter().map(|t| t.name().to_string()).collect())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the cluster's topics: {e}"))?
    };
    let wanted: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !existing.contains(*t))
        .map(|t| {
            NewTopic::new(
                t,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&wanted, &options)
        .await
        .map_err(|e| format!("creating topics: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, Code::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("creating topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// The message itself is the problem: sending it again cannot help.
pub(crate) fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::InvalidMessage
                | Code::InvalidRecord
                | Code::MessageBatchTooLarge
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::PolicyViolation
                | Code::UnsupportedForMessageFormat
        )
    )
}

pub(crate) fn is_queue_full(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

/// The producer's fatal error, if it has one (it must then be replaced).
pub(crate) fn fatal(producer: &FutureProducer<Context>) -> Option<(RDKafkaErrorCode, String)> {
    producer.client().fatal_error()
}
