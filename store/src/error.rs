use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt event at position {position}: {reason}")]
    Corrupt { position: i64, reason: String },
    #[error("corrupt row {key:?} in {table}: {reason}")]
    CorruptRow {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("persistence: {0}")]
    Persistence(String),
    /// The session holding the lease ended: another process may hold it.
    #[error("lost the lease {0:?}")]
    LeaseLost(String),
}

impl StoreError {
    /// Whether the database could not be reached or gave no connection in
    /// time (an outage: retry later), rather than refusing or failing the
    /// work itself.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
        )
    }
}

impl From<cqrs_es::persist::PersistenceError> for StoreError {
    fn from(e: cqrs_es::persist::PersistenceError) -> Self {
        StoreError::Persistence(e.to_string())
    }
}
