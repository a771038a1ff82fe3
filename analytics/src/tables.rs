//! The ClickHouse tables fed from the log, and their DDL
//! (`sql/tables.sql`, rendered per database and suffix).

use std::fmt;
use std::str::FromStr;

/// The DDL of every table, ClickHouse 18.16 and current alike.
pub const DDL: &str = include_str!("../sql/tables.sql");

/// A table fed from the log (the `products` dimension is refreshed from
/// the catalogue instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Events,
    OrderLines,
    StockMovements,
    Payments,
    Deliveries,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Events,
        Table::OrderLines,
        Table::StockMovements,
        Table::Payments,
        Table::Deliveries,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::OrderLines => "order_lines",
            Table::StockMovements => "stock_movements",
            Table::Payments => "payments",
            Table::Deliveries => "deliveries",
        }
    }

    /// The columns that make a row (for checksums), in table order.
    pub fn columns(self) -> &'static str {
        match self {
            Table::Events => "position, event_id, stream_type, stream_id, stream_version, event_type, event_version, occurred_at, recorded_at, correlation_id, causation_id, actor, actor_role, payload",
            Table::OrderLines => "position, line, kind, order_id, customer_id, warehouse_id, sku, unit, quantity, amount_minor, currency, payment_method, reason, placed_at, occurred_at",
            Table::StockMovements => "position, kind, batch_id, sku, warehouse_id, supplier_id, cold_chain, unit, received_at, expires_at, batch_quantity, batch_cost_minor, quantity, on_hand_delta, reserved_delta, order_id, reason, cost_minor, currency, occurred_at",
            Table::Payments => "position, kind, payment_id, order_id, method, gateway, amount_minor, currency, reference, rider_id, failure_code, occurred_at",
            Table::Deliveries => "position, kind, delivery_id, order_id, slot_start, slot_end, cold_chain, rider_id, proof, reason, lat_micro, lon_micro, occurred_at",
        }
    }
}

impl Table {
    /// The row's columns as `cityHash64` takes them on every ClickHouse
    /// (18.16 cannot hash a UUID: its text is hashed instead).
    pub fn hashable_columns(self) -> String {
        const UUIDS: [&str; 7] = [
            "event_id",
            "correlation_id",
            "order_id",
            "customer_id",
            "batch_id",
            "payment_id",
            "delivery_id",
        ];
        self.columns()
            .split(", ")
            .map(|c| match c {
                "causation_id" => "ifNull(toString(causation_id), '')".to_string(),
                "order_id" if self == Table::StockMovements => {
                    "ifNull(toString(order_id), '')".to_string()
                }
                c if UUIDS.contains(&c) => format!("toString({c})"),
                c => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown table {s:?}; the tables are {}",
                    Table::ALL.map(Table::name).join(", ")
                )
            })
    }
}

/// The `products` dimension (reference data, not from the log).
pub const PRODUCTS: &str = "products";

/// The DDL statements for `db`, with table names ending in `suffix`
/// (`""` live, `"_next"` while a replay builds), comments removed.
pub fn statements(db: &str, suffix: &str) -> Vec<String> {
    strip_comments(DDL)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("{db}", db).replace("{suffix}", suffix))
        .collect()
}

/// The statement that creates `table` (a log table or `products`).
pub fn create_statement(db: &str, table: &str, suffix: &str) -> String {
    let marker = format!(".{table}{suffix} (");
    statements(db, suffix)
        .into_iter()
        .find(|s| s.contains(&marker))
        .unwrap_or_else(|| panic!("sql/tables.sql has no table {table}"))
}

/// SQL without `--` comments (our SQL has no `--` inside string literals).
pub fn strip_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A database or table name we accept: letters, digits and `_`, not
/// starting with a digit (so it needs no quoting in SQL).
pub fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_its_ddl_and_names_round_trip() {
        for t in Table::ALL {
            let ddl = create_statement("db", t.name(), "_next");
            assert!(ddl.starts_with(&format!("CREATE TABLE IF NOT EXISTS db.{t}_next (")));
            for column in t.columns().split(", ") {
                assert!(ddl.contains(&format!("\n    {column} ")), "{t}: {column}");
            }
            assert_eq!(t.name().parse::<Table>().unwrap(), t);
        }
        create_statement("db", PRODUCTS, "");
        assert_eq!(statements("db", "").len(), Table::ALL.len() + 1);
        assert!("nope".parse::<Table>().unwrap_err().contains("order_lines"));
        assert!(valid_identifier("freshledger_asof"));
        assert!(!valid_identifier("1x") && !valid_identifier("a.b") && !valid_identifier(""));
    }
}
