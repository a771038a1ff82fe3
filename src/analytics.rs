//! ClickHouse analytics in the composition root: the projector's adapter to
//! the command API's integration reports, and the `freshledger analytics`
//! commands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::replay::{self, Target};
use analytics::reports::{self, ReportArgs, ReportTable};
use analytics::{positions, Analytics, AnalyticsConfig, Ch, Table};
use command_api::integrations::{Integration, IntegrationStatus};
use store::Store;

use crate::app::{store_err, AppError};
use crate::cli::AnalyticsCommand;

/// The projector as `/readyz` and `/api/v1/log` show it.
struct ClickHouseIntegration(Analytics);

#[async_trait::async_trait]
impl Integration for ClickHouseIntegration {
    async fn status(&self) -> IntegrationStatus {
        match self.0.report().await {
            Ok(r) => IntegrationStatus {
                name: "clickhouse".into(),
                state: r.state.as_str().into(),
                healthy: r.healthy,
                problem: r.problem,
                since: r.since,
                position: Some(r.position),
                lag: Some(r.lag),
                dead_letters: Vec::new(),
            },
            Err(e) => IntegrationStatus::unreadable(
                "clickhouse",
                format!("reading the projector's positions: {e}"),
            ),
        }
    }
}

pub(crate) fn integration(analytics: &Analytics) -> Arc<dyn Integration> {
    Arc::new(ClickHouseIntegration(analytics.clone()))
}

fn ch_err(doing: &'static str) -> impl FnOnce(analytics::WriteError) -> AppError {
    move |e| AppError::Config(format!("{doing}: {e}"))
}

/// `freshledger analytics ...`: works with or without a running server.
pub(crate) async fn command(
    store: &Store,
    config: Option<AnalyticsConfig>,
    command: &AnalyticsCommand,
) -> Result<(), AppError> {
    match command {
        AnalyticsCommand::Reports => {
            for r in reports::REPORTS {
                say!("{:<22} {}", r.name, r.title);
            }
            return Ok(());
        }
        AnalyticsCommand::Dashboard { database } => {
            if !analytics::tables::valid_identifier(database) {
                return Err(AppError::Config(format!(
                    "--database {database:?} must be letters, digits and _"
                )));
            }
            say!("{}", analytics::dashboard::text(database).trim_end());
            return Ok(());
        }
        _ => {}
    }
    let config = config.ok_or_else(|| {
        AppError::Config(
            "no ClickHouse configured: give --clickhouse-url (or FRESHLEDGER_CLICKHOUSE_URL)"
                .into(),
        )
    })?;
    let ch = Ch::new(&config);
    let db = config.database.clone();
    match command {
        AnalyticsCommand::Reports | AnalyticsCommand::Dashboard { .. } => {}
        AnalyticsCommand::Status { checksums } => {
            positions::ensure(store, &db)
                .await
                .map_err(store_err("reading the analytics positions"))?;
            let head = store.head().await.map_err(store_err("reading the log"))?;
            let at = positions::read(store, &db)
                .await
                .map_err(store_err("reading the analytics positions"))?;
            let report = analytics::report(
                analytics::ProjectorState::Stopped,
                None,
                chrono::Utc::now(),
                &db,
                head,
                &at,
            );
            say!("database {db} at {}, log head {head}", config.url);
            for t in &report.tables {
                let mut line = format!(
                    "{:<16} position {:>10}  lag {:>8}",
                    t.table, t.position, t.lag
                );
                if t.swapping {
                    line.push_str("  SWAPPING (a replay is swapping it in, or stopped while it did: replay it again)");
                }
                if let (Some(to), Some(when)) = (t.replayed_to, t.replayed_at) {
                    line.push_str(&format!(
                        "  replayed to {to} at {}",
                        when.format("%Y-%m-%d %H:%M:%S UTC")
                    ));
                }
                say!("{line}");
            }
            if *checksums {
                for table in Table::ALL {
                    let (rows, sum) = ch
                        .checksum(table, "")
                        .await
                        .map_err(|e| AppError::Config(e.to_string()))?;
                    say!("{:<16} rows {rows:>10}  checksum {sum:016x}", table.name());
                }
            }
        }
        AnalyticsCommand::Replay {
            to_position,
            as_of,
            tables,
        } => {
            let tables: Vec<Table> = if tables.is_empty() {
                Table::ALL.to_vec()
            } else {
                let mut parsed = Vec::new();
                for t in tables {
                    let t: Table = t.trim().parse().map_err(AppError::Config)?;
                    if !parsed.contains(&t) {
                        parsed.push(t);
                    }
                }
                parsed
            };
            let target = match (to_position, as_of) {
                (Some(p), _) => Target::Position(*p),
                (None, Some(at)) => Target::AsOf(*at),
                (None, None) => Target::Head,
            };
            let to = replay::resolve(store, target)
                .await
                .map_err(ch_err("finding where to replay to"))?;
            let bar = indicatif::ProgressBar::new(to.max(1));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} position {pos}/{len} {msg}",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let started = Instant::now();
            let progress = |position: u64, events: u64| {
                bar.set_position(position);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{events} events, {:.0} events/s",
                    events as f64 / secs
                ));
            };
            let done = replay::replay(store, &ch, &tables, to, &progress)
                .await
                .map_err(ch_err("replaying into ClickHouse"))?;
            bar.finish_and_clear();
            say!(
                "replayed {} events up to position {} into {db} ({}) in {:.1} s ({:.0} events/s); the live projector continues from {}",
                done.events,
                done.to,
                done.tables.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                done.elapsed.as_secs_f64(),
                done.events as f64 / done.elapsed.as_secs_f64().max(0.001),
                done.to
            );
        }
        AnalyticsCommand::Report {
            name,
            from,
            to,
            warehouse,
            format,
        } => {
            let report = reports::find(name).map_err(AppError::Config)?;
            let args = ReportArgs {
                from: *from,
                to: *to,
                warehouse: warehouse.clone(),
            };
            // The database, its tables and views exist (empty at worst);
            // existing views are left as they are.
            ch.prepare(false)
                .await
                .map_err(|e| AppError::Config(e.to_string()))?;
            let table = reports::run(&ch, report, &args)
                .await
                .map_err(|e| AppError::Config(e.to_string()))?;
            let text = match format.as_str() {
                "csv" => csv(&table)?,
                "json" => {
                    serde_json::to_string_pretty(&table.records()).expect("JSON values serialize")
                }
                _ => aligned(&table),
            };
            say!("{}", text.trim_end());
        }
    }
    Ok(())
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn aligned(table: &ReportTable) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(&table.columns);
    for row in &table.rows {
        t.add_row(row.iter().map(cell));
    }
    for (i, kind) in table.types.iter().enumerate() {
        if kind.contains("Int") {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
    }
    t.to_string()
}

fn csv(table: &ReportTable) -> Result<String, AppError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let io = |e: ::csv::Error| AppError::Config(format!("writing CSV: {e}"));
    w.write_record(&table.columns).map_err(io)?;
    for row in &table.rows {
        w.write_record(row.iter().map(cell)).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::Config(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
