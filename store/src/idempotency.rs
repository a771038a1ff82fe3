//! Idempotency records (`idempotency_keys`): which request holds a key,
//! and the answer it gave.
//!
//! A key is claimed before its command runs, so two requests with one key
//! never both run. The claim names the process that holds it; the command
//! writes the key into its events' metadata, in the same commit as the
//! events. So after any crash the truth can be recovered: a claim whose
//! process is gone may be taken over, and the log says whether the dead
//! request's command committed (its events carry the key) or not.
//!
//! Liveness of a claim's process: on Postgres, a process is alive while any
//! session with its `application_name` (`freshledger/<instance>`) exists;
//! that includes a session still finishing a statement the process sent
//! before it died, which could yet commit. On SQLite one server process
//! owns the file, so a claim by another process is a dead one.

use event_schemas::envelope::keys;
use event_schemas::RecordedEvent;

use crate::raw::StoredEvent;
use crate::sql::{self, JsonRow};
use crate::{pg, sqlite, Backend, Store, StoreError};

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// New: this request holds the key; run the command.
    Mine,
    /// A request that died (its process is gone) held the key without
    /// answering; this request holds it now. Its command may have
    /// committed: look for the key in the log before running it again.
    TakenOver,
    /// Answered before.
    Done {
        request_hash: String,
        status: u16,
        body: String,
    },
    /// Another request still running holds it.
    Busy { request_hash: String },
}

fn text(r: &JsonRow, k: &str) -> Option<String> {
    r.get(k).and_then(|v| v.as_str()).map(str::to_string)
}

impl Store {
    /// This process's name in the database (`application_name` of its
    /// Postgres sessions), and the owner of the claims it makes.
    pub fn instance(&self) -> String {
        format!("freshledger/{}", self.inner.instance)
    }

    /// Claims `key` for a request whose fingerprint is `request_hash`.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        request_hash: &str,
    ) -> Result<Claim, StoreError> {
        let me = self.instance();
        // A claim released between our insert and our read: try again.
        for _ in 0..3 {
            let inserted = sql::exec_pool(
                self,
                "INSERT INTO idempotency_keys (key, request_hash, owner) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
                &[key.into(), request_hash.into(), me.as_str().into()],
            )
            .await?;
            if inserted == 1 {
                return Ok(Claim::Mine);
            }
            let Some(row) = sql::fetch(
                self,
                "SELECT request_hash, status, response_body, owner FROM idempotency_keys WHERE key = ?",
                &[key.into()],
            )
            .await?
            .pop() else {
                continue;
            };
            let stored = text(&row, "request_hash").unwrap_or_default();
            if let (Some(status), Some(body)) =
                (row["status"].as_u64(), text(&row, "response_body"))
            {
                return Ok(Claim::Done {
                    request_hash: stored,
                    status: status as u16,
                    body,
                });
            }
            let owner = text(&row, "owner").unwrap_or_default();
            if stored != request_hash || owner == me || self.process_alive(&owner).await? {
                return Ok(Claim::Busy {
                    request_hash: stored,
                });
            }
            // Its process is gone: take it over, unless someone else just did.
            let moved = sql::exec_pool(
                self,
                "UPDATE idempotency_keys SET owner = ? \
                 WHERE key = ? AND status IS NULL AND COALESCE(owner, '') = ?",
                &[me.as_str().into(), key.into(), owner.as_str().into()],
            )
            .await?;
            if moved == 1 {
                tracing::info!(key, dead = %owner, "took over an idempotency key its process left unanswered");
                return Ok(Claim::TakenOver);
            }
        }
        Ok(Claim::Busy {
            request_hash: request_hash.to_string(),
        })
    }

    /// Whether the process named `owner` (an [`Store::instance`]) is alive.
    async fn process_alive(&self, owner: &str) -> Result<bool, StoreError> {
        if owner.is_empty() {
            // Claimed before claims named their process.
            return Ok(false);
        }
        match self.backend() {
            Backend::Postgres(_) => Ok(!sql::fetch(
                self,
                "SELECT 1 AS one FROM pg_stat_activity WHERE application_name = ? LIMIT 1",
                &[owner.into()],
            )
            .await?
            .is_empty()),
            Backend::Sqlite(_) => Ok(false),
        }
    }

    /// Records the answer the request holding `key` gave.
    pub async fn complete_idempotency_key(
        &self,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sql::exec_pool(
            self,
            "UPDATE idempotency_keys SET status = ?, response_body = ? WHERE key = ?",
            &[i64::from(status).into(), body.into(), key.into()],
        )
        .await?;
        Ok(())
    }

    /// Drops the claim on `key` (the request failed in a way worth
    /// retrying), so the key can be used again.
    pub async fn release_idempotency_key(&self, key: &str) -> Result<(), StoreError> {
        sql::exec_pool(
            self,
            "DELETE FROM idempotency_keys WHERE key = ?",
            &[key.into()],
        )
        .await?;
        Ok(())
    }

    /// The events a request with `key` appended, in log order (committed
    /// ones only; a command's events commit together or not at all).
    pub async fn events_of_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        debug_assert_eq!(keys::IDEMPOTENCY_KEY, "idempotency_key");
        let raw: Vec<StoredEvent> = match self.backend() {
            Backend::Postgres(pool) => pg::read_idempotency_key(pool, key).await?,
            Backend::Sqlite(pool) => sqlite::read_idempotency_key(pool, key).await?,
        };
        raw.into_iter().map(StoredEvent::into_recorded).collect()
    }
}
