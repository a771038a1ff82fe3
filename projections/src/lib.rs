//! Freshledger's read models, built by checkpointed subscribers of the event
//! log. Each model applies an event and advances its checkpoint in one
//! transaction (exactly-once effect), on Postgres and SQLite alike, and can
//! be rebuilt from the log into fresh tables that are swapped in atomically
//! while the API keeps serving.

pub mod models;
mod rebuild;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_schemas::RecordedEvent;
use sha2::{Digest, Sha256};
use store::{Handler, HandlerError, Store, StoreError, StoreTx, Subscription};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use models::{Model, ReadModel};
pub use rebuild::{rebuild, rebuild_all};
use store::sql::{exec_pool, fetch};

/// Bumped when a model's tables or rules change: a model whose stored
/// version differs is rebuilt from the log at start.
pub const SCHEMA_VERSION: i64 = 2;

/// Suffixes of a model's tables while a rebuild builds them beside the
/// live ones, and of the live ones while they are swapped out.
pub(crate) const NEXT: &str = "_next";
pub(crate) const OLD: &str = "_old";

/// A model writing into tables with a suffix ("" live, "_next" rebuilding).
pub struct Projector {
    model: Model,
    suffix: &'static str,
}

#[async_trait]
impl Handler for Projector {
    fn wants(&self, event: &RecordedEvent) -> bool {
        self.model.wants(event)
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

pub(crate) async fn create_tables(
    store: &Store,
    model: Model,
    suffix: &str,
) -> Result<(), StoreError> {
    let tag = format!(
        "{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    for stmt in model.ddl(suffix, &tag) {
        exec_pool(store, &stmt, &[]).await?;
    }
    Ok(())
}

pub(crate) async fn drop_tables(
    store: &Store,
    model: Model,
    suffix: &str,
) -> Result<(), StoreError> {
    for t in model.tables() {
        exec_pool(
            store,
            &format!("DROP TABLE IF EXISTS {}{suffix}", t.name),
            &[],
        )
        .await?;
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

pub(crate) async fn set_version(store: &Store, model: Model) -> Result<(), StoreError> {
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
        let exists = table_exists(store, model.tables()[0].name).await;
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

/// Runs every model's subscription until `stop`, each while this process
/// holds its lease (one process at a time per model, however many share
/// the database); restarts one that fails after a pause.
pub fn spawn(store: &Store, stop: CancellationToken) -> Vec<JoinHandle<()>> {
    Model::ALL
        .into_iter()
        .map(|model| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                live_subscription(&store, model)
                    .run_leased(&stop, |_| {})
                    .await
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

/// A digest of everything a model holds (all tables, rows in key order).
pub async fn checksum(store: &Store, model: Model) -> Result<String, StoreError> {
    let mut h = Sha256::new();
    for t in model.tables() {
        let rows = fetch(
            store,
            &format!("SELECT * FROM {} ORDER BY {}", t.name, t.order_by),
            &[],
        )
        .await?;
        h.update(t.name.as_bytes());
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
