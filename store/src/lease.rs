//! Leases: named work that one process at a time may do (every
//! subscription: the projectors, the saga shards, spoilage, the timer
//! scheduler, the Kafka relay, the ClickHouse projector, the audit chain),
//! however many processes share the database. [`Store::run_leased`] runs
//! such work: standby, start, retry with backoff, hand over.
//!
//! Postgres: a session-level advisory lock on a connection of its own,
//! taken out of the pool. The lock lives exactly as long as that session:
//! a process that dies (even by SIGKILL) closes its socket, Postgres ends
//! the session and frees the lock, and another process's next attempt
//! takes it over. The session asks the server to probe the peer every few
//! seconds (TCP keepalives), so a process cut off by the network loses its
//! leases too. SQLite has one process per file by design; the lease is
//! then only exclusive within the process.
//!
//! Sharing the work: each serving process is a *member* (an advisory lock
//! in a namespace of its own, on one more session) and counts the live
//! members every second. It holds at most its fair share of the leased
//! works it runs (`ceil(works / members)`): below it, a standing-by work
//! takes its lease when free; above it (a process joined), works hand
//! their leases over one at a time, each after holding it a while.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

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
    /// Cancelled when the work should end: the process stops, or (under
    /// [`Store::run_leased`]) the lease is being handed to another process.
    stopping: CancellationToken,
}

const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('freshledger.lease.' || $1, 0)) AS held";
/// The server probes a lease's peer after 5 s of silence, every 2 s, and
/// ends the session after 3 missed probes.
const KEEPALIVES: &str = "SELECT set_config('tcp_keepalives_idle', '5', false), \
     set_config('tcp_keepalives_interval', '2', false), \
     set_config('tcp_keepalives_count', '3', false)";
/// How long [`Lease::check`] waits for the session's answer.
const CHECK_BOUND: Duration = Duration::from_secs(2);

/// This process's part of the leased work, and the members it shares with.
pub(crate) struct Share {
    /// Leased works this process runs (each [`Store::run_leased`] call).
    works: AtomicUsize,
    /// Leases they hold within the share.
    held: AtomicUsize,
    /// Leases held beyond the share: works no other process wanted.
    forced: AtomicUsize,
    /// Serving processes on the database, as last counted (at least 1).
    members: AtomicUsize,
    /// Whether this process has joined (Postgres), and the token that ends
    /// its membership.
    joined: Mutex<Option<CancellationToken>>,
    /// Each leased work's state, for health reports and metrics.
    states: Mutex<BTreeMap<String, LeasedWork>>,
}

impl Default for Share {
    fn default() -> Self {
        Share {
            works: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            forced: AtomicUsize::new(0),
            members: AtomicUsize::new(1),
            joined: Mutex::new(None),
            states: Mutex::new(BTreeMap::new()),
        }
    }
}

/// One leased work as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeasedWork {
    pub name: String,
    pub state: WorkState,
    /// What went wrong, while it is retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// What [`Store::leases`] reports: the members and this process's works.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseReport {
    /// Serving processes sharing the database's work (this one included).
    pub members: usize,
    /// The most leases this process takes while all of them live.
    pub fair_share: usize,
    /// Leases this process holds.
    pub held: usize,
    pub works: Vec<LeasedWork>,
}

impl Share {
    fn fair(&self) -> usize {
        let works = self.works.load(Ordering::SeqCst);
        works.div_ceil(self.members.load(Ordering::SeqCst).max(1))
    }

    /// Counts a lease about to be taken, if this process is below its share.
    fn claim(&self) -> bool {
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                (h < self.fair()).then_some(h + 1)
            })
            .is_ok()
    }

    /// Gives one held lease up, if this process is above its share.
    fn yield_one(&self) -> bool {
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                (h > self.fair()).then_some(h - 1)
            })
            .is_ok()
    }

    fn unclaim(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    fn set(&self, name: &str, state: WorkState, problem: Option<String>) {
        let mut states = self.states.lock().expect("lease states");
        let since = match states.get(name) {
            Some(w) if w.state == state => w.since,
            _ => chrono::Utc::now(),
        };
        states.insert(
            name.to_string(),
            LeasedWork {
                name: name.to_string(),
                state,
                problem,
                since,
            },
        );
    }
}

/// The members' namespace (the first key of a two-key advisory lock).
const MEMBERS: i32 = 0x464c_4d42; // "FLMB"
const COUNT_MEMBERS: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND classid::bigint = $1 AND objsubid = 2 AND granted";
/// How often a member counts the others.
const COUNT_EVERY: Duration = Duration::from_secs(1);

impl Store {
    /// Makes this process a member of the database's workers (Postgres;
    /// SQLite has one process): from now on it counts the members every
    /// second and takes only its fair share of leases. Called by
    /// [`Store::run_leased`]; idempotent.
    fn join(&self) {
        let Backend::Postgres(pool) = self.backend() else {
            return;
        };
        let mut joined = self.inner.share.joined.lock().expect("membership");
        if joined.is_some() {
            return;
        }
        let leave = CancellationToken::new();
        *joined = Some(leave.clone());
        let pool = pool.clone();
        let store = self.clone();
        tokio::spawn(async move {
            let share = &store.inner.share;
            while !leave.is_cancelled() {
                if let Err(e) = membership(&pool, share, &leave).await {
                    tracing::warn!(error = %e, "lease membership lost; joining again");
                    tokio::select! {
                        _ = leave.cancelled() => {},
                        _ = tokio::time::sleep(COUNT_EVERY) => {},
                    }
                }
            }
            // Left: count as one again.
            share.members.store(1, Ordering::SeqCst);
        });
    }

    /// Ends this process's membership (graceful shutdown, before its works
    /// stop): the others count one member fewer within a second and take
    /// the leases it is about to release.
    pub fn leave(&self) {
        if let Some(leave) = self.inner.share.joined.lock().expect("membership").take() {
            leave.cancel();
        }
    }

    /// The members, this process's fair share and its leased works.
    pub fn leases(&self) -> LeaseReport {
        let share = &self.inner.share;
        LeaseReport {
            members: share.members.load(Ordering::SeqCst).max(1),
            fair_share: share.fair(),
            held: share.held.load(Ordering::SeqCst) + share.forced.load(Ordering::SeqCst),
            works: share
                .states
                .lock()
                .expect("lease states")
                .values()
                .cloned()
                .collect(),
        }
    }
}

/// Holds this process's membership lock on a session of its own and
/// counts the members until `leave`.
async fn membership(
    pool: &sqlx::PgPool,
    share: &Share,
    leave: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut session = pool.acquire().await?.detach();
    sqlx::query(KEEPALIVES).execute(&mut session).await?;
    // A random member key; a collision (two processes drew the same) is
    // resolved by drawing again.
    loop {
        let me = uuid::Uuid::new_v4().as_u128() as i32;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(MEMBERS)
            .bind(me)
            .fetch_one(&mut session)
            .await?;
        if taken {
            break;
        }
    }
    loop {
        let n: i64 = sqlx::query_scalar(COUNT_MEMBERS)
            .bind(MEMBERS as i64)
            .fetch_one(&mut session)
            .await?;
        let before = share.members.swap((n as usize).max(1), Ordering::SeqCst);
        if before != n as usize {
            tracing::info!(members = n, "processes sharing the leased work");
        }
        tokio::select! {
            _ = leave.cancelled() => {
                let _ = session.close().await;
                return Ok(());
            }
            _ = tokio::time::sleep(COUNT_EVERY) => {}
        }
    }
}

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
            stopping: CancellationToken::new(),
        };
        if let Backend::Postgres(pool) = self.backend() {
            let mut session = pool.acquire().await?.detach();
            sqlx::query(KEEPALIVES).execute(&mut session).await?;
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
            Some(session) => matches!(
                tokio::time::timeout(CHECK_BOUND, session.ping()).await,
                Ok(Ok(()))
            ),
        }
    }

    /// Cancelled when the work should end: the process is stopping, or
    /// [`Store::run_leased`] is handing the lease to another process.
    /// Leased work selects on this, not on the process's own token.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
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
const STANDBY_RETRY: Duration = Duration::from_millis(500);
/// The first and the longest pause after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The least time a lease is held before it is handed over to balance
/// the work (so a process joining does not set leases bouncing).
const MIN_HOLD: Duration = Duration::from_secs(3);
/// Every this many standby turns at full share (3 s), a work looks whether
/// its lease is free (taken beyond the share when free twice running).
const ORPHAN_PROBE: u32 = 6;

impl Store {
    /// Runs `work` whenever this process holds the lease `name`, until
    /// `stop`: stands by while another process holds it (or while this one
    /// holds its fair share of the leased work), starts again after a
    /// failure (200 ms, doubling to 30 s, back to 200 ms after a good
    /// minute), and hands the lease over when this process holds more than
    /// its share. `work` selects on [`Lease::stopping`] and returns `Ok`
    /// only then (releasing the lease); `tell` hears every turn, for the
    /// worker's health report.
    pub async fn run_leased<F, Fut, E>(
        &self,
        name: &str,
        stop: &CancellationToken,
        mut tell: impl FnMut(Turn),
        mut work: F,
    ) where
        F: FnMut(Lease) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        self.join();
        let share = &self.inner.share;
        share.works.fetch_add(1, Ordering::SeqCst);
        let mut tell = |turn: Turn| {
            let (state, problem) = turn.clone().state();
            share.set(name, state, problem);
            tell(turn)
        };
        let pause = |d| async move {
            tokio::select! {
                _ = stop.cancelled() => {},
                _ = tokio::time::sleep(d) => {},
            }
        };
        let mut backoff = FIRST_BACKOFF;
        // Turns stood by at full share, and whether the last probe found
        // the lease free (see below).
        let (mut at_share, mut seen_free) = (0u32, false);
        while !stop.is_cancelled() {
            if !share.claim() {
                // At full share. Still, every few seconds: is the lease
                // free, and was it free at the last look too? Then no
                // process below its share runs this work (processes with
                // other settings, say one without the order saga): take it
                // beyond the share, for good (never handed over to
                // balance), so no work is left without a process.
                at_share += 1;
                if at_share % ORPHAN_PROBE == 0 {
                    match self.try_lease(name).await {
                        Ok(Some(mut lease)) if seen_free => {
                            seen_free = false;
                            lease.stopping = stop.child_token();
                            share.forced.fetch_add(1, Ordering::SeqCst);
                            tracing::info!(
                                lease = name,
                                "took a lease no other process wanted, beyond this one's share"
                            );
                            let r = self
                                .hold(name, lease, stop, None, &mut tell, &mut work)
                                .await;
                            share.forced.fetch_sub(1, Ordering::SeqCst);
                            if let Err(e) = r {
                                tell(Turn::Failed(e));
                                pause(backoff).await;
                                backoff = (backoff * 2).min(MAX_BACKOFF);
                            }
                            continue;
                        }
                        Ok(Some(lease)) => {
                            seen_free = true;
                            lease.release().await;
                        }
                        _ => seen_free = false,
                    }
                }
                tell(Turn::Standby);
                pause(STANDBY_RETRY).await;
                continue;
            }
            at_share = 0;
            seen_free = false;
            let mut lease = match self.try_lease(name).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    share.unclaim();
                    tell(Turn::Standby);
                    pause(STANDBY_RETRY).await;
                    continue;
                }
                Err(e) => {
                    share.unclaim();
                    tell(Turn::Failed(format!("taking the lease: {e}")));
                    pause(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            lease.stopping = stop.child_token();
            let handed_over = Arc::new(AtomicBool::new(false));
            let balancer = tokio::spawn(balance(
                self.clone(),
                lease.stopping.clone(),
                handed_over.clone(),
            ));
            let started = std::time::Instant::now();
            let result = self
                .hold(name, lease, stop, Some(&handed_over), &mut tell, &mut work)
                .await;
            balancer.abort();
            if !handed_over.load(Ordering::SeqCst) {
                share.unclaim();
            }
            if let Err(e) = result {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = FIRST_BACKOFF;
                }
                tell(Turn::Failed(e));
                pause(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        share.works.fetch_sub(1, Ordering::SeqCst);
        tell(Turn::Stopped);
    }
}

impl Store {
    /// Runs `work` on `lease` until it ends: `Err` with the failure, `Ok`
    /// when stopped or handed over.
    async fn hold<F, Fut, E>(
        &self,
        name: &str,
        lease: Lease,
        stop: &CancellationToken,
        handed_over: Option<&AtomicBool>,
        tell: &mut impl FnMut(Turn),
        work: &mut F,
    ) -> Result<(), String>
    where
        F: FnMut(Lease) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        tell(Turn::Starting);
        self.inner.share.set(name, WorkState::Active, None);
        match work(lease).await {
            Ok(()) => {
                if !stop.is_cancelled() && handed_over.is_some_and(|h| h.load(Ordering::SeqCst)) {
                    tracing::info!(lease = name, "handed the lease over to balance the work");
                    tell(Turn::Standby);
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "leased work failed; retrying");
                Err(e.to_string())
            }
        }
    }
}

/// While a lease is held: after [`MIN_HOLD`], each second, if this process
/// holds more than its share, gives this lease up (asks its work to stop).
async fn balance(store: Store, stopping: CancellationToken, handed_over: Arc<AtomicBool>) {
    tokio::select! {
        _ = stopping.cancelled() => return,
        _ = tokio::time::sleep(MIN_HOLD) => {},
    }
    loop {
        if store.inner.share.yield_one() {
            handed_over.store(true, Ordering::SeqCst);
            stopping.cancel();
            return;
        }
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(COUNT_EVERY) => {},
        }
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
