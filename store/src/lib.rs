//! Freshledger's event log.
//!
//! Aggregates append through cqrs-es ([`Repo`] is the `PersistedEventRepository`
//! for both backends: Postgres through postgres-es, SQLite of our own). Every
//! event gets a global position, and [`Store::read_all`] returns events in
//! position order without ever skipping one that commits late (see
//! ARCHITECTURE.md, "One global order"). Named, durable subscriptions
//! ([`subscription`]) tail the log from their checkpoints.

pub mod catalog;
mod clock;
pub mod command;
mod error;
pub mod idempotency;
pub mod lease;
pub mod log;
mod pg;
mod raw;
mod repo;
pub mod sql;
mod sqlite;
pub mod stall;
pub mod subscription;
mod tail;
mod turns;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{mpsc, watch};

pub use command::{Aggregates, Appended, CommandError, RetryPolicy};
pub use error::StoreError;
pub use idempotency::Claim;
pub use lease::{Lease, LeaseReport, LeasedWork, Turn, WorkState};
pub use raw::StoredEvent;
pub use repo::Repo;
pub use stall::{Blocker, Stall};
pub use subscription::{
    Handler, HandlerError, Progress, Reactor, StoreTx, Subscription, SubscriptionStatus,
};

/// How to reach and use the event log.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// Snapshot an aggregate every this many events (0: never).
    pub snapshot_every: usize,
    pub max_connections: u32,
    /// How often subscriptions look for new events when nothing woke them.
    pub poll_interval: Duration,
    /// Aggregate states kept in memory per aggregate type (0: none).
    pub aggregate_cache: usize,
}

impl StoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        StoreConfig {
            url: url.into(),
            snapshot_every: 100,
            max_connections: 16,
            poll_interval: Duration::from_millis(500),
            aggregate_cache: 10_000,
        }
    }
}

/// The database behind the log. Private to this crate: callers use the
/// store's typed API and never match on the backend.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A handle on the event log; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    config: StoreConfig,
    /// Bumped after every local append and every cross-process notification.
    wake: watch::Sender<u64>,
    /// Bumped by [`Store::nudge`] only.
    nudges: watch::Sender<u64>,
    /// Postgres: asks the notifier task to tell other processes (coalesced).
    notify_others: Option<mpsc::Sender<()>>,
    /// The newest events, read once and shared by this process's subscriptions.
    tail: tail::Tail,
    /// Bumped whenever this process moves a checkpoint other than by
    /// running its subscription (a reset, a resume, a rebuild's swap).
    checkpoint_moves: std::sync::atomic::AtomicU64,
    /// SQLite: this process's writers take turns here before they ask
    /// SQLite for its one write lock.
    write_turns: turns::Turns,
    /// The last head proven safe, and whether readers are stalled.
    horizon: stall::Horizon,
    /// This process, as it names itself in the database.
    instance: uuid::Uuid,
    /// Leases this process holds ([`lease`]).
    leases: lease::Held,
    /// Its share of the leased work, and the members it shares with.
    share: lease::Share,
}

/// What [`Store::pool_status`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// A writer's turn at the SQLite write lock (see [`Store::write_turn`]);
/// held until its transaction ends.
pub(crate) type WriteTurn = Option<turns::Turn>;

/// How long a SQLite writer waits for the write lock before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Store {
    /// Connects (creating the SQLite file and its folder if needed). Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(config: StoreConfig) -> Result<Store, StoreError> {
        let url = config.url.as_str();
        let instance = uuid::Uuid::new_v4();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Sessions carry the process's name: claims it holds live as
            // long as one of them does (`idempotency`).
            let opts = PgConnectOptions::from_str(url)?
                .application_name(&format!("freshledger/{instance}"));
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            Backend::Postgres(pool)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Config(format!("creating {dir:?}: {e}")))?;
                }
            }
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections.clamp(1, 8))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            Backend::Sqlite(pool)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL {url:?}: use sqlite://... or postgres://..."
            )));
        };
        let (wake, _) = watch::channel(0u64);
        let notify_others = match &backend {
            Backend::Postgres(pool) => Some(pg::spawn_notifier(pool.clone(), wake.clone()).await?),
            Backend::Sqlite(_) => None,
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                config,
                wake,
                nudges: watch::channel(0).0,
                notify_others,
                tail: tail::Tail::new(),
                checkpoint_moves: Default::default(),
                write_turns: Default::default(),
                horizon: Default::default(),
                instance,
                leases: Default::default(),
                share: Default::default(),
            }),
        })
    }

    /// Applies the schema migrations of the backend (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Whether writers of this database can commit in parallel (Postgres),
    /// or take turns at one write lock (SQLite): bulk work (a rebuild)
    /// splits itself into parallel transactions only where that helps.
    pub fn parallel_writes(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// A cqrs-es repository on this store.
    pub fn repo(&self) -> Repo {
        Repo::new(self.clone())
    }

    /// A receiver that changes whenever new events may be readable.
    pub fn wakeups(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }

    /// Wakes this process's subscribers and scheduler (something other than
    /// an append may have made work due: the clock moved, a reset).
    pub fn nudge(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
        self.inner.nudges.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes on [`Store::nudge`] only (not on appends).
    pub fn nudges(&self) -> watch::Receiver<u64> {
        self.inner.nudges.subscribe()
    }

    /// Tells this process's subscription runners that a checkpoint was
    /// moved under them (they keep theirs in memory), and wakes them.
    pub fn checkpoints_moved(&self) {
        self.inner
            .checkpoint_moves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.nudge();
    }

    pub(crate) fn checkpoint_moves(&self) -> u64 {
        self.inner
            .checkpoint_moves
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// This process's turn at SQLite's write lock ([`turns`]), for a writer
    /// of `class`; Postgres: none. A writer that waits longer than the busy
    /// timeout goes ahead without one and leaves it to SQLite, so a turn
    /// held by mistake across another write cannot hang the process.
    pub(crate) async fn write_turn(&self, class: turns::Class) -> WriteTurn {
        match self.inner.backend {
            Backend::Postgres(_) => None,
            Backend::Sqlite(_) => {
                let turn = self.inner.write_turns.take(class);
                match tokio::time::timeout(SQLITE_BUSY_TIMEOUT, turn).await {
                    Ok(turn) => Some(turn),
                    Err(_) => {
                        tracing::warn!("no SQLite write turn in {SQLITE_BUSY_TIMEOUT:?}; going ahead without one");
                        None
                    }
                }
            }
        }
    }

    /// Called after a local commit of events.
    pub(crate) fn appended(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(tx) = &self.inner.notify_others {
            // Full means a notification is already pending: coalesced.
            let _ = tx.try_send(());
        }
    }

    /// One round trip to the database (readiness probes).
    /// The connection pool: connections open, of which idle, and the most
    /// it opens.
    pub fn pool_status(&self) -> PoolStatus {
        let max = self.inner.config.max_connections;
        let (size, idle, max) = match self.backend() {
            Backend::Postgres(p) => (p.size(), p.num_idle(), max),
            Backend::Sqlite(p) => (p.size(), p.num_idle(), max.clamp(1, 8)),
        };
        PoolStatus {
            open: size,
            idle: idle as u32,
            max,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sql::fetch(self, "SELECT 1 AS one", &[]).await.map(|_| ())
    }

    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Postgres(p) => p.close().await,
            Backend::Sqlite(p) => p.close().await,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod turn_tests {
    use super::*;

    /// Appends-side and background writes on SQLite both go through this
    /// process's turns: while a turn is held, neither reaches SQLite.
    #[tokio::test]
    async fn sqlite_writes_wait_for_their_turn() {
        let db = testkit::TestDb::new(testkit::Kind::Sqlite, "turns").await;
        let store = Store::connect(StoreConfig::new(&db.url)).await.unwrap();
        store.migrate().await.unwrap();
        let held = store.write_turn(turns::Class::Background).await;
        assert!(held.is_some());
        let command = tokio::spawn({
            let store = store.clone();
            async move { sql::exec_pool(&store, "CREATE TABLE t (x INTEGER)", &[]).await }
        });
        let background = tokio::spawn({
            let store = store.clone();
            async move { store.begin().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!command.is_finished() && !background.is_finished());
        drop(held);
        command.await.unwrap().unwrap();
        background.await.unwrap().unwrap();
        store.close().await;
        db.remove().await;
    }
}
