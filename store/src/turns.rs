//! Turns at SQLite's one write lock, for this process's writers.
//!
//! A SQLite writer that finds the write lock taken sleeps in SQLite's busy
//! handler, in growing steps up to 100 ms, instead of being woken when the
//! lock is free; under load those sleeps were the tail of command latency
//! and of projection lag. So writers first take a turn here, and reach
//! SQLite one at a time.
//!
//! Two classes: [`Class::Command`] (a request is waiting on it: appends,
//! idempotency records) goes before [`Class::Background`] (subscriptions
//! applying batches and moving checkpoints, rebuilds), so a command waits
//! for the transaction in progress and the commands ahead of it, not for
//! the background writes queued before it. Background work is not starved:
//! when both wait, every turn after [`COMMANDS_PER_BACKGROUND`] command
//! turns in a row goes to the oldest background writer. Within a class,
//! first come first served.
//!
//! A turn handed to a waiter that gave up (its future dropped) passes on to
//! the next one: the turn travels as a value whose drop releases it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// When commands and background writers both wait: commands get this many
/// turns in a row, then one background writer gets one.
pub const COMMANDS_PER_BACKGROUND: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A client is waiting on this write.
    Command,
    /// Subscriptions, checkpoints, rebuilds.
    Background,
}

#[derive(Default)]
struct State {
    busy: bool,
    commands: VecDeque<oneshot::Sender<Turn>>,
    background: VecDeque<oneshot::Sender<Turn>>,
    /// Command turns handed on in a row while background writers waited.
    commands_in_a_row: u32,
}

/// The turnstile; cheap to clone.
#[derive(Clone, Default)]
pub struct Turns {
    state: Arc<Mutex<State>>,
}

/// A writer's turn; the next writer's comes when it is dropped.
pub struct Turn {
    turns: Option<Turns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.pass_on();
        }
    }
}

impl Turns {
    /// Waits for this writer's turn.
    pub async fn take(&self, class: Class) -> Turn {
        let rx = {
            let mut s = self.state.lock().unwrap();
            if !s.busy {
                s.busy = true;
                return self.turn();
            }
            let (tx, rx) = oneshot::channel();
            match class {
                Class::Command => s.commands.push_back(tx),
                Class::Background => s.background.push_back(tx),
            }
            rx
        };
        // The sender is only dropped after a send: `pass_on` sends to every
        // sender it pops, and `State` lives as long as `self`.
        rx.await
            .expect("a waiting writer is always handed its turn")
    }

    fn turn(&self) -> Turn {
        Turn {
            turns: Some(self.clone()),
        }
    }

    /// The current turn ended: hand it to the next writer, or mark the lock
    /// free.
    fn pass_on(&self) {
        let mut s = self.state.lock().unwrap();
        loop {
            let background_due = s.commands_in_a_row >= COMMANDS_PER_BACKGROUND;
            let next = match (s.commands.is_empty(), s.background.is_empty()) {
                (true, true) => {
                    s.busy = false;
                    s.commands_in_a_row = 0;
                    return;
                }
                (false, true) => {
                    s.commands_in_a_row = 0;
                    s.commands.pop_front()
                }
                (false, false) if !background_due => {
                    s.commands_in_a_row += 1;
                    s.commands.pop_front()
                }
                _ => {
                    s.commands_in_a_row = 0;
                    s.background.pop_front()
                }
            }
            .expect("the queue is not empty");
            // A waiter that gave up has dropped its receiver: the turn comes
            // back; disarm it (its drop would take this lock again) and try
            // the next one. One that gives up after this send drops the turn
            // with its receiver, which passes it on.
            match next.send(self.turn()) {
                Ok(()) => return,
                Err(mut returned) => {
                    returned.turns = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Lets spawned waiters reach their queue.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Queues `n` writers of `class` behind the current turn; each, when it
    /// gets its turn, records its label and holds the turn briefly.
    fn queue(
        turns: &Turns,
        log: &Arc<Mutex<Vec<String>>>,
        class: Class,
        label: &str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|i| {
                let (turns, log, label) = (turns.clone(), log.clone(), format!("{label}{i}"));
                tokio::spawn(async move {
                    let _turn = turns.take(class).await;
                    log.lock().unwrap().push(label);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn commands_go_first_and_background_still_gets_every_fifth_turn() {
        let turns = Turns::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let first = turns.take(Class::Background).await;
        let mut tasks = Vec::new();
        // Queued in this order: two background writers, then ten commands.
        for (class, label, n) in [(Class::Background, "b", 2), (Class::Command, "c", 10)] {
            for t in queue(&turns, &log, class, label, n) {
                tasks.push(t);
                settle().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = log.lock().unwrap().join(" ");
        assert_eq!(order, "c0 c1 c2 c3 b0 c4 c5 c6 c7 b1 c8 c9");
    }

    #[tokio::test]
    async fn one_writer_at_a_time() {
        let turns = Turns::default();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (turns, inside, most) = (turns.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let class = if i % 3 == 0 {
                        Class::Background
                    } else {
                        Class::Command
                    };
                    let _turn = turns.take(class).await;
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        // And the lock is free again.
        let _t = tokio::time::timeout(Duration::from_secs(1), turns.take(Class::Command))
            .await
            .expect("free");
    }

    #[tokio::test]
    async fn a_writer_that_gives_up_does_not_keep_the_turn() {
        let turns = Turns::default();
        let first = turns.take(Class::Command).await;
        // Gives up while queued.
        let quitter = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _ = tokio::time::timeout(Duration::from_millis(5), turns.take(Class::Command))
                    .await;
            }
        });
        quitter.await.unwrap();
        // Queued, then dropped after the turn was sent but before it ran.
        let late = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(Class::Background).await }
        });
        settle().await;
        let next = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _turn = turns.take(Class::Background).await;
            }
        });
        settle().await;
        late.abort();
        drop(first);
        let _ = late.await;
        tokio::time::timeout(Duration::from_secs(1), next)
            .await
            .expect("the turn reached the next writer")
            .unwrap();
        let _t = tokio::time::timeout(Duration::from_secs(1), turns.take(Class::Command))
            .await
            .expect("free");
    }
}
