//! The tail of the log, read once per process and shared by its
//! subscriptions.
//!
//! Every subscription used to read new events for itself: on Postgres each
//! read is a look at the head, a visibility-horizon check and the SELECT, so
//! one append woke nine subscribers into some forty round trips and as many
//! decodes. Now the first subscriber to ask for what lies beyond the cached
//! window reads it (one reader at a time; the others wait and then find it
//! cached), and the rest take it from memory.
//!
//! The window holds *every* event with a position in `(from, head]`, decoded
//! and upcast, as [`Store::read_all`] returned them: complete and final,
//! because `read_all` never returns an event while a lower position can
//! still commit, and the log is append-only. A reader behind the window (a
//! subscription catching up, a rebuild) reads from the database directly and
//! leaves the window alone.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use event_schemas::RecordedEvent;
use tokio::sync::Mutex;

use crate::{Store, StoreError};

/// Events kept in memory (the newest).
const CAPACITY: usize = 4_096;
/// Events fetched per read of the tail.
const FETCH: usize = 500;

pub(crate) struct Tail {
    /// One reader of the database at a time.
    reading: Mutex<()>,
    window: RwLock<Window>,
}

#[derive(Default)]
struct Window {
    /// Every event with `from < position <= head` is in `events`.
    from: u64,
    head: u64,
    events: VecDeque<Arc<RecordedEvent>>,
}

impl Window {
    /// Up to `limit` events after `after`, if the window covers `after` and
    /// holds something beyond it.
    fn after(&self, after: u64, limit: usize) -> Option<Vec<Arc<RecordedEvent>>> {
        if after < self.from || after >= self.head {
            return None;
        }
        let start = self.events.partition_point(|e| e.global_position <= after);
        Some(self.events.range(start..).take(limit).cloned().collect())
    }
}

impl Tail {
    pub(crate) fn new() -> Tail {
        Tail {
            reading: Mutex::new(()),
            window: RwLock::new(Window::default()),
        }
    }

    fn cached(&self, after: u64, limit: usize) -> Option<Vec<Arc<RecordedEvent>>> {
        self.window.read().expect("tail lock").after(after, limit)
    }
}

impl Store {
    /// Up to `limit` events after `after`, like [`Store::read_all`], served
    /// from the process's shared window on the tail of the log when it can
    /// (for subscribers that follow the head).
    pub async fn read_tail(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let tail = &self.inner.tail;
        if let Some(hit) = tail.cached(after, limit) {
            return Ok(hit);
        }
        let reading = tail.reading.lock().await;
        // Another subscriber may have read it while this one waited.
        if let Some(hit) = tail.cached(after, limit) {
            return Ok(hit);
        }
        let from = tail.window.read().expect("tail lock").from;
        if after < from {
            drop(reading);
            let events = self.read_all(after, limit).await?;
            return Ok(events.into_iter().map(Arc::new).collect());
        }
        // At or beyond the head of the window: extend it from the database.
        // Beyond it (a checkpoint moved forward), the window restarts there.
        let head = {
            let mut w = tail.window.write().expect("tail lock");
            if after > w.head {
                *w = Window {
                    from: after,
                    head: after,
                    events: VecDeque::new(),
                };
            }
            w.head
        };
        let fresh = self.read_all(head, FETCH.max(limit)).await?;
        let mut w = tail.window.write().expect("tail lock");
        if w.head == head {
            for e in fresh {
                w.head = e.global_position;
                w.events.push_back(Arc::new(e));
            }
            while w.events.len() > CAPACITY {
                if let Some(old) = w.events.pop_front() {
                    w.from = old.global_position;
                }
            }
        }
        Ok(w.after(after, limit).unwrap_or_default())
    }
}
