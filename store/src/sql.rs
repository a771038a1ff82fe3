//! Portable SQL: one statement text for both backends.
//! Statements use `?` placeholders (rewritten to `$1…` for Postgres) and
//! only types both share: BIGINT integers, TEXT (JSON and RFC 3339 UTC
//! timestamps, which sort as text), NULL.

use crate::subscription::Tx;
use crate::turns::Class;
use crate::{Backend, Store, StoreError, StoreTx};
use serde_json::Value;
use sqlx::{Column, Row, TypeInfo};

/// A bound argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    Text(String),
    Null,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::Int(v as i64)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// `?` → `$n` (placeholders never appear inside our string literals).
pub fn postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Null => q.bind(None::<String>),
            };
        }
        q
    }};
}

/// Runs a statement inside a subscription's transaction.
pub async fn exec(tx: &mut StoreTx, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
    Ok(match &mut tx.0 {
        Tx::Postgres(t) => {
            let sql = postgres(sql);
            bind_all!(sqlx::query(&sql), args)
                .execute(&mut **t)
                .await?
                .rows_affected()
        }
        Tx::Sqlite(t, _) => bind_all!(sqlx::query(sql), args)
            .execute(&mut **t)
            .await?
            .rows_affected(),
    })
}

/// Runs a statement outside any subscription (DDL, maintenance, a
/// request's own writes), as a command's write (see [`crate::turns`]).
pub async fn exec_pool(store: &Store, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
    exec_pool_as(store, Class::Command, sql, args).await
}

/// Runs a script of portable statements separated by `;` (a crate's
/// `CREATE TABLE IF NOT EXISTS ...` file): `--` comment lines are dropped
/// first, since they may hold a `;` of their own.
pub async fn exec_script(store: &Store, script: &str) -> Result<(), StoreError> {
    let sql: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        exec_pool(store, statement, &[]).await?;
    }
    Ok(())
}

/// [`exec_pool`] for a writer of the given class.
pub(crate) async fn exec_pool_as(
    store: &Store,
    class: Class,
    sql: &str,
    args: &[Arg],
) -> Result<u64, StoreError> {
    Ok(match store.backend() {
        Backend::Postgres(p) => {
            let sql = postgres(sql);
            bind_all!(sqlx::query(&sql), args)
                .execute(p)
                .await?
                .rows_affected()
        }
        Backend::Sqlite(p) => {
            let _turn = store.write_turn(class).await;
            bind_all!(sqlx::query(sql), args)
                .execute(p)
                .await?
                .rows_affected()
        }
    })
}

/// A row as JSON values, by column name.
pub type JsonRow = serde_json::Map<String, Value>;

fn pg_row(row: &sqlx::postgres::PgRow) -> JsonRow {
    let mut m = JsonRow::new();
    for (i, c) in row.columns().iter().enumerate() {
        let v = match c.type_info().name() {
            // sqlx decodes each integer width only into its own Rust type.
            "INT8" => row
                .try_get::<Option<i64>, _>(i)
                .ok()
                .flatten()
                .map_or(Value::Null, Value::from),
            "INT4" => row
                .try_get::<Option<i32>, _>(i)
                .ok()
                .flatten()
                .map_or(Value::Null, Value::from),
            "INT2" => row
                .try_get::<Option<i16>, _>(i)
                .ok()
                .flatten()
                .map_or(Value::Null, Value::from),
            _ => row
                .try_get::<Option<String>, _>(i)
                .ok()
                .flatten()
                .map_or(Value::Null, Value::from),
        };
        m.insert(c.name().to_string(), v);
    }
    m
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> JsonRow {
    let mut m = JsonRow::new();
    for (i, c) in row.columns().iter().enumerate() {
        let v = if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
            Value::from(n)
        } else if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
            Value::from(s)
        } else {
            Value::Null
        };
        m.insert(c.name().to_string(), v);
    }
    m
}

/// A row read back into its typed form; a row that does not fit is an
/// error naming the table (and the row's first column), never a silent
/// default.
pub fn typed<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: JsonRow,
) -> Result<T, StoreError> {
    let key = row
        .values()
        .next()
        .map(|v| v.to_string())
        .unwrap_or_default();
    serde_json::from_value(Value::Object(row)).map_err(|e| StoreError::CorruptRow {
        table,
        key,
        reason: e.to_string(),
    })
}

/// Reads rows (read models are read outside subscriptions).
pub async fn fetch(store: &Store, sql: &str, args: &[Arg]) -> Result<Vec<JsonRow>, StoreError> {
    Ok(match store.backend() {
        Backend::Postgres(p) => {
            let sql = postgres(sql);
            bind_all!(sqlx::query(&sql), args)
                .fetch_all(p)
                .await?
                .iter()
                .map(pg_row)
                .collect()
        }
        Backend::Sqlite(p) => bind_all!(sqlx::query(sql), args)
            .fetch_all(p)
            .await?
            .iter()
            .map(sqlite_row)
            .collect(),
    })
}

/// Reads rows inside a subscription's transaction.
pub async fn fetch_tx(
    tx: &mut StoreTx,
    sql: &str,
    args: &[Arg],
) -> Result<Vec<JsonRow>, StoreError> {
    Ok(match &mut tx.0 {
        Tx::Postgres(t) => {
            let sql = postgres(sql);
            bind_all!(sqlx::query(&sql), args)
                .fetch_all(&mut **t)
                .await?
                .iter()
                .map(pg_row)
                .collect()
        }
        Tx::Sqlite(t, _) => bind_all!(sqlx::query(sql), args)
            .fetch_all(&mut **t)
            .await?
            .iter()
            .map(sqlite_row)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn postgres_integers_of_every_width_read_back() {
        let url = std::env::var("FRESHLEDGER_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let store = crate::Store::connect(crate::StoreConfig::new(url))
            .await
            .unwrap();
        let rows = super::fetch(
            &store,
            "SELECT CAST(2 AS SMALLINT) AS a, CAST(4 AS INTEGER) AS b, CAST(8 AS BIGINT) AS c, CAST(NULL AS INTEGER) AS d",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(rows[0]["a"], 2);
        assert_eq!(rows[0]["b"], 4);
        assert_eq!(rows[0]["c"], 8);
        assert!(rows[0]["d"].is_null());
        store.close().await;
    }

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(
            super::postgres("UPDATE t SET a = ?, b = ? WHERE c = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
    }
}
