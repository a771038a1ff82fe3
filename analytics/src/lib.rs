//! ClickHouse analytics: fact tables projected from the log, replays that
//! analysts control, and the business's reports.
//!
//! An edge crate on `store` (the log, its lease, the projector's positions)
//! and `event-schemas` (the events); the only crate that speaks to
//! ClickHouse (the `clickhouse` crate, RowBinary over HTTP).
//!
//! The live projector is a subscriber of the log with a loop of its own: it
//! reads a batch after the lowest of its tables' positions, turns it into
//! rows ([`facts`]), inserts one block per table, and only once ClickHouse
//! acknowledged every block moves the positions (compare-and-set in the
//! store's database, [`positions`]). A crash in between sends the batch
//! again; rows carry their event's position in their sorting key and the
//! tables are `ReplacingMergeTree`s read with `FINAL`, so nothing is
//! counted twice. One projector per database of analytics tables holds a
//! lease; other processes stand by.
//!
//! [`replay`] builds a table set anew from the log (up to a position or a
//! moment) beside the live tables and swaps it in; [`reports`] are
//! committed SQL run with checked parameters.

pub mod ch;
pub mod dashboard;
pub mod facts;
mod mapper;
pub mod positions;
pub mod replay;
pub mod reports;
pub mod tables;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::{Lease, Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use ch::{Ch, ChError};
pub use facts::Facts;
pub use mapper::{write, Mapper, WriteError};
pub use tables::Table;

/// The lease of the live projector of database `db`.
pub fn lease_name(db: &str) -> String {
    format!("analytics:{db}")
}

/// How often the `products` dimension is refreshed from the catalogue.
const PRODUCTS_REFRESH: Duration = Duration::from_secs(300);
/// First events of streams kept at hand by the live projector.
const ORIGINS: usize = 100_000;

/// How to reach ClickHouse and where to write.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// `http://host:8123` (or `https://…`).
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database of the tables (created if missing).
    pub database: String,
    /// Events read from the log and written at once by the live projector.
    pub batch_size: usize,
}

impl AnalyticsConfig {
    pub fn new(url: impl Into<String>) -> Self {
        AnalyticsConfig {
            url: url.into(),
            user: None,
            password: None,
            database: "freshledger".into(),
            batch_size: 5_000,
        }
    }

    /// Refuses what can be known wrong before connecting.
    pub fn check(&self) -> Result<(), String> {
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "clickhouse_url {:?} is not an http:// or https:// address (ClickHouse's HTTP interface, port 8123 by default)",
                self.url
            ));
        }
        if url.starts_with("https://") {
            return Err("clickhouse_url: https is not supported by this build; use http:// (behind a TLS proxy if needed)".into());
        }
        if !tables::valid_identifier(&self.database) {
            return Err(format!(
                "clickhouse_database {:?} must be letters, digits and _ (not starting with a digit)",
                self.database
            ));
        }
        Ok(())
    }
}

/// What the live projector is doing.
pub type ProjectorState = store::WorkState;

/// One table as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: &'static str,
    pub position: u64,
    pub lag: u64,
    /// A replay is swapping it in.
    pub swapping: bool,
    pub replayed_to: Option<u64>,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// The projector as `/readyz`, `/api/v1/log` and `analytics status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsReport {
    pub state: ProjectorState,
    pub healthy: bool,
    pub problem: Option<String>,
    pub since: DateTime<Utc>,
    pub database: String,
    /// The lowest table position: every event up to it is in every table.
    pub position: u64,
    pub head: u64,
    pub lag: u64,
    pub tables: Vec<TableReport>,
}

#[derive(Debug)]
struct Health {
    state: ProjectorState,
    problem: Option<String>,
    since: DateTime<Utc>,
}

/// The analytics of one process: the live projector and what it reports.
/// Cheap to clone.
#[derive(Clone)]
pub struct Analytics {
    store: Store,
    ch: Ch,
    config: Arc<AnalyticsConfig>,
    health: Arc<Mutex<Health>>,
}

/// A product as the `products` dimension needs it (the catalogue's rows
/// have more).
#[derive(Debug, Deserialize)]
struct CatalogProduct {
    sku: String,
    name: String,
    categories: Vec<String>,
    price: CatalogPrice,
}

#[derive(Debug, Deserialize)]
struct CatalogPrice {
    per: String,
}

/// A row of the `products` dimension.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct ProductRow {
    pub sku: String,
    pub name: String,
    /// The primary category (`fruit`, `vegetable`, ...).
    pub category: String,
    /// `g` or `unit`.
    pub unit: &'static str,
    /// When it was refreshed (microseconds since 1970): the newest wins.
    pub refreshed: u64,
}

impl Analytics {
    /// Prepares the projector's positions in the store (no ClickHouse call:
    /// ClickHouse being down must not stop a start).
    pub async fn new(store: &Store, config: AnalyticsConfig) -> Result<Analytics, StoreError> {
        positions::ensure(store, &config.database).await?;
        Ok(Analytics {
            store: store.clone(),
            ch: Ch::new(&config),
            config: Arc::new(config),
            health: Arc::new(Mutex::new(Health {
                state: ProjectorState::Starting,
                problem: None,
                since: Utc::now(),
            })),
        })
    }

    pub fn ch(&self) -> &Ch {
        &self.ch
    }

    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Runs the live projector until `stop`; never gives up (it retries with
    /// backoff and reports why).
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run(stop).await })
    }

    /// Where the projector and each table stand.
    pub async fn report(&self) -> Result<AnalyticsReport, StoreError> {
        let (state, problem, since) = {
            let h = self.health.lock().expect("health lock");
            (h.state, h.problem.clone(), h.since)
        };
        let head = self.store.head_within(Duration::from_secs(1)).await?;
        let positions = positions::read(&self.store, &self.config.database).await?;
        Ok(report(
            state,
            problem,
            since,
            &self.config.database,
            head,
            &positions,
        ))
    }

    fn set(&self, state: ProjectorState, problem: Option<String>) {
        let mut h = self.health.lock().expect("health lock");
        if h.state != state || h.problem != problem {
            h.since = Utc::now();
        }
        h.state = state;
        h.problem = problem;
    }

    async fn run(&self, stop: CancellationToken) {
        let name = lease_name(&self.config.database);
        self.store
            .run_leased(
                &name,
                &stop,
                |turn| {
                    let (state, problem) = turn.state();
                    self.set(state, problem)
                },
                |lease| async move {
                    let stopping = lease.stopping().clone();
                    self.active(lease, &stopping).await
                },
            )
            .await;
    }

    /// Projects while holding `lease`; `Ok` only when stopped.
    async fn active(&self, mut lease: Lease, stop: &CancellationToken) -> Result<(), WriteError> {
        let db = self.config.database.clone();
        tokio::select! {
            prepared = self.ch.prepare(true) => prepared?,
            _ = stop.cancelled() => {
                lease.release().await;
                return Ok(());
            }
        }
        refresh_products(&self.store, &self.ch).await?;
        let mut refreshed = Instant::now();
        self.set(ProjectorState::Active, None);
        tracing::info!(url = %self.config.url, database = %db, "ClickHouse projector active");
        let mut mapper = Mapper::new(&self.store, ORIGINS);
        let mut wake = self.store.wakeups();
        let poll = self.store.config().poll_interval;
        let mut facts = Facts::default();
        // The tables' positions, kept between batches (each move is a
        // compare-and-set); read again after a failed move or an idle poll
        // interval, which is how a replay's swap is seen.
        let mut known: Option<BTreeMap<Table, u64>> = None;
        loop {
            if stop.is_cancelled() {
                lease.release().await;
                return Ok(());
            }
            if !lease.check().await {
                return Err(WriteError::Store(StoreError::Config(
                    "the lease was lost (its database session ended)".into(),
                )));
            }
            if refreshed.elapsed() >= PRODUCTS_REFRESH {
                refresh_products(&self.store, &self.ch).await?;
                refreshed = Instant::now();
            }
            wake.borrow_and_update();
            let after = match known.take() {
                Some(after) => after,
                None => positions::read(&self.store, &db)
                    .await?
                    .into_iter()
                    .filter(|(_, p)| !p.swapping)
                    .map(|(t, p)| (t, p.position))
                    .collect(),
            };
            let Some(from) = after.values().min().copied() else {
                // Every table is being swapped by a replay.
                pause(stop, poll).await;
                continue;
            };
            let events = self.store.read_tail(from, self.config.batch_size).await?;
            if events.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => {},
                    _ = wake.changed() => known = Some(after),
                    // Nothing woke us: a replay may have swapped tables.
                    _ = tokio::time::sleep(poll) => {},
                }
                continue;
            }
            facts.clear();
            mapper.map(&events, &after, &mut facts).await?;
            tokio::select! {
                written = write(&self.ch, "", &facts) => written?,
                _ = stop.cancelled() => {
                    // Not acknowledged: nothing moves; sent again next time.
                    lease.release().await;
                    return Ok(());
                }
            }
            let to = events.last().expect("a batch").global_position;
            let moves: Vec<(Table, u64, u64)> = after
                .iter()
                .filter(|(_, p)| **p < to)
                .map(|(t, p)| (*t, *p, to))
                .collect();
            if positions::advance(&self.store, &db, &moves).await? {
                known = Some(after.into_iter().map(|(t, p)| (t, p.max(to))).collect());
            } else {
                tracing::debug!(
                    "analytics positions moved under the projector (a replay); reading them again"
                );
            }
            // Healthy again after a problem (ClickHouse came back).
            self.set(ProjectorState::Active, None);
        }
    }
}

/// The report of `positions` against `head`.
pub fn report(
    state: ProjectorState,
    problem: Option<String>,
    since: DateTime<Utc>,
    db: &str,
    head: u64,
    positions: &BTreeMap<Table, positions::TablePosition>,
) -> AnalyticsReport {
    let tables: Vec<TableReport> = positions
        .iter()
        .map(|(t, p)| TableReport {
            table: t.name(),
            position: p.position,
            lag: head.saturating_sub(p.position),
            swapping: p.swapping,
            replayed_to: p.replayed_to,
            replayed_at: p.replayed_at,
        })
        .collect();
    let position = tables.iter().map(|t| t.position).min().unwrap_or(0);
    AnalyticsReport {
        healthy: matches!(state, ProjectorState::Active | ProjectorState::Standby)
            && problem.is_none(),
        state,
        problem,
        since,
        database: db.to_string(),
        position,
        head,
        lag: head.saturating_sub(position),
        tables,
    }
}

/// Writes the catalogue's products into the `products` dimension (the
/// newest refresh of a SKU wins).
pub async fn refresh_products(store: &Store, ch: &Ch) -> Result<(), WriteError> {
    let refreshed = Utc::now().timestamp_micros() as u64;
    let mut after = String::new();
    loop {
        let page: Vec<CatalogProduct> = store.products(&after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.sku.clone();
        let rows: Vec<ProductRow> = page
            .into_iter()
            .map(|p| ProductRow {
                unit: if p.price.per == "per_kg" { "g" } else { "unit" },
                category: p.categories.into_iter().next().unwrap_or_default(),
                sku: p.sku,
                name: p.name,
                refreshed,
            })
            .collect();
        ch.insert(&ch.table(tables::PRODUCTS, ""), &rows).await?;
    }
    Ok(())
}

/// Sleeps `d`, or less if stopped.
async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {},
        _ = tokio::time::sleep(d) => {},
    }
}
