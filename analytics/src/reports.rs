//! The business's reports: committed SQL (`sql/reports/*.sql`, over the
//! views of `sql/views.sql`), run with checked parameters.
//!
//! Parameters are written into the SQL as literals, never as text from the
//! user: times are parsed timestamps, a warehouse is a checked code.
//! (ClickHouse 18.16 has no server-side query parameters.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::ch::{Ch, ChError};
use crate::tables::strip_comments;

/// The views the reports read (`{db}` replaced).
pub const VIEWS: &str = include_str!("../sql/views.sql");

/// The names of the views, in creation order.
pub const VIEW_NAMES: [&str; 2] = ["order_line_states", "order_states"];

/// One committed report.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub name: &'static str,
    /// What it answers, in a line.
    pub title: &'static str,
    pub sql: &'static str,
    /// `--to` is the moment it looks at (default: now), and `--from` is
    /// not used.
    pub as_of: bool,
}

macro_rules! reports {
    ($( $name:literal, $title:literal, $as_of:literal; )*) => {
        /// Every report, in the order `analytics report --help` lists them.
        pub const REPORTS: &[Report] = &[
            $( Report {
                name: $name,
                title: $title,
                sql: include_str!(concat!("../sql/reports/", $name, ".sql")),
                as_of: $as_of,
            }, )*
        ];
    };
}

reports! {
    "sales", "Sales by day, warehouse, SKU and category: ordered, sold, cancelled, delivered", false;
    "spoilage", "Spoilage loss by week, SKU, supplier and reason, and shrink as a share of sales", false;
    "inventory_aging", "Stock on hand per warehouse by days to expiry and days since receipt", true;
    "customers_weekly", "New and returning customers per week, and basket size", false;
    "cohort_retention", "Retention of customers by the month of their first order", false;
    "repeat_rate", "Customers ordering again within 30, 60 and 90 days of their first order", false;
    "delivery_punctuality", "Deliveries on time, early and late by slot", false;
}

/// Looks a report up by name.
pub fn find(name: &str) -> Result<&'static Report, String> {
    REPORTS.iter().find(|r| r.name == name).ok_or_else(|| {
        format!(
            "no report named {name:?}; the reports are {}",
            REPORTS
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// What a report is run for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportArgs {
    /// From this moment (inclusive); default: the beginning.
    pub from: Option<DateTime<Utc>>,
    /// Until this moment (exclusive); default: no end (as-of reports: now).
    pub to: Option<DateTime<Utc>>,
    /// Only this warehouse.
    pub warehouse: Option<String>,
}

/// A report's answer: column names and types, and rows of JSON values
/// (integers as numbers, dates as text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportTable {
    pub columns: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ReportTable {
    /// The rows as objects keyed by column name.
    pub fn records(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

/// The latest moment a ClickHouse `DateTime` holds.
const NO_END: &str = "2105-12-31 23:59:59";

fn datetime(at: DateTime<Utc>) -> String {
    format!("toDateTime('{}', 'UTC')", at.format("%Y-%m-%d %H:%M:%S"))
}

/// The report's SQL for database `db`, its parameters written in.
pub fn render(
    report: &Report,
    db: &str,
    args: &ReportArgs,
    now: DateTime<Utc>,
) -> Result<String, String> {
    if report.as_of && args.from.is_some() {
        return Err(format!(
            "report {} looks at one moment (--to, default now); --from does not apply",
            report.name
        ));
    }
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            return Err(format!("--from {from} is not before --to {to}"));
        }
    }
    let warehouse = match &args.warehouse {
        None => "''".to_string(),
        Some(w) if valid_code(w) => format!("'{w}'"),
        Some(w) => {
            return Err(format!(
                "--warehouse {w:?} is not a warehouse id (letters, digits, ., - and _)"
            ))
        }
    };
    let from = args
        .from
        .map(datetime)
        .unwrap_or_else(|| "toDateTime('1970-01-01 00:00:00', 'UTC')".into());
    let to = match (args.to, report.as_of) {
        (Some(to), _) => datetime(to),
        (None, true) => datetime(now),
        (None, false) => format!("toDateTime('{NO_END}', 'UTC')"),
    };
    Ok(fill(report, db, &from, &to, &warehouse))
}

/// The report's SQL with each parameter replaced by an SQL expression
/// (literals, or a dashboard's macros).
pub fn fill(report: &Report, db: &str, from: &str, to: &str, warehouse: &str) -> String {
    strip_comments(report.sql)
        .replace("{db}", db)
        .replace("{from}", from)
        .replace("{to}", to)
        .replace("{warehouse}", warehouse)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a report answers, in full: its leading comment.
pub fn description(report: &Report) -> String {
    report
        .sql
        .lines()
        .take_while(|l| l.starts_with("--"))
        .map(|l| l.trim_start_matches("--").trim())
        .collect::<Vec<_>>()
        .join(" ")
}

fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The view statements for `db` (each drops and recreates its view).
pub fn view_statements(db: &str) -> Vec<String> {
    strip_comments(VIEWS)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("{db}", db))
        .collect()
}

/// Creates the views of `ch`'s database that are missing, or with
/// `replace` every one anew (a changed definition takes effect).
pub async fn create_views(ch: &Ch, replace: bool) -> Result<(), ChError> {
    if replace {
        for name in VIEW_NAMES.iter().rev() {
            ch.exec(&format!("DROP TABLE IF EXISTS {}", ch.table(name, "")))
                .await?;
        }
    }
    for statement in view_statements(ch.database()) {
        ch.exec(&statement).await?;
    }
    Ok(())
}

/// Runs `report` against `ch`'s database.
pub async fn run(ch: &Ch, report: &Report, args: &ReportArgs) -> Result<ReportTable, RunError> {
    let sql = render(report, ch.database(), args, Utc::now()).map_err(RunError::Args)?;
    let bytes = ch.fetch_bytes(&sql, "JSONCompact").await?;
    parse_json_compact(&bytes).map_err(|e| {
        RunError::ClickHouse(ChError {
            url: ch.url().to_string(),
            message: format!("report {}: unreadable answer: {e}", report.name),
            unreachable: false,
        })
    })
}

/// Why a report could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Args(String),
    #[error("{0}")]
    ClickHouse(#[from] ChError),
}

/// ClickHouse's `JSONCompact` output: `{"meta": [{name, type}], "data": [[…]]}`.
pub fn parse_json_compact(bytes: &[u8]) -> Result<ReportTable, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Meta {
        name: String,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        meta: Vec<Meta>,
        data: Vec<Vec<Value>>,
    }
    let answer: Answer = serde_json::from_slice(bytes)?;
    Ok(ReportTable {
        columns: answer.meta.iter().map(|m| m.name.clone()).collect(),
        types: answer.meta.into_iter().map(|m| m.kind).collect(),
        rows: answer.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_written_as_literals() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let sales = find("sales").unwrap();
        let sql = render(
            sales,
            "fl",
            &ReportArgs {
                from: Some("2026-11-01T00:00:00Z".parse().unwrap()),
                to: None,
                warehouse: Some("WH-1".into()),
            },
            now,
        )
        .unwrap();
        assert!(sql.contains("placed_at >= toDateTime('2026-11-01 00:00:00', 'UTC')"));
        assert!(sql.contains("placed_at < toDateTime('2105-12-31 23:59:59', 'UTC')"));
        assert!(sql.contains("warehouse_id = 'WH-1'") && sql.contains("fl.order_line_states"));
        assert!(!sql.contains('{') && !sql.contains("--"));

        let quote = ReportArgs {
            warehouse: Some("x' OR 1=1 --".into()),
            ..Default::default()
        };
        assert!(render(sales, "fl", &quote, now)
            .unwrap_err()
            .contains("not a warehouse id"));
        let aging = find("inventory_aging").unwrap();
        let sql = render(aging, "fl", &ReportArgs::default(), now).unwrap();
        assert!(sql.contains("toDateTime('2026-11-30 12:00:00', 'UTC')"));
        let from = ReportArgs {
            from: Some(now),
            ..Default::default()
        };
        assert!(render(aging, "fl", &from, now)
            .unwrap_err()
            .contains("--from does not apply"));
        let backwards = ReportArgs {
            from: Some(now),
            to: Some(now),
            warehouse: None,
        };
        assert!(render(sales, "fl", &backwards, now).is_err());
        assert!(find("nope").unwrap_err().contains("delivery_punctuality"));
        for r in REPORTS {
            let sql = render(r, "fl", &ReportArgs::default(), now).unwrap();
            assert!(!sql.contains('{'), "{}: a parameter left in", r.name);
        }
    }
}
