//! When the log cannot move: a reader of the Postgres log waits for every
//! append still in flight below its horizon (skipping one could lose an
//! event), so an appender whose transaction stays open holds every reader
//! back. That wait is never silent: after [`REPORT_AFTER`] it is visible in
//! [`Store::stall`] (the API's `/api/v1/log` and `/readyz`), after
//! [`WARN_AFTER`] it is logged as a warning naming the blocking sessions,
//! and again every [`WARN_EVERY`] while it lasts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Store;

/// How long a reader waits before its wait is reported as a stall.
pub const REPORT_AFTER: Duration = Duration::from_secs(1);
/// How long before the stall is logged as a warning.
pub const WARN_AFTER: Duration = Duration::from_secs(5);
/// How often the warning repeats while the stall lasts.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// Readers of the log are waiting for appends that have not finished.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stall {
    /// When the oldest current wait began.
    pub since: DateTime<Utc>,
    /// The sessions whose open transactions hold positions readers must
    /// wait for (they inserted into the events table and have not ended).
    pub blockers: Vec<Blocker>,
}

/// A database session holding the log back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    pub pid: i32,
    /// Its `application_name`, when the server shows it.
    pub application: Option<String>,
    pub database: Option<String>,
    /// `idle in transaction`, `active`, …
    pub state: Option<String>,
    /// Seconds since its transaction began.
    pub transaction_age_seconds: Option<i64>,
}

/// This process's view of the log's horizon: the last head proven safe,
/// and the current stall, if any.
#[derive(Default)]
pub(crate) struct Horizon {
    safe_head: AtomicU64,
    /// Whether `stall` is set (read on every head, so no lock then).
    stalled: AtomicBool,
    stall: Mutex<Option<Stall>>,
    last_warned: Mutex<Option<Instant>>,
}

impl Horizon {
    /// A reader proved `head` safe: nothing below it is in flight, so
    /// whatever stalled readers before is over.
    pub(crate) fn proven(&self, head: u64) {
        self.safe_head.fetch_max(head, Ordering::SeqCst);
        if self.stalled.swap(false, Ordering::SeqCst) {
            *self.stall.lock().expect("stall lock") = None;
            *self.last_warned.lock().expect("stall lock") = None;
        }
    }

    pub(crate) fn safe_head(&self) -> u64 {
        self.safe_head.load(Ordering::SeqCst)
    }

    /// A wait that began `waited` ago is still blocked by `blockers`.
    pub(crate) fn blocked(&self, waited: Duration, blockers: Vec<Blocker>) {
        let since = Utc::now() - chrono::Duration::from_std(waited).unwrap_or_default();
        {
            let mut stall = self.stall.lock().expect("stall lock");
            let since = stall.as_ref().map_or(since, |s| s.since.min(since));
            *stall = Some(Stall {
                since,
                blockers: blockers.clone(),
            });
            self.stalled.store(true, Ordering::SeqCst);
        }
        if waited < WARN_AFTER {
            return;
        }
        let mut last = self.last_warned.lock().expect("stall lock");
        if last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        for b in &blockers {
            tracing::warn!(
                pid = b.pid,
                application = b.application.as_deref().unwrap_or("?"),
                database = b.database.as_deref().unwrap_or("?"),
                state = b.state.as_deref().unwrap_or("?"),
                transaction_age_seconds = b.transaction_age_seconds,
                waited_seconds = waited.as_secs(),
                "the event log is stalled: readers wait for this session's open transaction, \
                 which inserted into the events table; commit or roll it back \
                 (SELECT pg_terminate_backend(pid) ends it)"
            );
        }
    }

    pub(crate) fn stall(&self) -> Option<Stall> {
        self.stall.lock().expect("stall lock").clone()
    }
}

impl Store {
    /// Whether readers of the log are held back by appends that have not
    /// finished (Postgres only; SQLite cannot stall this way).
    pub fn stall(&self) -> Option<Stall> {
        self.inner.horizon.stall()
    }
}
