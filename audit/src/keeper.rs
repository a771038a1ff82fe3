//! The chain keeper: a subscriber of the log with a loop of its own (it
//! hashes events as stored, which subscriptions' envelopes are not). It
//! reads below the safe head, so it follows the gap-free order, and it
//! never touches an append: the chain costs appends nothing but the
//! database's share of its writes. One keeper per database holds the
//! lease `audit-chain`; the primary keys of its rows are the
//! compare-and-set that makes a second one fail rather than fork the chain.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use store::{Lease, Store, StoreError, Turn};
use tokio_util::sync::CancellationToken;

use crate::canonical::Hash;
use crate::chain::{self, AppendError};
use crate::checkpoint::Checkpoint;
use crate::{AuditConfig, CheckpointSink, Health, KeeperState};

/// The lease of the chain keeper.
pub const LEASE: &str = "audit-chain";
/// Events hashed and written at once.
const BATCH: u64 = 2_000;
/// After catching up, the keeper waits this long before it looks again:
/// the chain is not on anyone's critical path, and one transaction per
/// quarter second costs the database far less than one per append.
const PACE: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the lease {LEASE} was lost")]
    LeaseLost,
    #[error("writing checkpoints to {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) struct Keeper {
    pub store: Store,
    pub config: Arc<AuditConfig>,
    pub health: Arc<Mutex<Health>>,
}

/// Where the keeper stands.
struct Chain {
    /// The last link.
    link: (u64, Hash),
    /// Every position up to here has been looked at (holes included).
    scanned: u64,
    last_checkpoint: Option<(u64, Instant)>,
}

impl Keeper {
    pub(crate) fn tell(&self, turn: Turn) {
        let (state, problem) = turn.state();
        self.set(state, problem);
    }

    fn set(&self, state: KeeperState, problem: Option<String>) {
        let mut h = self.health.lock().expect("health");
        if h.state != state || h.problem != problem {
            h.since = Utc::now();
        }
        h.state = state;
        h.problem = problem;
    }

    fn progress(&self, chained: u64, checkpoint: Option<&Checkpoint>) {
        let mut h = self.health.lock().expect("health");
        h.chained = chained;
        if let Some(cp) = checkpoint {
            h.last_checkpoint = Some((cp.position, cp.signed_at));
        }
    }

    /// Keeps the chain until `stop` (returns `Ok`) or a failure.
    pub(crate) async fn keep(
        &self,
        mut lease: Lease,
        stop: &CancellationToken,
        until_head: bool,
    ) -> Result<(), KeepError> {
        let link = chain::last_link(&self.store).await?;
        let last = chain::last_checkpoint(&self.store).await?;
        let mut c = Chain {
            link,
            scanned: link.0,
            last_checkpoint: last
                .as_ref()
                .map(|cp| (cp.position, Instant::now() - age(cp.signed_at))),
        };
        self.progress(link.0, last.as_ref());
        self.set(KeeperState::Active, None);
        let mut sink = Sink::open(&self.config.checkpoint_sink, &self.store).await?;
        let mut wake = self.store.wakeups();
        loop {
            if stop.is_cancelled() {
                lease.release().await;
                return Ok(());
            }
            if !lease.check().await {
                return Err(KeepError::LeaseLost);
            }
            let head = self.store.head().await?;
            if head > c.scanned {
                let up_to = head.min(c.scanned + BATCH);
                let events = self.store.read_stored(c.scanned, up_to).await?;
                let every = self.config.checkpoint_every;
                let period = self.config.checkpoint_period;
                let key = self.config.key.as_ref();
                let caught_up = up_to == head;
                let (mut cp_pos, cp_at) = c.last_checkpoint.unwrap_or((0, Instant::now() - period));
                let (link, signed) =
                    chain::append(&self.store, c.link, &events, |position, hash, last| {
                        // Every `every` events exactly, and at the head of a
                        // batch that caught up once a period has passed.
                        let due = position.saturating_sub(cp_pos) >= every
                            || (last
                                && caught_up
                                && position > cp_pos
                                && cp_at.elapsed() >= period);
                        due.then(|| {
                            cp_pos = position;
                            chain::checkpoint_now(position, hash, key)
                        })
                    })
                    .await?;
                c.link = link;
                c.scanned = up_to;
                for cp in &signed {
                    sink.write(cp)?;
                }
                if let Some(cp) = signed.last() {
                    c.last_checkpoint = Some((cp.position, Instant::now()));
                }
                self.progress(c.link.0, signed.last());
                if caught_up && !until_head {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(PACE) => {}
                    }
                }
                continue;
            }
            let (cp_pos, cp_at) = c
                .last_checkpoint
                .unwrap_or((0, Instant::now() - self.config.checkpoint_period));
            // Idle: sign the head once a period has passed (or now, when
            // asked to bring the chain up to the head and stop).
            if c.link.0 > cp_pos && (until_head || cp_at.elapsed() >= self.config.checkpoint_period)
            {
                let cp = chain::checkpoint_now(c.link.0, c.link.1, self.config.key.as_ref());
                let mut tx = self.store.begin().await?;
                chain::insert_checkpoint(&mut tx, &cp).await?;
                tx.commit().await?;
                c.last_checkpoint = Some((cp.position, Instant::now()));
                sink.write(&cp)?;
                self.progress(c.link.0, Some(&cp));
                continue;
            }
            if until_head {
                lease.release().await;
                return Ok(());
            }
            let next_due = if c.link.0 > cp_pos {
                self.config
                    .checkpoint_period
                    .saturating_sub(cp_at.elapsed())
            } else {
                self.config.checkpoint_period
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = wake.changed() => {}
                _ = tokio::time::sleep(next_due.min(self.store.config().poll_interval)) => {}
            }
        }
    }
}

fn age(at: DateTime<Utc>) -> Duration {
    (Utc::now() - at).to_std().unwrap_or_default()
}

/// Where checkpoints go besides the database.
enum Sink {
    None,
    Stdout,
    File { path: String, file: std::fs::File },
}

impl Sink {
    /// Opens the file and appends the checkpoints it lacks (those signed
    /// while the process was down, or lost in a crash before the append).
    async fn open(config: &CheckpointSink, store: &Store) -> Result<Sink, KeepError> {
        match config {
            CheckpointSink::None => Ok(Sink::None),
            CheckpointSink::Stdout => Ok(Sink::Stdout),
            CheckpointSink::File(path) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let last = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Checkpoint>(l).ok())
                    .map(|c| c.position)
                    .max()
                    .unwrap_or(0);
                let io = |source| KeepError::File {
                    path: path.display().to_string(),
                    source,
                };
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                let mut sink = Sink::File {
                    path: path.display().to_string(),
                    file,
                };
                for cp in chain::checkpoints(store, last, u64::MAX).await? {
                    sink.write(&cp)?;
                }
                Ok(sink)
            }
        }
    }

    fn write(&mut self, cp: &Checkpoint) -> Result<(), KeepError> {
        match self {
            Sink::None => Ok(()),
            Sink::Stdout => {
                println!("{}", cp.to_line());
                Ok(())
            }
            Sink::File { path, file } => {
                let line = format!("{}\n", cp.to_line());
                file.write_all(line.as_bytes())
                    .and_then(|_| file.sync_data())
                    .map_err(|source| KeepError::File {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }
}
