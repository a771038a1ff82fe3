//! Where each ClickHouse table stands in the log (`analytics_positions`, in
//! the store's database: it has the compare-and-set ClickHouse lacks).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use store::sql::{self, Arg};
use store::{Store, StoreError};

use crate::tables::Table;

const TABLES: &str = include_str!("positions.sql");
const NAME: &str = "analytics_positions";

/// One table's row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TablePosition {
    /// Every event up to here is in the table.
    pub position: u64,
    /// A replay is swapping the table: the live projector leaves it alone.
    #[serde(deserialize_with = "flag")]
    pub swapping: bool,
    /// The position the last replay built the table to, and when.
    pub replayed_to: Option<u64>,
    pub replayed_at: Option<DateTime<Utc>>,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

#[derive(Deserialize)]
struct Row {
    name: String,
    #[serde(flatten)]
    position: TablePosition,
}

fn key(db: &str, table: Table) -> String {
    format!("{db}.{table}")
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Creates the table, and a row at 0 for each of `db`'s tables missing one.
pub async fn ensure(store: &Store, db: &str) -> Result<(), StoreError> {
    sql::exec_script(store, TABLES).await?;
    for table in Table::ALL {
        sql::exec_pool(
            store,
            "INSERT INTO analytics_positions (name, position, swapping, updated_at) \
             VALUES (?, 0, 0, ?) ON CONFLICT DO NOTHING",
            &[key(db, table).into(), now().into()],
        )
        .await?;
    }
    Ok(())
}

/// Every table of `db`.
pub async fn read(store: &Store, db: &str) -> Result<BTreeMap<Table, TablePosition>, StoreError> {
    let rows = sql::fetch(
        store,
        "SELECT name, position, swapping, replayed_to, replayed_at FROM analytics_positions \
         WHERE name LIKE ?",
        &[format!("{db}.%").into()],
    )
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let row: Row = sql::typed(NAME, row)?;
        if let Some(table) = row
            .name
            .strip_prefix(&format!("{db}."))
            .and_then(|t| t.parse::<Table>().ok())
        {
            out.insert(table, row.position);
        }
    }
    Ok(out)
}

/// Moves each `(table, from, to)` in one transaction, each only if it is
/// still at `from` and not being swapped. `false`: nothing moved (a replay
/// or another projector got there first; read again).
pub async fn advance(
    store: &Store,
    db: &str,
    moves: &[(Table, u64, u64)],
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let at = now();
    for (table, from, to) in moves {
        let done = sql::exec(
            &mut tx,
            "UPDATE analytics_positions SET position = ?, updated_at = ? \
             WHERE name = ? AND position = ? AND swapping = 0",
            &[
                (*to).into(),
                at.clone().into(),
                key(db, *table).into(),
                (*from).into(),
            ],
        )
        .await?;
        if done != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Marks `tables` as being swapped (the live projector stops moving them).
pub async fn begin_swap(store: &Store, db: &str, tables: &[Table]) -> Result<(), StoreError> {
    set_swapping(store, db, tables, 1, None).await
}

/// Sets `tables` at `position` (what the replay built them to) and clears
/// the mark: the live projector continues from there.
pub async fn finish_swap(
    store: &Store,
    db: &str,
    tables: &[Table],
    position: u64,
) -> Result<(), StoreError> {
    set_swapping(store, db, tables, 0, Some(position)).await
}

async fn set_swapping(
    store: &Store,
    db: &str,
    tables: &[Table],
    swapping: i64,
    position: Option<u64>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let at = now();
    for table in tables {
        let name = Arg::from(key(db, *table));
        let (sql, args): (&str, Vec<Arg>) = match position {
            None => (
                "UPDATE analytics_positions SET swapping = ?, updated_at = ? WHERE name = ?",
                vec![swapping.into(), at.as_str().into(), name],
            ),
            Some(p) => (
                "UPDATE analytics_positions SET swapping = ?, position = ?, replayed_to = ?, \
                 replayed_at = ?, updated_at = ? WHERE name = ?",
                vec![
                    swapping.into(),
                    p.into(),
                    p.into(),
                    at.as_str().into(),
                    at.as_str().into(),
                    name,
                ],
            ),
        };
        sql::exec(&mut tx, sql, &args).await?;
    }
    tx.commit().await
}
