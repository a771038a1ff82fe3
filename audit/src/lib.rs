//! The audit trail: history an auditor can verify, not just read.
//!
//! - [`canonical`]: the chain's encoding of an event (RFC 8785) and its links.
//! - [`checkpoint`]: Ed25519-signed checkpoints of the chain's head; keys.
//! - [`verify`]: the pure verifier that names the first bad position and why.
//! - [`chain`]: the chain's tables (`audit_events`, `audit_checkpoints`).
//! - `keeper`: the subscriber that extends the chain as the log grows.
//! - [`online`]: verification and export against the database; [`file`]:
//!   the export format, verified offline.
//! - [`queries`]: what auditors ask: events by actor, time, type and
//!   correlation; a stream's state as of a position or a moment; lot recall.
//!
//! An edge crate on `store` and `event-schemas` (and `domain`, to replay a
//! stream's state); nothing below depends on it.

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod file;
mod keeper;
pub mod online;
pub mod queries;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use store::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use canonical::{Hash, GENESIS};
pub use checkpoint::{AuditKey, Checkpoint, PublicKey};
pub use keeper::{KeepError, LEASE};
pub use verify::{Finding, Problem, Report};

/// Where signed checkpoints are copied, besides the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSink {
    None,
    /// One JSON line each on stdout.
    Stdout,
    /// Appended to a file, one JSON line each (caught up on start).
    File(PathBuf),
}

/// How the chain is kept.
pub struct AuditConfig {
    /// Signs checkpoints; without one they are recorded unsigned.
    pub key: Option<AuditKey>,
    /// A checkpoint at least every this many events ...
    pub checkpoint_every: u64,
    /// ... and, when the chain moved, at least this often.
    pub checkpoint_period: Duration,
    pub checkpoint_sink: CheckpointSink,
}

impl AuditConfig {
    pub fn new(key: Option<AuditKey>) -> Self {
        AuditConfig {
            key,
            checkpoint_every: 1_000,
            checkpoint_period: Duration::from_secs(60),
            checkpoint_sink: CheckpointSink::None,
        }
    }
}

/// What the chain keeper is doing.
pub type KeeperState = store::WorkState;

#[derive(Debug)]
pub(crate) struct Health {
    state: KeeperState,
    problem: Option<String>,
    since: DateTime<Utc>,
    chained: u64,
    last_checkpoint: Option<(u64, DateTime<Utc>)>,
}

/// The chain as `/readyz`, `/api/v1/log` and `audit status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub state: KeeperState,
    pub healthy: bool,
    pub problem: Option<String>,
    pub since: DateTime<Utc>,
    /// Every event up to here is chained.
    pub position: u64,
    pub head: u64,
    pub lag: u64,
    pub last_checkpoint: Option<u64>,
    pub last_checkpoint_at: Option<DateTime<Utc>>,
    /// The key that signs checkpoints (base64url), or none: unsigned.
    pub public_key: Option<String>,
}

/// The audit chain of one process. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    config: Arc<AuditConfig>,
    health: Arc<Mutex<Health>>,
}

impl Audit {
    /// Prepares the tables (idempotent).
    pub async fn new(store: &Store, config: AuditConfig) -> Result<Audit, StoreError> {
        chain::ensure(store).await?;
        Ok(Audit {
            store: store.clone(),
            config: Arc::new(config),
            health: Arc::new(Mutex::new(Health {
                state: KeeperState::Starting,
                problem: None,
                since: Utc::now(),
                chained: 0,
                last_checkpoint: None,
            })),
        })
    }

    fn keeper(&self) -> keeper::Keeper {
        keeper::Keeper {
            store: self.store.clone(),
            config: self.config.clone(),
            health: self.health.clone(),
        }
    }

    /// Keeps the chain until `stop`, whenever this process holds the lease.
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        let keeper = self.keeper();
        let store = self.store.clone();
        tokio::spawn(async move {
            store
                .run_leased(
                    LEASE,
                    &stop,
                    |t| keeper.tell(t),
                    |lease| {
                        let keeper = &keeper;
                        async move {
                            let stopping = lease.stopping().clone();
                            keeper.keep(lease, &stopping, false).await
                        }
                    },
                )
                .await
        })
    }

    /// Brings the chain up to the head now and signs a checkpoint there
    /// (`audit sync`). `Ok(false)` when another process keeps the chain.
    pub async fn sync(&self) -> Result<bool, KeepError> {
        let Some(lease) = self.store.try_lease(LEASE).await? else {
            return Ok(false);
        };
        self.keeper()
            .keep(lease, &CancellationToken::new(), true)
            .await?;
        Ok(true)
    }

    pub fn public_key(&self) -> Option<PublicKey> {
        self.config.key.as_ref().map(AuditKey::public)
    }

    pub async fn report(&self) -> AuditReport {
        let head = self
            .store
            .head_within(Duration::from_secs(1))
            .await
            .unwrap_or(0);
        // A standby process has not kept the chain itself: read where it is.
        let state = self.health.lock().expect("health").state;
        let stored = match state {
            KeeperState::Active => None,
            _ => chain::last_link(&self.store).await.ok().map(|l| l.0),
        };
        let h = self.health.lock().expect("health");
        let chained = stored.unwrap_or(h.chained).max(h.chained);
        let lag = head.saturating_sub(chained);
        AuditReport {
            state: h.state,
            healthy: matches!(
                h.state,
                KeeperState::Active | KeeperState::Standby | KeeperState::Starting
            ) && h.problem.is_none(),
            problem: h.problem.clone().or_else(|| {
                self.config.key.is_none().then(|| {
                    "no audit signing key is configured: checkpoints are not signed".to_string()
                })
            }),
            since: h.since,
            position: chained,
            head,
            lag,
            last_checkpoint: h.last_checkpoint.map(|c| c.0),
            last_checkpoint_at: h.last_checkpoint.map(|c| c.1),
            public_key: self.public_key().map(|k| k.encoded()),
        }
    }
}
