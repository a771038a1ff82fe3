//! Leases: named work that one process at a time may do (the Kafka relay,
//! the ClickHouse projector; later every subscription), however many
//! processes share the database. [`Store::run_leased`] runs such work:
//! standby, start, retry with backoff.
//!
//! Postgres: a session-level advisory lock on a connection of its own,
//! taken out of the pool. The lock lives exactly as long as that session:
//! a process that dies (even by SIGKILL) closes its socket, Postgres ends
//! the session and frees the lock, and another process's next attempt
//! takes it over. SQLite has one process per file by design; the lease is
//! then only exclusive within the process.

use std::collections::HashSet;
use std::sync::Mutex;

use sqlx::{Connection, PgConnection};

use crate::{Backend, Store, StoreError};

/// Names held by this process (SQLite's leases, and a guard against one
/// process taking the same Postgres lease twice).
#[derive(Default)]
pub(crate) struct Held(Mutex<HashSet<String>>);

/// The right to do the named work, until dropped or lost.
pub struct Lease {
    name: String,
    store: Store,
    /// Postgres: the session that holds the advisory lock.
    session: Option<PgConnection>,
}

const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('freshledger.lease.' || $1, 0)) AS held";

impl Store {
    /// Takes the lease `name` if no process holds it; `None` when another
    /// does (try again later: a dead holder's lease frees itself).
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        if !self
            .inner
            .leases
            .0
            .lock()
            .expect("lease set")
            .insert(name.to_string())
        {
            return Ok(None);
        }
        // From here on the name is ours in this process; a `Lease` (or the
        // guard below, on failure) gives it back.
        let mut lease = Lease {
            name: name.to_string(),
            store: self.clone(),
            session: None,
        };
        if let Backend::Postgres(pool) = self.backend() {
            let mut session = pool.acquire().await?.detach();
            let held: bool = sqlx::query_scalar(TRY_LOCK)
                .bind(name)
                .fetch_one(&mut session)
                .await?;
            if !held {
                let _ = session.close().await;
                return Ok(None);
            }
            lease.session = Some(session);
        }
        Ok(Some(lease))
    }
}

impl Lease {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lease is still held: on Postgres, one round trip on the
    /// session that holds the lock (alive means held). Call it before each
    /// piece of work whose effect leaves the database.
    pub async fn check(&mut self) -> bool {
        match &mut self.session {
            None => true,
            Some(session) => session.ping().await.is_ok(),
        }
    }

    /// Gives the lease up now (graceful shutdown: another process takes
    /// over without waiting to notice a dead one).
    pub async fn release(mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.close().await;
        }
    }
}

/// Where a leased worker stands, as [`Store::run_leased`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Another process holds the lease; this one tries again shortly.
    Standby,
    /// The lease is taken; the work is starting.
    Starting,
    /// The work failed; it starts again after a pause.
    Failed(String),
    /// Stopped for good.
    Stopped,
}

/// What leased work is doing, as health reports show it (the Kafka
/// relay, the ClickHouse projector, the audit chain keeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Taking the lease, connecting, preparing.
    Starting,
    /// Holding the lease and working.
    Active,
    /// Another process holds the lease and works.
    Standby,
    /// Failed; trying again after a pause.
    Retrying,
    /// Shut down.
    Stopped,
}

impl WorkState {
    /// Its name in reports (`active`, `standby`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::Starting => "starting",
            WorkState::Active => "active",
            WorkState::Standby => "standby",
            WorkState::Retrying => "retrying",
            WorkState::Stopped => "stopped",
        }
    }
}

impl Turn {
    /// What a worker reports on this turn, and the problem if any. The
    /// worker reports `Active` itself once its work is under way.
    pub fn state(self) -> (WorkState, Option<String>) {
        match self {
            Turn::Standby => (WorkState::Standby, None),
            Turn::Starting => (WorkState::Starting, None),
            Turn::Failed(why) => (WorkState::Retrying, Some(why)),
            Turn::Stopped => (WorkState::Stopped, None),
        }
    }
}

/// How often a standing-by process tries to take the lease.
const STANDBY_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
/// The first and the longest pause after a failure.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

impl Store {
    /// Runs `work` whenever this process holds the lease `name`, until
    /// `stop`: stands by while another process holds it, and starts again
    /// after a failure (200 ms, doubling to 30 s, back to 200 ms after a
    /// good minute). `work` returns `Ok` only when stopped (releasing the
    /// lease); `tell` hears every turn, for the worker's health report.
    pub async fn run_leased<F, Fut, E>(
        &self,
        name: &str,
        stop: &tokio_util::sync::CancellationToken,
        mut tell: impl FnMut(Turn),
        mut work: F,
    ) where
        F: FnMut(Lease) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let pause = |d| async move {
            tokio::select! {
                _ = stop.cancelled() => {},
                _ = tokio::time::sleep(d) => {},
            }
        };
        let mut backoff = FIRST_BACKOFF;
        while !stop.is_cancelled() {
            let lease = match self.try_lease(name).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tell(Turn::Standby);
                    pause(STANDBY_RETRY).await;
                    continue;
                }
                Err(e) => {
                    tell(Turn::Failed(format!("taking the lease: {e}")));
                    pause(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            tell(Turn::Starting);
            let started = std::time::Instant::now();
            match work(lease).await {
                Ok(()) => break,
                Err(e) => {
                    if started.elapsed() > std::time::Duration::from_secs(60) {
                        backoff = FIRST_BACKOFF;
                    }
                    tracing::warn!(lease = name, error = %e, retry_in = ?backoff, "leased work failed; retrying");
                    tell(Turn::Failed(e.to_string()));
                    pause(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tell(Turn::Stopped);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A session still open here is dropped with the lease, which closes
        // its socket: Postgres frees the lock when it sees the session end.
        self.store
            .inner
            .leases
            .0
            .lock()
            .expect("lease set")
            .remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};

    /// One holder at a time across processes (two pools stand for two
    /// processes on Postgres); a released or dropped lease is free again;
    /// within one process a name is held once, on either backend.
    #[tokio::test]
    async fn one_holder_at_a_time() {
        for kind in [testkit::Kind::Postgres, testkit::Kind::Sqlite] {
            let db = testkit::TestDb::new(kind, "test").await;
            let a = Store::connect(StoreConfig::new(&db.url)).await.unwrap();
            a.migrate().await.unwrap();
            let mut held = a.try_lease("relay").await.unwrap().expect("free");
            assert!(held.check().await);
            assert!(
                a.try_lease("relay").await.unwrap().is_none(),
                "{kind:?}: twice in one process"
            );
            assert!(
                a.try_lease("other").await.unwrap().is_some(),
                "{kind:?}: names are apart"
            );
            if kind == testkit::Kind::Postgres {
                let b = Store::connect(StoreConfig::new(&db.url)).await.unwrap();
                assert!(
                    b.try_lease("relay").await.unwrap().is_none(),
                    "another process took it"
                );
                held.release().await;
                let again = b.try_lease("relay").await.unwrap().expect("released");
                drop(again);
                // Dropping closes the session; Postgres frees the lock when
                // it sees the session end.
                let mut taken = None;
                for _ in 0..100 {
                    taken = a.try_lease("relay").await.unwrap();
                    if taken.is_some() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                assert!(taken.is_some(), "a dropped lease stays taken");
                b.close().await;
            } else {
                drop(held);
                assert!(a.try_lease("relay").await.unwrap().is_some());
            }
            a.close().await;
            db.remove().await;
        }
    }
}
