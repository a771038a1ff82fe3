use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt event at position {position}: {reason}")]
    Corrupt { position: i64, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("persistence: {0}")]
    Persistence(String),
}

impl From<cqrs_es::persist::PersistenceError> for StoreError {
    fn from(e: cqrs_es::persist::PersistenceError) -> Self {
        StoreError::Persistence(e.to_string())
    }
}
