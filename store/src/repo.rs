//! The cqrs-es repository over either backend.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use event_schemas::envelope::keys;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use uuid::Uuid;

use std::cell::RefCell;

use sqlx::{PgPool, SqlitePool};

use crate::{pg, sqlite, Backend, Store};

tokio::task_local! {
    /// Positions of the events the current task's commit appended, so the
    /// command layer can report them without another query.
    pub(crate) static COMMITTED: RefCell<Vec<i64>>;
}

/// What cqrs-es persists through: postgres-es on Postgres, ours on SQLite.
/// Both stamp every event with its own UUID v7 `event_id` in the metadata
/// and wake this process's subscribers after a commit.
pub struct Repo {
    store: Store,
    db: Db,
}

/// The backend, with what each needs to persist.
enum Db {
    Postgres(PgPool, PostgresEventRepository),
    Sqlite(SqlitePool),
}

impl Repo {
    pub(crate) fn new(store: Store) -> Self {
        let db = match store.backend() {
            Backend::Postgres(pool) => {
                Db::Postgres(pool.clone(), PostgresEventRepository::new(pool.clone()))
            }
            Backend::Sqlite(pool) => Db::Sqlite(pool.clone()),
        };
        Repo { store, db }
    }
}

fn with_event_ids(events: &[SerializedEvent]) -> Vec<SerializedEvent> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Value::Object(m) = &mut e.metadata {
                m.entry(keys::EVENT_ID)
                    .or_insert_with(|| Value::String(Uuid::now_v7().to_string()));
            }
            e
        })
        .collect()
}

impl PersistedEventRepository for Repo {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.db {
            Db::Postgres(_, es) => es.get_events::<A>(aggregate_id).await,
            Db::Sqlite(pool) => sqlite::get_events(pool, A::TYPE, aggregate_id, 0).await,
        }
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.db {
            Db::Postgres(pool, _) => {
                pg::get_events_after(pool, A::TYPE, aggregate_id, last_sequence).await
            }
            Db::Sqlite(pool) => {
                sqlite::get_events(pool, A::TYPE, aggregate_id, last_sequence).await
            }
        }
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        match &self.db {
            Db::Postgres(_, es) => es.get_snapshot::<A>(aggregate_id).await,
            Db::Sqlite(pool) => sqlite::get_snapshot(pool, A::TYPE, aggregate_id).await,
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = with_event_ids(events);
        let positions = match &self.db {
            Db::Postgres(pool, _) if snapshot_update.is_none() => pg::append(pool, &events).await?,
            Db::Postgres(pool, es) => {
                // A snapshot is due: postgres-es writes events and snapshot in
                // one transaction.
                es.persist::<A>(&events, snapshot_update).await?;
                let (first, last) = (events[0].sequence, events[events.len() - 1].sequence);
                pg::positions_of(pool, A::TYPE, &events[0].aggregate_id, first, last).await?
            }
            Db::Sqlite(pool) => {
                let _turn = self.store.write_turn(crate::turns::Class::Command).await;
                sqlite::persist(pool, A::TYPE, &events, snapshot_update).await?
            }
        };
        self.store.appended();
        let _ = COMMITTED.try_with(|c| c.borrow_mut().extend(positions));
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        Ok(replay(events))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        // postgres-es' own version binds two parameters to a one-parameter
        // query; read per type here for both backends.
        let events = match &self.db {
            Db::Sqlite(pool) => sqlite::get_all_of_type(pool, A::TYPE).await?,
            Db::Postgres(pool, _) => sqlx::query(
                "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
                 FROM events WHERE aggregate_type = $1 ORDER BY position",
            )
            .bind(A::TYPE)
            .fetch_all(pool)
            .await
            .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?
            .into_iter()
            .map(pg::serialized)
            .collect::<Result<Vec<_>, PersistenceError>>()?,
        };
        Ok(replay(events))
    }
}

fn replay(events: Vec<SerializedEvent>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    tokio::spawn(async move {
        for e in events {
            if feed.push(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    stream
}
