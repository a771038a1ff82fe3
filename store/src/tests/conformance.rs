//! The event log's contract, run against SQLite and Postgres alike.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::common::*;
use crate::subscription::Tx;
use crate::{CommandError, Handler, HandlerError, RetryPolicy, Store, StoreTx, Subscription};
use async_trait::async_trait;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext, EventStore};
use domain::inventory::{InventoryBatch, InventoryBatchCommand as IC, InventoryError};
use event_schemas::values::*;
use event_schemas::RecordedEvent;
use rand::Rng;
use tokio_util::sync::CancellationToken;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() { super::$name(super::Kind::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() { super::$name(super::Kind::Postgres).await }
            )*
        }
    };
}

conformance!(
    appends_carry_their_envelope,
    reads_by_stream_and_correlation,
    a_reader_waits_for_a_lower_position_still_in_flight,
    concurrent_appenders_and_a_tailing_reader_see_every_event_once_in_order,
    racing_commands_one_wins_the_other_conflicts,
    retries_make_racing_commands_all_land_and_never_oversell,
    subscriptions_apply_each_event_exactly_once_despite_failures,
    a_failing_handler_parks_and_never_skips,
    reset_rewinds_a_subscription,
    two_processes_on_one_subscription_apply_each_event_once,
    snapshots_are_taken_and_loaded,
    old_event_versions_are_upcast_on_every_read,
    live_subscriptions_are_woken_by_appends_from_another_process,
    runners_sharing_the_tail_each_apply_every_event_once_in_order,
    a_concurrent_reactor_keeps_each_keys_order_and_runs_unkeyed_events_alone,
    a_stale_aggregate_cache_never_changes_an_outcome,
    cqrs_es_replay_streams_read_back_what_was_appended,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_reader_waits_for_an_in_flight_xid_above_the_snapshot_xmax() {
    // The interleaving the stress test once caught: U takes an xid, T takes
    // a higher xid and a *lower* position, U takes the next position and
    // commits. T's xid is now above every completed xid, so a snapshot's
    // xmax (latest completed + 1) does not even list T as running.
    let ts = open(Kind::Postgres).await;
    let crate::Backend::Postgres(pool) = ts.store.backend().clone() else {
        unreachable!()
    };
    let insert = |id: BatchId| {
        let (p, m, _) = raw_event(id);
        (id, p, m)
    };
    let mut u = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *u)
        .await
        .unwrap();
    let mut t = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *t)
        .await
        .unwrap();
    let (t_id, p, m) = insert(BatchId::new());
    sqlx::query(raw_insert_sql(Kind::Postgres))
        .bind(t_id.to_string())
        .bind(p)
        .bind(m)
        .execute(&mut *t)
        .await
        .unwrap();
    let (u_id, p, m) = insert(BatchId::new());
    sqlx::query(raw_insert_sql(Kind::Postgres))
        .bind(u_id.to_string())
        .bind(p)
        .bind(m)
        .execute(&mut *u)
        .await
        .unwrap();
    u.commit().await.unwrap();
    let reader = tokio::spawn({
        let s = ts.store.clone();
        async move { s.read_all(0, 10).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "the reader returned while T (lower position, xid above xmax) was in flight"
    );
    t.commit().await.unwrap();
    let ids: Vec<_> = reader
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_id.clone())
        .collect();
    assert_eq!(ids, vec![t_id.to_string(), u_id.to_string()]);
    ts.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_position_not_taken_by_its_default() {
    // Only fl_next_position() gives the inserting transaction its xid before
    // it takes a position; a position from anywhere else could commit below
    // a reader's horizon and be skipped for good.
    let ts = open(Kind::Postgres).await;
    let crate::Backend::Postgres(pool) = ts.store.backend().clone() else {
        unreachable!()
    };
    for position in ["nextval('events_position_seq')", "1000000"] {
        let (p, m, _) = raw_event(BatchId::new());
        let err = sqlx::query(&format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position) \
             VALUES ('InventoryBatch', $1, 1, 'BatchReceived', '1.0', $2::json, $3::json, {position})"
        ))
        .bind(BatchId::new().to_string())
        .bind(p)
        .bind(m)
        .execute(&pool)
        .await
        .expect_err("a position not from its default is refused");
        let code = err
            .as_database_error()
            .and_then(|d| d.code())
            .unwrap_or_default();
        assert_eq!(code, "23514", "{position}: {err}");
    }
    // The default still works, in one row or many.
    let (p, m, _) = raw_event(BatchId::new());
    sqlx::query(raw_insert_sql(Kind::Postgres))
        .bind(BatchId::new().to_string())
        .bind(p)
        .bind(m)
        .execute(&pool)
        .await
        .unwrap();
    append_n(&ts.store, 3).await;
    assert_eq!(ts.store.read_all(0, 10).await.unwrap().len(), 4);
    ts.finish().await;
}

async fn raw_append(ts: &TestStore, hold: Duration, commit: bool) -> BatchId {
    let id = BatchId::new();
    let (payload, meta, event_id) = raw_event(id);
    let sql = raw_insert_sql(ts.kind);
    let mut tx = ts.store.begin().await.unwrap();
    match &mut tx.0 {
        Tx::Postgres(t) => {
            sqlx::query(sql)
                .bind(id.to_string())
                .bind(payload)
                .bind(meta)
                .execute(&mut **t)
                .await
                .unwrap();
        }
        Tx::Sqlite(t, _) => {
            sqlx::query(sql)
                .bind(id.to_string())
                .bind(payload)
                .bind(meta)
                .bind(event_id)
                .execute(&mut **t)
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(hold).await;
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    id
}

async fn appends_carry_their_envelope(kind: Kind) {
    let ts = open(kind).await;
    let agg = batches(&ts.store);
    let id = BatchId::new();
    let m = meta();
    let appended = agg
        .execute(&id.to_string(), receive(id, 5_000), &m)
        .await
        .unwrap();
    assert_eq!(appended.events, 1);
    assert_eq!(appended.stream_version, 1);
    let events = ts.store.read_all(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(Some(e.global_position), appended.last_position);
    assert_eq!(e.stream_type, "InventoryBatch");
    assert_eq!(e.stream_id, id.to_string());
    assert_eq!(e.stream_version, 1);
    assert_eq!(e.event_type, "BatchReceived");
    assert_eq!(e.event_version, "1.0");
    assert_eq!(e.event_id.get_version_num(), 7, "event ids are UUID v7");
    assert_eq!(e.occurred_at, m.occurred_at);
    assert_eq!(e.correlation_id, m.correlation_id);
    assert_eq!(e.actor, m.actor);
    assert!(
        e.recorded_at > m.occurred_at,
        "recorded_at is the commit time"
    );
    assert_eq!(e.payload["quantity"]["amount"], 5_000);
    assert!(matches!(
        e.decode().unwrap(),
        event_schemas::AnyEvent::InventoryBatch(_)
    ));
    // a command that changes nothing appends nothing
    let again = agg
        .execute(
            &id.to_string(),
            IC::ReleaseReservation {
                order_id: OrderId::new(),
                reason: event_schemas::inventory::ReleaseReason::OrderCancelled,
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!((again.events, again.last_position), (0, None));
    assert_eq!(ts.store.count().await.unwrap(), 1);
    ts.finish().await;
}

async fn reads_by_stream_and_correlation(kind: Kind) {
    let ts = open(kind).await;
    let agg = batches(&ts.store);
    let (a, b) = (BatchId::new(), BatchId::new());
    let flow = meta();
    agg.execute(&a.to_string(), receive(a, 5_000), &flow)
        .await
        .unwrap();
    agg.execute(&b.to_string(), receive(b, 5_000), &meta())
        .await
        .unwrap();
    agg.execute(
        &a.to_string(),
        IC::ReserveStock {
            order_id: OrderId::new(),
            quantity: Quantity::grams(100).unwrap(),
        },
        &flow,
    )
    .await
    .unwrap();
    let stream = ts
        .store
        .read_stream("InventoryBatch", &a.to_string())
        .await
        .unwrap();
    assert_eq!(
        stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let flow_events = ts
        .store
        .read_correlation(flow.correlation_id)
        .await
        .unwrap();
    assert_eq!(flow_events.len(), 2);
    assert!(flow_events.iter().all(|e| e.stream_id == a.to_string()));
    assert!(flow_events[0].global_position < flow_events[1].global_position);
    ts.finish().await;
}

/// The sequence-gap trap, made deterministic: A takes a position and holds
/// its transaction open; B takes the next position and commits. A reader
/// must not hand out B's event before A's outcome is known.
async fn a_reader_waits_for_a_lower_position_still_in_flight(kind: Kind) {
    if kind == Kind::Sqlite {
        // SQLite admits one writer at a time: B cannot even start while A
        // holds its transaction, so the situation cannot arise. Show that.
        let ts = open(kind).await;
        let slow = tokio::spawn({
            let ts_store = ts.store.clone();
            async move {
                let mut tx = ts_store.begin().await.unwrap();
                if let Tx::Sqlite(t, _) = &mut tx.0 {
                    let (p, m, id) = raw_event(BatchId::new());
                    sqlx::query(raw_insert_sql(Kind::Sqlite))
                        .bind(BatchId::new().to_string())
                        .bind(p)
                        .bind(m)
                        .bind(id)
                        .execute(&mut **t)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                tx.commit().await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        raw_append(&ts, Duration::ZERO, true).await; // waits for the lock
        slow.await.unwrap();
        let events = ts.store.read_all(0, 10).await.unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].global_position < events[1].global_position);
        ts.finish().await;
        return;
    }
    let ts = open(kind).await;
    let crate::Backend::Postgres(pool) = ts.store.backend().clone() else {
        unreachable!()
    };
    let first = BatchId::new();
    let (p, m, _) = raw_event(first);
    let mut a = pool.begin().await.unwrap();
    sqlx::query(raw_insert_sql(Kind::Postgres))
        .bind(first.to_string())
        .bind(p)
        .bind(m)
        .execute(&mut *a)
        .await
        .unwrap();
    let second = raw_append(&ts, Duration::ZERO, true).await;

    // A naive reader (position > checkpoint) sees B alone and would move its
    // checkpoint past A's position for ever.
    let naive: Vec<String> =
        sqlx::query_scalar("SELECT aggregate_id FROM events WHERE position > 0 ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(naive, vec![second.to_string()]);

    let reader = tokio::spawn({
        let s = ts.store.clone();
        async move { s.read_all(0, 10).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "the reader returned while a lower position was in flight"
    );
    a.commit().await.unwrap();
    let events = reader.await.unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.stream_id.clone()).collect();
    assert_eq!(ids, vec![first.to_string(), second.to_string()]);
    ts.finish().await;
}

async fn concurrent_appenders_and_a_tailing_reader_see_every_event_once_in_order(kind: Kind) {
    let rounds: usize = std::env::var("FRESHLEDGER_STRESS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let ts = Arc::new(open(kind).await);
    for round in 0..rounds {
        let done = Arc::new(AtomicBool::new(false));
        let start = ts.store.head().await.unwrap();
        // The tailing reader.
        let reader = tokio::spawn({
            let store = ts.store.clone();
            let done = done.clone();
            async move {
                let mut seen: Vec<RecordedEvent> = Vec::new();
                let mut after = start;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let batch = store.read_all(after, 37).await.unwrap();
                    if batch.is_empty() {
                        if finished {
                            return seen;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    after = batch.last().unwrap().global_position;
                    seen.extend(batch);
                }
            }
        });
        // Appenders: through cqrs-es, and raw ones that hold their
        // transaction open for a random while or roll back.
        let mut writers = Vec::new();
        for w in 0..8 {
            let ts = ts.clone();
            writers.push(tokio::spawn(async move {
                let agg = batches(&ts.store);
                let mut committed = Vec::new();
                for i in 0..25 {
                    let (hold, commit, raw) = {
                        let mut rng = rand::rng();
                        let max_hold = if ts.kind == Kind::Sqlite { 3 } else { 40 };
                        (
                            Duration::from_millis(rng.random_range(0..max_hold)),
                            rng.random_bool(0.9),
                            (w + i) % 2 == 0,
                        )
                    };
                    if raw {
                        let id = raw_append(&ts, hold, commit).await;
                        if commit {
                            committed.push(id.to_string());
                        }
                    } else {
                        let id = BatchId::new();
                        agg.execute(&id.to_string(), receive(id, 1_000), &meta())
                            .await
                            .unwrap();
                        committed.push(id.to_string());
                    }
                }
                committed
            }));
        }
        let mut expected = BTreeSet::new();
        for w in writers {
            expected.extend(w.await.unwrap());
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.await.unwrap();
        let positions: Vec<u64> = seen.iter().map(|e| e.global_position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "round {round}: positions out of order"
        );
        let ids: Vec<String> = seen.iter().map(|e| e.stream_id.clone()).collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "round {round}: an event was delivered twice"
        );
        assert_eq!(
            unique, expected,
            "round {round}: the reader missed or invented events"
        );
    }
    Arc::try_unwrap(ts).ok().unwrap().finish().await;
}

async fn racing_commands_one_wins_the_other_conflicts(kind: Kind) {
    let ts = open_with(kind, |c| c.snapshot_every = 0).await;
    let id = BatchId::new();
    batches(&ts.store)
        .execute(&id.to_string(), receive(id, 5_000), &meta())
        .await
        .unwrap();
    // Two deciders load the same version, both decide, both commit.
    let es = PersistedEventStore::<_, InventoryBatch>::new_event_store(ts.store.repo());
    let mut first = es.load_aggregate(&id.to_string()).await.unwrap();
    let second = es.load_aggregate(&id.to_string()).await.unwrap();
    let reserve = |o: OrderId| {
        event_schemas::inventory::StockReserved {
            order_id: o,
            quantity: Quantity::grams(100).unwrap(),
        }
        .into()
    };
    let _ = first.aggregate();
    es.commit(vec![reserve(OrderId::new())], first, meta().to_map())
        .await
        .unwrap();
    let lost = es
        .commit(vec![reserve(OrderId::new())], second, meta().to_map())
        .await;
    assert!(
        matches!(lost, Err(cqrs_es::AggregateError::AggregateConflict)),
        "{lost:?}"
    );
    assert_eq!(ts.store.count().await.unwrap(), 2);

    // Through the command layer with retries disabled, racing commands on
    // one stream: every one either lands or reports the conflict.
    let agg = Arc::new(batches(&ts.store).with_retry(RetryPolicy::never()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let agg = agg.clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            agg.execute(
                &id,
                IC::ReserveStock {
                    order_id: OrderId::new(),
                    quantity: Quantity::grams(10).unwrap(),
                },
                &meta(),
            )
            .await
        }));
    }
    let (mut ok, mut conflicts) = (0u64, 0u64);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Conflict { attempts: 1 }) => conflicts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok + conflicts, 16);
    assert!(ok >= 1);
    assert_eq!(ts.store.count().await.unwrap(), 2 + ok);
    ts.finish().await;
}

async fn retries_make_racing_commands_all_land_and_never_oversell(kind: Kind) {
    let ts = open_with(kind, |c| c.snapshot_every = 5).await;
    let agg = Arc::new(batches(&ts.store).with_retry(RetryPolicy {
        attempts: 100,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    }));
    let id = BatchId::new();
    agg.execute(&id.to_string(), receive(id, 10_000), &meta())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let agg = agg.clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            agg.execute(
                &id,
                IC::ReserveStock {
                    order_id: OrderId::new(),
                    quantity: Quantity::grams(1_000).unwrap(),
                },
                &meta(),
            )
            .await
        }));
    }
    let (mut ok, mut short) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Rejected(InventoryError::InsufficientStock { .. })) => short += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(
        (ok, short),
        (10, 20),
        "exactly the stock there was got reserved"
    );
    let (batch, version) = agg.load(&id.to_string()).await.unwrap();
    assert_eq!(version, 11);
    assert_eq!(batch.reserved(), 10_000);
    assert_eq!(batch.available(), 0);
    ts.finish().await;
}

/// Records each event it sees in a table in the same transaction.
struct Recorder {
    fail_one_in: u64,
    calls: AtomicU64,
    poison: Option<u64>,
    poisoned: AtomicBool,
}

impl Recorder {
    fn new(fail_one_in: u64) -> Arc<Self> {
        Arc::new(Recorder {
            fail_one_in,
            calls: AtomicU64::new(0),
            poison: None,
            poisoned: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, tx: &mut StoreTx, event: &RecordedEvent) -> Result<(), HandlerError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let id = event.event_id.to_string();
        let pos = event.global_position as i64;
        match &mut tx.0 {
            Tx::Postgres(t) => {
                sqlx::query("INSERT INTO seen (event_id, position) VALUES ($1, $2)")
                    .bind(&id)
                    .bind(pos)
                    .execute(&mut **t)
                    .await?;
            }
            Tx::Sqlite(t, _) => {
                sqlx::query("INSERT INTO seen (event_id, position) VALUES (?, ?)")
                    .bind(&id)
                    .bind(pos)
                    .execute(&mut **t)
                    .await?;
            }
        }
        // Fail *after* writing, so a bad rollback would leave a duplicate.
        if self.fail_one_in > 0 && n % self.fail_one_in == self.fail_one_in - 1 {
            return Err("injected failure".into());
        }
        if Some(event.global_position) == self.poison && self.poisoned.load(Ordering::SeqCst) {
            return Err("cannot handle this event".into());
        }
        Ok(())
    }
}

async fn create_seen(store: &Store) {
    let sql = "CREATE TABLE IF NOT EXISTS seen (event_id TEXT NOT NULL, position BIGINT NOT NULL)";
    match store.backend() {
        crate::Backend::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        crate::Backend::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

async fn seen_counts(store: &Store) -> HashMap<String, i64> {
    let sql = "SELECT event_id, count(*) FROM seen GROUP BY event_id";
    let rows: Vec<(String, i64)> = match store.backend() {
        crate::Backend::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        crate::Backend::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    };
    rows.into_iter().collect()
}

async fn append_n(store: &Store, n: usize) {
    let agg = batches(store);
    for _ in 0..n {
        let id = BatchId::new();
        agg.execute(&id.to_string(), receive(id, 1_000), &meta())
            .await
            .unwrap();
    }
}

async fn subscriptions_apply_each_event_exactly_once_despite_failures(kind: Kind) {
    let ts = open(kind).await;
    create_seen(&ts.store).await;
    append_n(&ts.store, 120).await;
    let recorder = Recorder::new(7);
    let sub = Subscription::new("recorder", &ts.store, recorder.clone())
        .with_batch_size(16)
        .with_retries(10, Duration::from_millis(1));
    let status = sub.catch_up().await.unwrap();
    assert!(!status.parked, "{status:?}");
    assert_eq!(status.position, ts.store.head().await.unwrap());
    let counts = seen_counts(&ts.store).await;
    assert_eq!(counts.len(), 120);
    assert!(
        counts.values().all(|&c| c == 1),
        "an effect was applied twice"
    );
    assert!(
        recorder.calls.load(Ordering::SeqCst) > 120,
        "failures were injected"
    );
    ts.finish().await;
}

async fn a_failing_handler_parks_and_never_skips(kind: Kind) {
    let ts = open(kind).await;
    create_seen(&ts.store).await;
    append_n(&ts.store, 10).await;
    let all = ts.store.read_all(0, 100).await.unwrap();
    let bad = all[4].global_position;
    let recorder = Arc::new(Recorder {
        fail_one_in: 0,
        calls: AtomicU64::new(0),
        poison: Some(bad),
        poisoned: AtomicBool::new(true),
    });
    let sub = Subscription::new("fragile", &ts.store, recorder.clone())
        .with_retries(3, Duration::from_millis(1));
    let status = sub.catch_up().await.unwrap();
    assert!(status.parked);
    assert_eq!(status.parked_at_position, Some(bad));
    assert_eq!(
        status.position, all[3].global_position,
        "checkpoint stops before the bad event"
    );
    assert!(status.last_error.unwrap().contains("cannot handle"));
    assert_eq!(seen_counts(&ts.store).await.len(), 4);
    // A parked subscription stays put, even when asked again.
    assert!(sub.catch_up().await.unwrap().parked);
    // The fix is deployed; resume retries the same event.
    recorder.poisoned.store(false, Ordering::SeqCst);
    ts.store.resume_subscription("fragile").await.unwrap();
    let status = sub.catch_up().await.unwrap();
    assert!(!status.parked);
    assert_eq!(status.position, all[9].global_position);
    let counts = seen_counts(&ts.store).await;
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|&c| c == 1));
    let listed = ts.store.subscriptions().await.unwrap();
    assert_eq!(listed.len(), 1);
    ts.finish().await;
}

async fn reset_rewinds_a_subscription(kind: Kind) {
    let ts = open(kind).await;
    create_seen(&ts.store).await;
    append_n(&ts.store, 6).await;
    let sub = Subscription::new("rewind", &ts.store, Recorder::new(0));
    sub.catch_up().await.unwrap();
    let third = ts.store.read_all(0, 100).await.unwrap()[2].global_position;
    ts.store.reset_subscription("rewind", third).await.unwrap();
    sub.catch_up().await.unwrap();
    let counts = seen_counts(&ts.store).await;
    assert_eq!(
        counts.values().filter(|&&c| c == 2).count(),
        3,
        "events after the rewind point again"
    );
    ts.store.reset_subscription("rewind", 0).await.unwrap();
    sub.catch_up().await.unwrap();
    let counts = seen_counts(&ts.store).await;
    assert_eq!(counts.values().sum::<i64>(), 6 + 3 + 6);
    ts.finish().await;
}

async fn two_processes_on_one_subscription_apply_each_event_once(kind: Kind) {
    let ts = open(kind).await;
    create_seen(&ts.store).await;
    let other = ts
        .another(|c| c.poll_interval = Duration::from_millis(5))
        .await;
    let stop = CancellationToken::new();
    let mut runners = Vec::new();
    for store in [ts.store.clone(), other.clone()] {
        let sub = Subscription::new("shared", &store, Recorder::new(0)).with_batch_size(3);
        let stop = stop.clone();
        runners.push(tokio::spawn(async move { sub.run(stop).await }));
    }
    append_n(&ts.store, 60).await;
    let head = ts.store.head().await.unwrap();
    for _ in 0..2_000 {
        if ts.store.subscription("shared").await.unwrap().position == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    for r in runners {
        r.await.unwrap().unwrap();
    }
    let counts = seen_counts(&ts.store).await;
    assert_eq!(counts.len(), 60);
    assert!(
        counts.values().all(|&c| c == 1),
        "two runners applied one event twice"
    );
    other.close().await;
    ts.finish().await;
}

async fn snapshots_are_taken_and_loaded(kind: Kind) {
    let ts = open_with(kind, |c| c.snapshot_every = 3).await;
    let agg = batches(&ts.store);
    let id = BatchId::new();
    agg.execute(&id.to_string(), receive(id, 10_000), &meta())
        .await
        .unwrap();
    for _ in 0..7 {
        agg.execute(
            &id.to_string(),
            IC::ReserveStock {
                order_id: OrderId::new(),
                quantity: Quantity::grams(100).unwrap(),
            },
            &meta(),
        )
        .await
        .unwrap();
    }
    let sql_pg = "SELECT current_snapshot, last_sequence FROM snapshots WHERE aggregate_id = $1";
    let sql_lite = "SELECT current_snapshot, last_sequence FROM snapshots WHERE aggregate_id = ?";
    let (snap, last): (i64, i64) = match ts.store.backend() {
        crate::Backend::Postgres(p) => sqlx::query_as(sql_pg)
            .bind(id.to_string())
            .fetch_one(p)
            .await
            .unwrap(),
        crate::Backend::Sqlite(p) => sqlx::query_as(sql_lite)
            .bind(id.to_string())
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!((snap, last), (2, 6));
    let (batch, version) = agg.load(&id.to_string()).await.unwrap();
    assert_eq!(version, 8);
    assert_eq!(batch.reserved(), 700);
    ts.finish().await;
}

async fn old_event_versions_are_upcast_on_every_read(kind: Kind) {
    use domain::order::{Order, OrderServices, OrderStatus};
    let ts = open(kind).await;
    let v1 = include_str!("../../../event-schemas/fixtures/OrderPlaced.v1.0.json");
    let order_id = "0192f3a4-5b6c-7d8e-9f00-112233445566";
    let mut m = meta().to_map();
    m.insert("event_id".into(), uuid::Uuid::now_v7().to_string());
    let m = serde_json::to_string(&m).unwrap();
    match ts.store.backend() {
        crate::Backend::Postgres(p) => {
            sqlx::query("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('Order', $1, 1, 'OrderPlaced', '1.0', $2::json, $3::json)")
                .bind(order_id).bind(v1).bind(&m).execute(p).await.unwrap();
        }
        crate::Backend::Sqlite(p) => {
            let event_id = serde_json::from_str::<serde_json::Value>(&m).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string();
            sqlx::query("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, event_id) VALUES ('Order', ?, 1, 'OrderPlaced', '1.0', ?, ?, ?)")
                .bind(order_id).bind(v1).bind(&m).bind(event_id).execute(p).await.unwrap();
        }
    }
    // The global log hands out the current version...
    let events = ts.store.read_all(0, 10).await.unwrap();
    assert_eq!(events[0].event_version, "2.0");
    assert_eq!(events[0].payload["payment_method"], "card");
    assert_eq!(events[0].payload["lines"][0]["unit_price"]["per"], "per_kg");
    // ...and so does an aggregate load through cqrs-es.
    let orders = crate::Aggregates::<Order>::new(
        &ts.store,
        OrderServices {
            catalog: Arc::new(domain::InMemoryCatalog::default()),
            clock: Arc::new(domain::SystemClock),
            slot_horizon: chrono::Duration::days(14),
        },
    );
    let (order, version) = orders.load(order_id).await.unwrap();
    assert_eq!(version, 1);
    assert_eq!(order.status(), Some(OrderStatus::Created));
    assert_eq!(order.total().unwrap().amount_minor(), 449 + 698);
    ts.finish().await;
}

async fn live_subscriptions_are_woken_by_appends_from_another_process(kind: Kind) {
    // Polling is set to an hour, so only a wake-up can deliver in time.
    let ts = open_with(kind, |c| c.poll_interval = Duration::from_secs(3_600)).await;
    create_seen(&ts.store).await;
    let sub = Subscription::new("live", &ts.store, Recorder::new(0));
    let stop = CancellationToken::new();
    let runner = tokio::spawn({
        let stop = stop.clone();
        async move { sub.run(stop).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Local appends wake in-process; on Postgres, so do other processes'.
    let writers: Vec<Store> = match kind {
        Kind::Sqlite => vec![ts.store.clone()],
        Kind::Postgres => vec![ts.store.clone(), ts.another(|_| {}).await],
    };
    let mut expected = 0;
    for w in &writers {
        append_n(w, 1).await;
        expected += 1;
        let mut delivered = false;
        for _ in 0..300 {
            if seen_counts(&ts.store).await.len() == expected {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(delivered, "subscription was not woken");
    }
    stop.cancel();
    runner.await.unwrap().unwrap();
    ts.finish().await;
}

/// Remembers the positions it handled (in memory: a runner of its own
/// subscription only handles what its checkpoint's compare-and-set let it).
struct Tracker {
    /// Wants only positions divisible by this (1: everything).
    every: u64,
    got: std::sync::Mutex<Vec<u64>>,
}

#[async_trait]
impl Handler for Tracker {
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.global_position.is_multiple_of(self.every)
    }

    async fn handle(&self, _tx: &mut StoreTx, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.got.lock().unwrap().push(event.global_position);
        Ok(())
    }
}

/// Several live runners in one process share one window on the tail of the
/// log. Under concurrent appends (some held open or rolled back), each gets
/// every event after its checkpoint once, in order: one far behind the
/// window, ones with batch sizes from 1 to 500, one wanting only a third of
/// the events (its checkpoint still reaches the head), and one rewound
/// while running, which gets everything after the rewind point again.
async fn runners_sharing_the_tail_each_apply_every_event_once_in_order(kind: Kind) {
    let ts = Arc::new(open(kind).await);
    // More than the window holds, so a runner starting at 0 is behind it.
    let mut loaders = Vec::new();
    for _ in 0..8 {
        let store = ts.store.clone();
        loaders.push(tokio::spawn(async move { append_n(&store, 560).await }));
    }
    for l in loaders {
        l.await.unwrap();
    }
    let early = ts.store.read_all(0, 200).await.unwrap()[199].global_position;
    let tracker = |every| {
        Arc::new(Tracker {
            every,
            got: std::sync::Mutex::new(Vec::new()),
        })
    };
    let subs = [
        ("one", 1, tracker(1)),
        ("seven", 7, tracker(1)),
        ("many", 500, tracker(1)),
        ("third", 50, tracker(3)),
        ("rewound", 13, tracker(1)),
    ];
    let stop = CancellationToken::new();
    let mut runners = Vec::new();
    // "many" starts late and far behind; the others first catch up live.
    for (name, batch, t) in &subs {
        ts.store.ensure_subscription_exists(name).await.unwrap();
        let sub = Subscription::new(*name, &ts.store, t.clone()).with_batch_size(*batch);
        let stop = stop.clone();
        runners.push(tokio::spawn(async move { sub.run(stop).await }));
        if *name == "third" {
            append_n(&ts.store, 100).await;
        }
    }
    let mut writers = Vec::new();
    for w in 0..4 {
        let ts = ts.clone();
        writers.push(tokio::spawn(async move {
            let agg = batches(&ts.store);
            for i in 0..60 {
                if (w + i) % 3 == 0 {
                    let hold = Duration::from_millis(if ts.kind == Kind::Sqlite { 1 } else { 15 });
                    raw_append(&ts, hold, i % 5 != 0).await;
                } else {
                    let id = BatchId::new();
                    agg.execute(&id.to_string(), receive(id, 1_000), &meta())
                        .await
                        .unwrap();
                }
            }
        }));
    }
    // Rewind "rewound" once it has passed `early`, while appends go on.
    loop {
        if ts.store.subscription("rewound").await.unwrap().position > early {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ts.store.reset_subscription("rewound", early).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let head = ts.store.head().await.unwrap();
    for _ in 0..3_000 {
        let all = ts.store.subscriptions().await.unwrap();
        if all.iter().all(|s| s.position == head) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    for r in runners {
        r.await.unwrap().unwrap();
    }
    let mut log = Vec::new();
    loop {
        let batch = ts
            .store
            .read_all(log.last().copied().unwrap_or(0), 1_000)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        log.extend(batch.iter().map(|e| e.global_position));
    }
    assert!(log.len() > 4_480 + 100 + 200, "{} events", log.len());
    for (name, _, t) in &subs {
        let status = ts.store.subscription(name).await.unwrap();
        assert_eq!(status.position, head, "{name} did not reach the head");
        let got = t.got.lock().unwrap().clone();
        match *name {
            "third" => {
                let wanted: Vec<u64> = log
                    .iter()
                    .copied()
                    .filter(|p| p.is_multiple_of(3))
                    .collect();
                assert_eq!(got, wanted, "{name}: only the wanted events, each once");
            }
            "rewound" => {
                let drop = (1..got.len())
                    .find(|&i| got[i] <= got[i - 1])
                    .expect("the rewind re-delivered events");
                assert_eq!(&got[..drop], &log[..drop], "{name}: before the rewind");
                let after: Vec<u64> = log.iter().copied().filter(|&p| p > early).collect();
                assert_eq!(&got[drop..], &after[..], "{name}: after the rewind");
            }
            _ => assert_eq!(got, log, "{name}: every event once, in order"),
        }
    }
    Arc::try_unwrap(ts).ok().unwrap().finish().await;
}

/// Keys events by stream, except every twentieth position (unkeyed); notes
/// when each reaction starts and ends.
struct Keyed {
    log: std::sync::Mutex<Vec<(u64, bool)>>,
    running: AtomicU64,
    most_at_once: AtomicU64,
}

#[async_trait]
impl crate::Reactor for Keyed {
    fn key(&self, event: &RecordedEvent) -> Option<String> {
        (!event.global_position.is_multiple_of(20)).then(|| event.stream_id.clone())
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.log.lock().unwrap().push((event.global_position, true));
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.log
            .lock()
            .unwrap()
            .push((event.global_position, false));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// With concurrency, a reactor works on several keys at once, but each
/// key's events stay in log order and an unkeyed event runs alone: every
/// event before it has finished when it starts, and none after it has
/// started.
async fn a_concurrent_reactor_keeps_each_keys_order_and_runs_unkeyed_events_alone(kind: Kind) {
    let ts = open(kind).await;
    // Three streams, 16 events each, interleaved in the log.
    let agg = batches(&ts.store);
    let ids: Vec<BatchId> = (0..3).map(|_| BatchId::new()).collect();
    for id in &ids {
        agg.execute(&id.to_string(), receive(*id, 1_000), &meta())
            .await
            .unwrap();
    }
    for round in 0..15 {
        for id in &ids {
            let order = OrderId::new();
            agg.execute(
                &id.to_string(),
                IC::ReserveStock {
                    order_id: order,
                    quantity: Quantity::grams(1 + round).unwrap(),
                },
                &meta(),
            )
            .await
            .unwrap();
        }
    }
    let reactor = Arc::new(Keyed {
        log: std::sync::Mutex::new(Vec::new()),
        running: AtomicU64::new(0),
        most_at_once: AtomicU64::new(0),
    });
    let sub = Subscription::reactor("keyed", &ts.store, reactor.clone()).with_concurrency(4);
    sub.catch_up().await.unwrap();
    let log = reactor.log.lock().unwrap().clone();
    let all = ts.store.read_all(0, 1_000).await.unwrap();
    assert_eq!(log.len(), 2 * all.len(), "each event reacted to once");
    assert!(
        reactor.most_at_once.load(Ordering::SeqCst) > 1,
        "keys ran at once"
    );
    assert!(reactor.most_at_once.load(Ordering::SeqCst) <= 4);
    let at = |p: u64, start: bool| log.iter().position(|&e| e == (p, start)).unwrap();
    for (i, e) in all.iter().enumerate() {
        let p = e.global_position;
        // Each stream's events in log order, one after the other.
        if let Some(prev) = all[..i].iter().rev().find(|x| x.stream_id == e.stream_id) {
            assert!(
                at(prev.global_position, false) < at(p, true),
                "{p} began before its stream's {}",
                prev.global_position
            );
        }
        if p.is_multiple_of(20) {
            for other in &all {
                let q = other.global_position;
                if q < p {
                    assert!(
                        at(q, false) < at(p, true),
                        "{q} still ran when unkeyed {p} began"
                    );
                } else if q > p {
                    assert!(
                        at(p, false) < at(q, true),
                        "{q} began before unkeyed {p} ended"
                    );
                }
            }
        }
    }
    ts.finish().await;
}

/// Two processes, each with its own aggregate cache, act on one batch. Every
/// answer must be the one the current state gives, never the cached one.
async fn a_stale_aggregate_cache_never_changes_an_outcome(kind: Kind) {
    let ts = open(kind).await;
    let other = ts.another(|_| {}).await;
    let (a, b) = (batches(&ts.store), batches(&other));
    let id = BatchId::new();
    let sid = id.to_string();
    let reserve = |o: OrderId, g: u64| IC::ReserveStock {
        order_id: o,
        quantity: Quantity::grams(g).unwrap(),
    };
    a.execute(&sid, receive(id, 10_000), &meta()).await.unwrap();
    let x = OrderId::new();
    a.execute(&sid, reserve(x, 1_000), &meta()).await.unwrap();
    // B has never seen the batch: on its empty state the command would be
    // refused (not received), so it must look before answering.
    b.execute(&sid, reserve(OrderId::new(), 8_000), &meta())
        .await
        .unwrap();
    // A's cache says 9,000 are available; the truth is 1,000.
    let refused = a
        .execute(&sid, reserve(OrderId::new(), 2_000), &meta())
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(InventoryError::InsufficientStock {
                available: 1_000,
                ..
            }))
        ),
        "{refused:?}"
    );
    // B releases X; A's cache still shows X reserved, where re-reserving is
    // a no-op. A must check, and reserve again for real.
    b.execute(
        &sid,
        IC::ReleaseReservation {
            order_id: x,
            reason: event_schemas::inventory::ReleaseReason::OrderCancelled,
        },
        &meta(),
    )
    .await
    .unwrap();
    let again = a.execute(&sid, reserve(x, 1_000), &meta()).await.unwrap();
    assert_eq!(again.events, 1, "the reservation was made again");
    let (batch, version) = a.load(&sid).await.unwrap();
    assert_eq!(version, 5);
    assert_eq!(batch.reserved_for(&x), 1_000);
    assert_eq!(batch.reserved(), 9_000);
    other.close().await;
    ts.finish().await;
}

/// cqrs-es' replay streams (per stream and per aggregate type) read back
/// exactly what was appended, in order.
async fn cqrs_es_replay_streams_read_back_what_was_appended(kind: Kind) {
    use cqrs_es::persist::PersistedEventRepository;
    let ts = open(kind).await;
    let agg = batches(&ts.store);
    let (a, b) = (BatchId::new(), BatchId::new());
    agg.execute(&a.to_string(), receive(a, 1_000), &meta())
        .await
        .unwrap();
    agg.execute(&b.to_string(), receive(b, 2_000), &meta())
        .await
        .unwrap();
    agg.execute(
        &a.to_string(),
        IC::ReserveStock {
            order_id: OrderId::new(),
            quantity: Quantity::grams(10).unwrap(),
        },
        &meta(),
    )
    .await
    .unwrap();
    let repo = ts.store.repo();
    let mut all = repo.stream_all_events::<InventoryBatch>().await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = all.next::<InventoryBatch>(&[]).await {
        let e = e.unwrap();
        seen.push((e.aggregate_id.clone(), e.sequence));
    }
    assert_eq!(
        seen,
        vec![(a.to_string(), 1), (b.to_string(), 1), (a.to_string(), 2)]
    );
    let mut one = repo
        .stream_events::<InventoryBatch>(&a.to_string())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(e) = one.next::<InventoryBatch>(&[]).await {
        assert_eq!(e.unwrap().aggregate_id, a.to_string());
        n += 1;
    }
    assert_eq!(n, 2);
    ts.finish().await;
}
