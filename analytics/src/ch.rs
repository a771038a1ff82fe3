//! The ClickHouse connection: DDL, block inserts, queries, and errors told
//! in words an operator can act on.
//!
//! RowBinary without the client's schema validation: ClickHouse 18.16 lacks
//! `RowBinaryWithNamesAndTypes`, and the row types are checked against
//! `sql/tables.sql` by the tests instead.

use clickhouse::{Client, RowOwned, RowWrite};

use crate::tables::{self, valid_identifier, Table};
use crate::AnalyticsConfig;

/// What went wrong talking to ClickHouse, in an operator's words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ClickHouse at {url}: {message}")]
pub struct ChError {
    pub url: String,
    pub message: String,
    /// The server could not be reached (as opposed to refusing something).
    pub unreachable: bool,
}

/// One ClickHouse database of analytics tables.
#[derive(Clone)]
pub struct Ch {
    client: Client,
    url: String,
    db: String,
}

impl Ch {
    pub fn new(config: &AnalyticsConfig) -> Ch {
        let mut client = Client::default()
            .with_url(config.url.clone())
            .with_validation(false);
        if let Some(user) = &config.user {
            client = client.with_user(user.clone());
        }
        if let Some(password) = &config.password {
            client = client.with_password(password.clone());
        }
        Ch {
            client,
            url: config.url.clone(),
            db: config.database.clone(),
        }
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> Ch {
        Ch {
            client: self.client.clone(),
            url: self.url.clone(),
            db: db.to_string(),
        }
    }

    /// `db.table` with `suffix`.
    pub fn table(&self, table: &str, suffix: &str) -> String {
        format!("{}.{table}{suffix}", self.db)
    }

    /// Checks the server answers and accepts our credentials, creates the
    /// database, the live tables and the views that are missing; with
    /// `replace_views`, the views anew (the projector's start).
    pub async fn prepare(&self, replace_views: bool) -> Result<(), ChError> {
        assert!(
            valid_identifier(&self.db),
            "database names are checked at configuration"
        );
        self.exec("SELECT 1").await?;
        self.exec(&format!("CREATE DATABASE IF NOT EXISTS {}", self.db))
            .await?;
        self.create_tables("").await?;
        crate::reports::create_views(self, replace_views).await
    }

    /// Creates every table with `suffix` that is missing.
    pub async fn create_tables(&self, suffix: &str) -> Result<(), ChError> {
        for statement in tables::statements(&self.db, suffix) {
            self.exec(&statement).await?;
        }
        Ok(())
    }

    /// Runs a statement that returns nothing.
    pub async fn exec(&self, sql: &str) -> Result<(), ChError> {
        self.client
            .query(sql)
            .execute()
            .await
            .map_err(|e| self.error(e))
    }

    /// Inserts `rows` into `table` as one block (one `INSERT`); returns
    /// once ClickHouse acknowledged it.
    pub async fn insert<R: RowOwned + RowWrite>(
        &self,
        table: &str,
        rows: &[R],
    ) -> Result<(), ChError> {
        if rows.is_empty() {
            return Ok(());
        }
        let run = async {
            // Our names are checked identifiers: no quoting needed.
            let mut insert = self.client.insert_unescaped::<R>(table).await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        };
        run.await.map_err(|e| self.error(e))
    }

    /// The rows of a query as raw bytes in ClickHouse `format`.
    pub async fn fetch_bytes(&self, sql: &str, format: &str) -> Result<Vec<u8>, ChError> {
        let mut cursor = self
            .client
            .query(sql)
            .with_setting("output_format_json_quote_64bit_integers", "0")
            .fetch_bytes(format)
            .map_err(|e| self.error(e))?;
        let bytes = cursor.collect().await.map_err(|e| self.error(e))?;
        Ok(bytes.to_vec())
    }

    /// One row of unsigned integers (counts, sums, hashes).
    pub async fn numbers(&self, sql: &str) -> Result<Vec<u64>, ChError> {
        let bytes = self.fetch_bytes(sql, "TabSeparated").await?;
        let text = String::from_utf8_lossy(&bytes);
        text.split_whitespace()
            .map(|v| {
                v.parse::<u64>().map_err(|_| ChError {
                    url: self.url.clone(),
                    message: format!("expected numbers from {sql:?}, got {text:?}"),
                    unreachable: false,
                })
            })
            .collect()
    }

    /// Whether `table` (with `suffix`) exists.
    pub async fn exists(&self, table: &str, suffix: &str) -> Result<bool, ChError> {
        let n = self
            .numbers(&format!(
                "SELECT count() FROM system.tables WHERE database = '{}' AND name = '{table}{suffix}'",
                self.db
            ))
            .await?;
        Ok(n.first().copied().unwrap_or(0) > 0)
    }

    /// Rows and an order-independent checksum of `table`'s distinct rows
    /// (duplicates from a resent batch count once).
    pub async fn checksum(&self, table: Table, suffix: &str) -> Result<(u64, u64), ChError> {
        let n = self
            .numbers(&format!(
                "SELECT count(), groupBitXor(cityHash64({cols})) FROM {t} FINAL",
                cols = table.hashable_columns(),
                t = self.table(table.name(), suffix)
            ))
            .await?;
        Ok((
            n.first().copied().unwrap_or(0),
            n.get(1).copied().unwrap_or(0),
        ))
    }

    fn error(&self, e: clickhouse::error::Error) -> ChError {
        describe(&self.url, &self.db, e)
    }
}

/// An error of the client, in words: unreachable, refused credentials,
/// missing database, or the server's own message.
fn describe(url: &str, db: &str, e: clickhouse::error::Error) -> ChError {
    use clickhouse::error::Error as E;
    let (message, unreachable) = match &e {
        E::Network(inner) => (
            format!("cannot be reached ({inner}); check --clickhouse-url and that the server runs"),
            true,
        ),
        E::TimedOut => ("did not answer in time".to_string(), true),
        E::BadResponse(text) => {
            let code = text
                .split("Code: ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|c| c.parse::<u32>().ok());
            let first_line = text.lines().next().unwrap_or_default().trim().to_string();
            match code {
                Some(192 | 193 | 516) => (
                    format!("refused the user or password ({first_line}); check --clickhouse-user and FRESHLEDGER_CLICKHOUSE_PASSWORD"),
                    false,
                ),
                Some(81) => (
                    format!("database {db:?} does not exist and could not be created ({first_line})"),
                    false,
                ),
                Some(497) => (
                    format!("the user may not do this ({first_line}); it needs CREATE, INSERT and SELECT on database {db:?}"),
                    false,
                ),
                _ => (first_line, false),
            }
        }
        other => (other.to_string(), false),
    };
    ChError {
        url: url.to_string(),
        message,
        unreachable,
    }
}
