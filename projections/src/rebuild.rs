//! Rebuilding read models from the log into fresh tables, swapped in
//! atomically while the API keeps serving.

use event_schemas::RecordedEvent;
use store::sql::exec;
use store::{Store, StoreError, StoreTx};

use crate::{create_tables, drop_tables, set_version, Model, NEXT, OLD};

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
            if !model.wants(e) {
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
    let parts = if store.parallel_writes() {
        PARTITIONS
    } else {
        1
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
    for t in model.tables() {
        let t = t.name;
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
