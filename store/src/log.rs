//! Reading the log: globally, per stream, per correlation.

use std::time::Duration;

use chrono::{DateTime, Utc};

use event_schemas::RecordedEvent;
use uuid::Uuid;

use crate::raw::StoredEvent;
use crate::{pg, sqlite, Backend, Store, StoreError};

impl Store {
    /// Up to `limit` events after `after`, in global position order. Never
    /// returns an event while one with a lower position can still commit.
    pub async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let raw = match self.backend() {
            Backend::Postgres(pool) => {
                pg::read_all(pool, after as i64, limit as i64, &self.inner.horizon).await?
            }
            Backend::Sqlite(pool) => sqlite::read_all(pool, after as i64, limit as i64).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }

    /// Every event in `(after, up_to]`, in position order, for bulk readers
    /// that split a part of the log already known to be final (`up_to` at
    /// or below a head this store returned) into ranges read at once.
    pub async fn read_range(
        &self,
        after: u64,
        up_to: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let raw = match self.backend() {
            Backend::Postgres(pool) => {
                let span = up_to.saturating_sub(after) as i64;
                pg::read_range(pool, after as i64, up_to as i64, span).await?
            }
            Backend::Sqlite(pool) => sqlite::read_range(pool, after as i64, up_to as i64).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }

    /// Every event in `(after, up_to]` as stored (not upcast), in position
    /// order: what the audit chain hashes. `up_to` at or below a head this
    /// store returned.
    pub async fn read_stored(
        &self,
        after: u64,
        up_to: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let span = up_to.saturating_sub(after) as i64;
                pg::read_range(pool, after as i64, up_to as i64, span).await
            }
            Backend::Sqlite(pool) => sqlite::read_range(pool, after as i64, up_to as i64).await,
        }
    }

    /// The events at `positions` that exist, as stored, in position order.
    pub async fn read_stored_at(&self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let positions: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
        match self.backend() {
            Backend::Postgres(pool) => pg::read_positions(pool, &positions).await,
            Backend::Sqlite(pool) => sqlite::read_positions(pool, &positions).await,
        }
    }

    /// Every event of the streams `ids` of one type, in position order (one
    /// query where a loop over [`Store::read_stream`] would make thousands).
    pub async fn read_streams(
        &self,
        stream_type: &str,
        ids: &[String],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw = match self.backend() {
            Backend::Postgres(pool) => pg::read_streams(pool, stream_type, ids).await?,
            Backend::Sqlite(pool) => sqlite::read_streams(pool, stream_type, ids).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }

    /// Every event of one stream, in stream order.
    pub async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let raw = match self.backend() {
            Backend::Postgres(pool) => pg::read_stream(pool, stream_type, stream_id).await?,
            Backend::Sqlite(pool) => sqlite::read_stream(pool, stream_type, stream_id).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }

    /// Every event of one business flow, in global order.
    pub async fn read_correlation(
        &self,
        correlation_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let raw = match self.backend() {
            Backend::Postgres(pool) => pg::read_correlation(pool, correlation_id).await?,
            Backend::Sqlite(pool) => sqlite::read_correlation(pool, correlation_id).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }

    /// The highest position any reader may safely read up to now.
    pub async fn head(&self) -> Result<u64, StoreError> {
        Ok(match self.backend() {
            Backend::Postgres(pool) => pg::safe_head(pool, &self.inner.horizon).await?,
            Backend::Sqlite(pool) => sqlite::head(pool).await?,
        } as u64)
    }

    /// The safe head, waiting at most `bound` for appends still in flight;
    /// past that, the last head proven safe (see [`Store::stall`]). Never
    /// hangs: for operators' and clients' reads, not for subscribers (which
    /// must wait).
    pub async fn head_within(&self, bound: Duration) -> Result<u64, StoreError> {
        match tokio::time::timeout(bound, self.head()).await {
            Ok(head) => head,
            Err(_) => Ok(self.inner.horizon.safe_head()),
        }
    }

    /// [`Store::read_all`], waiting at most `bound` for appends still in
    /// flight; past that, what lies below the last head proven safe.
    pub async fn read_visible(
        &self,
        after: u64,
        limit: usize,
        bound: Duration,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match tokio::time::timeout(bound, self.read_all(after, limit)).await {
            Ok(events) => events,
            Err(_) => match self.backend() {
                Backend::Postgres(pool) => {
                    let head = self.inner.horizon.safe_head() as i64;
                    pg::read_range(pool, after as i64, head, limit as i64)
                        .await?
                        .into_iter()
                        .map(StoredEvent::into_recorded)
                        .collect()
                }
                Backend::Sqlite(_) => self.read_all(after, limit).await,
            },
        }
    }

    /// The last position of the log as it stood at `at`: the longest
    /// prefix of the log whose events were all recorded by then (a
    /// replay "as of" a moment). Never beyond the safe head.
    pub async fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let head = self.head().await?;
        let first_after: Option<i64> = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT MIN(position) FROM events WHERE recorded_at > $1")
                    .bind(at)
                    .fetch_one(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                // Stored as text that sorts as time (millisecond precision).
                let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                sqlx::query_scalar("SELECT MIN(position) FROM events WHERE recorded_at > ?")
                    .bind(at)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(match first_after {
            Some(p) => (p as u64).saturating_sub(1).min(head),
            None => head,
        })
    }

    /// How many events the log holds.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let rows = crate::sql::fetch(self, "SELECT count(*) AS n FROM events", &[]).await?;
        Ok(rows[0]["n"].as_i64().unwrap_or_default() as u64)
    }
}
