//! Optional outside integrations (the Kafka relay; later ClickHouse,
//! gateways) as the operator sees them in `/readyz` and `/api/v1/log`.
//! The composition root adapts each one to [`Integration`]; this crate
//! knows none of them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Something outside the database that Freshledger feeds or calls.
#[async_trait]
pub trait Integration: Send + Sync + 'static {
    /// Where it stands now. Answers quickly (no call to the outside system).
    async fn status(&self) -> IntegrationStatus;
}

/// One integration's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IntegrationStatus {
    /// `kafka`, `clickhouse`, ...
    pub name: String,
    /// `starting`, `active`, `standby` (another process does the work),
    /// `retrying` or `stopped`.
    pub state: String,
    /// Working (or standing by behind a process that is). Commands are
    /// served either way: an integration never makes the process unready.
    pub healthy: bool,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Since when it has been in this state.
    pub since: DateTime<Utc>,
    /// The integration's checkpoint in the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Events appended that it has not yet passed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Events it could not pass on, holding their stream back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetterInfo>,
}

impl IntegrationStatus {
    /// The status of an integration whose own state could not be read.
    pub fn unreadable(name: &str, problem: String) -> Self {
        IntegrationStatus {
            name: name.into(),
            state: "unknown".into(),
            healthy: false,
            problem: Some(problem),
            since: Utc::now(),
            position: None,
            lag: None,
            dead_letters: Vec::new(),
        }
    }
}

/// An event an integration could not pass on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterInfo {
    pub global_position: u64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    /// `poison` (refused: retry or skip it), `blocked` (waits behind a
    /// poison event of its stream) or `retry` (about to be sent again).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub failed_at: String,
}

/// Every integration's status, in the order given.
pub async fn statuses(all: &[std::sync::Arc<dyn Integration>]) -> Vec<IntegrationStatus> {
    futures_util::future::join_all(all.iter().map(|i| i.status())).await
}
