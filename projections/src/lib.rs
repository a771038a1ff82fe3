//! Freshledger's read models, built by checkpointed subscribers of the event
//! log. Each model applies an event and advances its checkpoint in one
//! transaction (exactly-once effect), on Postgres and SQLite alike, and can
//! be rebuilt from the log into fresh tables that are swapped in atomically
//! while the API keeps serving.

pub mod models;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_schemas::RecordedEvent;
use sha2::{Digest, Sha256};
use store::{Handler, HandlerError, Store, StoreError, StoreTx, Subscription};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use models::Model;
use store::sql::{exec, exec_pool, fetch};

/// Bumped when a model's tables or rules change: a model whose stored
/// version differs is rebuilt from the log at start.
pub const SCHEMA_VERSION: i64 = 2;

const NEXT: &str = "_next";
const OLD: &str = "_old";

/// A model writing into tables with a suffix ("" live, "_next" rebuilding).
pub struct Projector {
    model: Model,
    suffix: &'static str,
}

#[async_trait]
impl Handler for Projector {
    fn wants(&self, event: &RecordedEvent) -> bool {
        self.model.wants(&event.stream_type)
    }

    async fn handle(&self, tx: &mut StoreTx, event: &RecordedEvent) -> Result<(), HandlerError> {
        Ok(self.model.apply(tx, self.suffix, event).await?)
    }
}

fn live_subscription(store: &Store, model: Model) -> Subscription {
    Subscription::new(
        model.name(),
        store,
        Arc::new(Projector { model, suffix: "" }),
    )
}

async fn table_exists(store: &Store, table: &str) -> bool {
    fetch(
        store,
        &format!("SELECT 1 AS one FROM {table} WHERE 1 = 0"),
        &[],
    )
    .await
    .is_ok()
}

async fn create_tables(store: &Store, model: Model, suffix: &str) -> Result<(), StoreError> {
    let tag = format!(
        "{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    for stmt in model.ddl(suffix, &tag) {
        exec_pool(store, &stmt, &[]).await?;
    }
    Ok(())
}

async fn drop_tables(store: &Store, model: Model, suffix: &str) -> Result<(), StoreError> {
    for (t, _) in model.tables() {
        exec_pool(store, &format!("DROP TABLE IF EXISTS {t}{suffix}"), &[]).await?;
    }
    Ok(())
}

async fn stored_version(store: &Store, model: Model) -> Option<i64> {
    exec_pool(store, "CREATE TABLE IF NOT EXISTS projection_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL)", &[])
        .await
        .ok()?;
    fetch(
        store,
        "SELECT version FROM projection_versions WHERE name = ?",
        &[model.name().into()],
    )
    .await
    .ok()?
    .first()
    .and_then(|r| r["version"].as_i64())
}

async fn set_version(store: &Store, model: Model) -> Result<(), StoreError> {
    exec_pool(
        store,
        "INSERT INTO projection_versions (name, version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version",
        &[model.name().into(), SCHEMA_VERSION.into()],
    )
    .await?;
    Ok(())
}

/// Makes sure every model's tables exist at the current version: creates
/// missing ones (their subscription starts from the beginning of the log)
/// and rebuilds those of another version.
pub async fn ensure(store: &Store) -> Result<(), StoreError> {
    let mut changed = Vec::new();
    for model in Model::ALL {
        let exists = table_exists(store, model.tables()[0].0).await;
        match (exists, stored_version(store, model).await) {
            (true, Some(SCHEMA_VERSION)) => {}
            (true, _) => {
                tracing::info!(
                    model = model.name(),
                    "read model schema changed: rebuilding"
                );
                changed.push(model);
            }
            (false, _) => {
                drop_tables(store, model, "").await?;
                create_tables(store, model, "").await?;
                store.reset_subscription(model.name(), 0).await?;
                set_version(store, model).await?;
            }
        }
    }
    // One read of the log for all of them.
    if !changed.is_empty() {
        rebuild_all(store, &changed, |_, _, _| {}).await?;
    }
    Ok(())
}

/// Runs every model's subscription until `stop`; restarts one that fails
/// on a database error after a pause.
pub fn spawn(store: &Store, stop: CancellationToken) -> Vec<JoinHandle<()>> {
    Model::ALL
        .into_iter()
        .map(|model| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let sub = live_subscription(&store, model);
                while !stop.is_cancelled() {
                    if let Err(e) = sub.run(stop.clone()).await {
                        tracing::error!(model = model.name(), error = %e, "projection stopped; restarting");
                        tokio::select! {
                            _ = stop.cancelled() => {},
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                        }
                    }
                }
            })
        })
        .collect()
}

/// Catches every model up with the log now (tests, tools).
pub async fn catch_up(store: &Store) -> Result<(), StoreError> {
    for model in Model::ALL {
        live_subscription(store, model).catch_up().await?;
    }
    Ok(())
}

/// Rebuilds one model: [`rebuild_all`] for one.
pub async fn rebuild(
    store: &Store,
    model: Model,
    progress: impl Fn(u64, u64),
) -> Result<(), StoreError> {
    rebuild_all(store, &[model], |_, done, total| progress(done, total)).await
}

/// Transactions per model and page of a rebuild: on Postgres the streams
/// of a model are applied in this many parallel transactions (a model's
/// rows for a stream depend only on that stream's events, so streams are
/// independent); SQLite has one writer, so one.
const PARTITIONS: u64 = 4;
/// Events read per page of a rebuild.
const PAGE: usize = 2_000;

/// The partition of a stream (FNV-1a of its id): all of a stream's events
/// go to the same one, in log order.
fn partition(stream_id: &str, parts: u64) -> u64 {
    let h = stream_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h % parts
}

/// Applies the events of `page` that `models` want and whose partition
/// (in `parts_of`, one per event) is `part`, into their `_next` tables, in
/// one transaction.
async fn apply_page(
    store: &Store,
    models: &[Model],
    page: &[RecordedEvent],
    parts_of: &[u64],
    part: u64,
) -> Result<(), StoreError> {
    let mut tx: Option<StoreTx> = None;
    for (e, _) in page.iter().zip(parts_of).filter(|(_, &p)| p == part) {
        for &model in models {
            if !model.wants(&e.stream_type) {
                continue;
            }
            let t = match &mut tx {
                Some(t) => t,
                None => tx.insert(store.begin().await?),
            };
            model.apply(t, NEXT, e).await.map_err(|err| {
                StoreError::Persistence(format!(
                    "rebuilding {} at position {}: {err}",
                    model.name(),
                    e.global_position
                ))
            })?;
        }
    }
    if let Some(t) = tx {
        t.commit().await?;
    }
    Ok(())
}

/// Rebuilds `models` from the log into fresh tables, then swaps them in.
///
/// The log is read once, a page at a time, for all of them. On Postgres
/// each page is applied in one transaction per model and partition of its
/// streams, all concurrently; on SQLite in one transaction. When a read
/// finds nothing more (the live server may still be appending), each model
/// is swapped in, in one transaction: the live tables are renamed away, the
/// new ones take their names, and the live checkpoint moves to where the
/// rebuild stopped, so the live subscriber (in this or another process)
/// carries on from there. Readers see the old tables until the swap
/// commits, the new ones after; nothing is ever half-built. A failure
/// leaves the live model as it was. `progress(model, done, total)` reports.
pub async fn rebuild_all(
    store: &Store,
    models: &[Model],
    progress: impl Fn(Model, u64, u64),
) -> Result<(), StoreError> {
    for &model in models {
        drop_tables(store, model, NEXT).await?;
        drop_tables(store, model, OLD).await?;
        create_tables(store, model, NEXT).await?;
    }
    let parts = match store.backend() {
        store::Backend::Postgres(_) => PARTITIONS,
        store::Backend::Sqlite(_) => 1,
    };
    let mut total = store.head().await?;
    let mut at = 0;
    loop {
        let page = store.read_all(at, PAGE).await?;
        let Some(last) = page.last() else { break };
        at = last.global_position;
        let parts_of: Vec<u64> = page
            .iter()
            .map(|e| partition(&e.stream_id, parts))
            .collect();
        if parts == 1 {
            apply_page(store, models, &page, &parts_of, 0).await?;
        } else {
            let (page, parts_of) = (&page, &parts_of);
            let work = models.iter().flat_map(|m| {
                (0..parts)
                    .map(move |p| apply_page(store, std::slice::from_ref(m), page, parts_of, p))
            });
            futures_util::future::try_join_all(work).await?;
        }
        total = total.max(at);
        for &model in models {
            progress(model, at, total);
        }
    }
    for &model in models {
        swap(store, model, at).await?;
        progress(model, total, total);
    }
    Ok(())
}

/// Swaps a model's `_next` tables in, with its live checkpoint at `at`.
async fn swap(store: &Store, model: Model, at: u64) -> Result<(), StoreError> {
    store.ensure_subscription_exists(model.name()).await?;
    let mut tx = store.begin().await?;
    // Checkpoint row first, tables second: the order a live runner locks
    // them in, so the two can never deadlock.
    exec(
        &mut tx,
        "UPDATE subscriptions SET position = ?, status = 'running', parked_at_position = NULL, last_error = NULL WHERE name = ?",
        &[at.into(), model.name().into()],
    )
    .await?;
    for (t, _) in model.tables() {
        exec(&mut tx, &format!("ALTER TABLE {t} RENAME TO {t}{OLD}"), &[]).await?;
        exec(
            &mut tx,
            &format!("ALTER TABLE {t}{NEXT} RENAME TO {t}"),
            &[],
        )
        .await?;
    }
    // What a rebuild of an earlier version kept its place in.
    exec(
        &mut tx,
        "DELETE FROM subscriptions WHERE name = ?",
        &[format!("{}:rebuild", model.name()).into()],
    )
    .await?;
    tx.commit().await?;
    store.checkpoints_moved();
    drop_tables(store, model, OLD).await?;
    set_version(store, model).await?;
    Ok(())
}

/// A digest of everything a model holds (all tables, rows in key order).
pub async fn checksum(store: &Store, model: Model) -> Result<String, StoreError> {
    let mut h = Sha256::new();
    for (t, order) in model.tables() {
        let rows = fetch(store, &format!("SELECT * FROM {t} ORDER BY {order}"), &[]).await?;
        h.update(t.as_bytes());
        for r in rows {
            h.update(
                serde_json::to_string(&r)
                    .expect("rows serialize")
                    .as_bytes(),
            );
            h.update(b"\n");
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Waits until every model has applied the log up to `position`, or
/// `timeout` passes (then returns the lowest position reached as an error).
pub async fn wait_for(store: &Store, position: u64, timeout: Duration) -> Result<(), u64> {
    wait_for_models(store, &Model::ALL, position, timeout).await
}

/// [`wait_for`], for some models only (a process manager waits only for
/// the read model it reads).
pub async fn wait_for_models(
    store: &Store,
    models: &[Model],
    position: u64,
    timeout: Duration,
) -> Result<(), u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        let lowest = lowest_checkpoint(store, models).await.unwrap_or(0);
        if lowest >= position {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(lowest);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

async fn lowest_checkpoint(store: &Store, models: &[Model]) -> Result<u64, StoreError> {
    let all = store.subscriptions().await?;
    Ok(models
        .iter()
        .map(|m| {
            all.iter()
                .find(|s| s.name == m.name())
                .map_or(0, |s| s.position)
        })
        .min()
        .unwrap_or(0))
}
