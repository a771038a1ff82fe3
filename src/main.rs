//! `freshledger`: the one binary and composition root. It reads its
//! configuration, opens the event log, and serves the command API, the
//! GraphQL query API and the read-model projectors in one process (the
//! sagas and timers join it with their issue).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use command_api::AppState;
use domain::clock::{FixedClock, SystemClock};
use serde::Deserialize;
use store::{Store, StoreConfig};

/// mimalloc rather than the system allocator: decoding rows and events
/// allocates many short-lived maps and strings, and glibc's malloc took
/// about a fifth of the server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` for command output that may go to a pipe: when the reader
/// has gone (`freshledger projections status | head`), stop quietly
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(format!("writing output: {e}"));
        }
    }};
}

const DEFAULT_DATABASE_URL: &str = "sqlite://data/freshledger.db";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Freshledger: an event-sourced backend for a fresh-produce marketplace.
///
/// Every setting can come from a flag, an environment variable, or the
/// optional TOML file given with --config (in that order of precedence).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file with any of: database_url, listen, snapshot_every,
    /// max_connections, demo_data.
    #[arg(long, env = "FRESHLEDGER_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// Event store: sqlite://path/to/file.db (embedded, the default:
    /// sqlite://data/freshledger.db) or postgres://user@host:port/db.
    #[arg(long, env = "FRESHLEDGER_DATABASE_URL", global = true)]
    database_url: Option<String>,

    /// Snapshot aggregates every N events; 0 turns snapshots off [default: 100].
    #[arg(long, env = "FRESHLEDGER_SNAPSHOT_EVERY", global = true)]
    snapshot_every: Option<usize>,

    /// Largest database connection pool [default: 16].
    #[arg(long, env = "FRESHLEDGER_MAX_CONNECTIONS", global = true)]
    max_connections: Option<u32>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the command API, GraphQL and the projections (the default).
    Serve {
        /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8080].
        #[arg(long, env = "FRESHLEDGER_LISTEN")]
        listen: Option<SocketAddr>,
        /// Load the demo catalogue and stock into an empty database
        /// [default: true].
        #[arg(long, env = "FRESHLEDGER_DEMO_DATA")]
        demo_data: Option<bool>,
        /// Raise a batch's expiry warning this many hours before it expires
        /// [default: 24].
        #[arg(long, env = "FRESHLEDGER_EXPIRY_WARNING_HOURS")]
        expiry_warning_hours: Option<u32>,
        /// `system`, or `manual`: time starts now and only moves through
        /// POST /api/v1/clock (tests and demos of days in seconds)
        /// [default: system].
        #[arg(long, env = "FRESHLEDGER_CLOCK", value_parser = ["system", "manual"])]
        clock: Option<String>,
        #[command(flatten)]
        saga: SagaArgs,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo catalogue and stock (when the catalogue is empty) and exit.
    DemoData,
    /// Read models: status, rebuild.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each read model's checkpoint, and any error it is parked on.
    Status,
    /// A digest of each read model's content (to compare a rebuild with
    /// the live tables, or two databases).
    Checksum,
    /// Replay the log into fresh tables and swap them in; a running server
    /// keeps serving throughout.
    Rebuild {
        /// One of: orders, stock, deliveries, payments. All when absent.
        name: Option<String>,
    },
}

/// The order fulfilment saga's settings.
#[derive(Debug, Clone, Default, clap::Args)]
struct SagaArgs {
    /// Run the order saga: allocate, take payment, pick, ship, capture and
    /// compensate automatically. Off, orders move only by explicit commands
    /// (back-office tools, tests of single steps) [default: true].
    #[arg(long, env = "FRESHLEDGER_ORDER_SAGA")]
    order_saga: Option<bool>,
    /// Cancel a card order not paid within this many minutes [default: 15].
    #[arg(long, env = "FRESHLEDGER_RESERVATION_HOLD_MINUTES")]
    reservation_hold_minutes: Option<u32>,
    /// Allocate only from batches with at least this many hours of shelf
    /// life left at the end of the delivery slot [default: 24].
    #[arg(long, env = "FRESHLEDGER_SHELF_LIFE_MARGIN_HOURS")]
    shelf_life_margin_hours: Option<u32>,
    /// The simulated payment gateway's answer to authorizations: approve,
    /// decline, timeout, or by-amount (minor units ending in 51 decline, in
    /// 52 time out) [default: approve].
    #[arg(long, env = "FRESHLEDGER_GATEWAY_OUTCOME")]
    gateway_outcome: Option<sagas::gateway::Outcome>,
    /// The simulated gateway's latency per call, in milliseconds [default: 0].
    #[arg(long, env = "FRESHLEDGER_GATEWAY_LATENCY_MS")]
    gateway_latency_ms: Option<u64>,
    /// Run the order saga as this many concurrent shards (orders spread by
    /// id; each shard a subscription of its own) [default: 4].
    #[arg(long, env = "FRESHLEDGER_SAGA_SHARDS", value_parser = clap::value_parser!(u32).range(1..=64))]
    saga_shards: Option<u32>,
    /// Orders each saga shard works on at once (different orders' events in
    /// a batch; one order's always in log order). 1: strictly in log
    /// order, so competing orders are served first come, first served
    /// [default: 8].
    #[arg(long, env = "FRESHLEDGER_SAGA_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=256))]
    saga_concurrency: Option<u32>,
}

/// The optional configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    snapshot_every: Option<usize>,
    max_connections: Option<u32>,
    demo_data: Option<bool>,
    expiry_warning_hours: Option<u32>,
    order_saga: Option<bool>,
    reservation_hold_minutes: Option<u32>,
    shelf_life_margin_hours: Option<u32>,
    gateway_outcome: Option<String>,
    gateway_latency_ms: Option<u64>,
    saga_shards: Option<u32>,
    saga_concurrency: Option<u32>,
}

fn file_config(path: &Option<PathBuf>) -> Result<FileConfig, String> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

async fn open_store(cli: &Cli, file: &FileConfig) -> Result<Store, String> {
    let url = cli
        .database_url
        .clone()
        .or(file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let mut config = StoreConfig::new(url);
    if let Some(n) = cli.snapshot_every.or(file.snapshot_every) {
        config.snapshot_every = n;
    }
    if let Some(n) = cli.max_connections.or(file.max_connections) {
        config.max_connections = n;
    }
    let store = Store::connect(config)
        .await
        .map_err(|e| format!("opening the event store: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migrating the event store: {e}"))?;
    Ok(store)
}

/// The order saga's settings (flag > env > file > default); `None` when it
/// is switched off.
struct SagaSettings {
    shards: u32,
    concurrency: u32,
    config: sagas::order::SagaConfig,
    outcome: sagas::gateway::Outcome,
    latency: Duration,
}

fn saga_settings(args: &SagaArgs, file: &FileConfig) -> Result<Option<SagaSettings>, String> {
    if !args.order_saga.or(file.order_saga).unwrap_or(true) {
        return Ok(None);
    }
    let outcome = match (args.gateway_outcome, &file.gateway_outcome) {
        (Some(o), _) => o,
        (None, Some(s)) => s.parse().map_err(|e| format!("gateway_outcome: {e}"))?,
        (None, None) => sagas::gateway::Outcome::Approve,
    };
    let minutes = args
        .reservation_hold_minutes
        .or(file.reservation_hold_minutes)
        .unwrap_or(15);
    let hours = args
        .shelf_life_margin_hours
        .or(file.shelf_life_margin_hours)
        .unwrap_or(24);
    Ok(Some(SagaSettings {
        shards: args
            .saga_shards
            .or(file.saga_shards)
            .unwrap_or(4)
            .clamp(1, 64),
        concurrency: args
            .saga_concurrency
            .or(file.saga_concurrency)
            .unwrap_or(8)
            .clamp(1, 256),
        config: sagas::order::SagaConfig {
            reservation_hold: chrono::Duration::minutes(minutes as i64),
            shelf_life_margin: chrono::Duration::hours(hours as i64),
            ..Default::default()
        },
        outcome,
        latency: Duration::from_millis(
            args.gateway_latency_ms
                .or(file.gateway_latency_ms)
                .unwrap_or(0),
        ),
    }))
}

/// Runs a reactor subscription until `stop`, restarting it after errors.
fn spawn_reactor(
    name: String,
    store: &Store,
    reactor: Arc<dyn store::Reactor>,
    concurrency: u32,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        let sub = store::Subscription::reactor(name.clone(), &store, reactor)
            .with_concurrency(concurrency as usize);
        while !stop.is_cancelled() {
            if let Err(e) = sub.run(stop.clone()).await {
                tracing::error!(subscription = %name, error = %e, "stopped; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
}

/// The process managers (spoilage, the order saga) and the timer scheduler.
fn spawn_process_managers(
    state: &AppState,
    warn_before: chrono::Duration,
    saga: Option<SagaSettings>,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let store = state.store.clone();
    let timers = Arc::new(store::Aggregates::<domain::timer::Timer>::new(
        &store,
        domain::timer::TimerServices {
            clock: state.clock.clone(),
        },
    ));
    let spoilage = Arc::new(sagas::spoilage::Spoilage {
        batches: state.batches.clone(),
        timers: timers.clone(),
        warn_before,
    });
    let mut workers = vec![spawn_reactor(
        "spoilage".into(),
        &store,
        spoilage,
        1,
        stop.clone(),
    )];
    if let Some(s) = saga {
        let gateway = Arc::new(sagas::gateway::SimulatedGateway::new(s.outcome, s.latency));
        for shard in 0..s.shards {
            let saga = sagas::order::OrderSaga::new(
                &store,
                state.orders.clone(),
                state.batches.clone(),
                state.payments.clone(),
                state.deliveries.clone(),
                timers.clone(),
                gateway.clone(),
                state.clock.clone(),
                s.config.clone(),
            )
            .sharded(shard, s.shards);
            workers.push(spawn_reactor(
                sagas::order::subscription_name(shard),
                &store,
                Arc::new(saga),
                s.concurrency,
                stop.clone(),
            ));
        }
    }
    workers.push(tokio::spawn(sagas::timers::run(
        store,
        timers,
        state.clock.clone(),
        Duration::from_secs(1),
        stop,
    )));
    workers
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed *now*, not on
/// first poll: axum polls this from a spawned task, and a SIGTERM arriving
/// before that task ran would otherwise kill the process outright.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).expect("SIGTERM handler"),
            signal(SignalKind::interrupt()).expect("SIGINT handler"),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let file = file_config(&cli.config)?;
    let default = Command::Serve {
        listen: None,
        demo_data: None,
        expiry_warning_hours: None,
        clock: None,
        saga: SagaArgs::default(),
    };
    let command = cli.command.as_ref().unwrap_or(&default);
    let store = open_store(&cli, &file).await?;
    // Read-model tables are prepared (created, or rebuilt when their schema
    // version changed) only by the commands that use them.
    if matches!(
        command,
        Command::Serve { .. }
            | Command::Projections {
                command: ProjectionsCommand::Rebuild { .. } | ProjectionsCommand::Checksum
            }
    ) {
        projections::ensure(&store)
            .await
            .map_err(|e| format!("preparing read models: {e}"))?;
    }
    let manual = matches!(command, Command::Serve { clock: Some(c), .. } if c == "manual");
    let state = if manual {
        AppState::with_manual_clock(&store, Arc::new(FixedClock::at(chrono::Utc::now())))
    } else {
        AppState::new(&store, Arc::new(SystemClock))
    };
    match command {
        Command::Projections {
            command: ProjectionsCommand::Status,
        } => {
            let head = store.head().await.map_err(|e| e.to_string())?;
            say!("log head: {head}");
            for s in store.subscriptions().await.map_err(|e| e.to_string())? {
                let state = if s.parked {
                    format!(
                        "PARKED at {} ({})",
                        s.parked_at_position.unwrap_or_default(),
                        s.last_error.unwrap_or_default()
                    )
                } else {
                    "running".into()
                };
                say!("{:<12} {:>10}  {state}", s.name, s.position);
            }
        }
        Command::Projections {
            command: ProjectionsCommand::Checksum,
        } => {
            for model in projections::Model::ALL {
                let sum = projections::checksum(&store, model)
                    .await
                    .map_err(|e| e.to_string())?;
                say!("{:<12} {sum}", model.name());
            }
        }
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name },
        } => {
            let models = match name {
                None => projections::Model::ALL.to_vec(),
                Some(n) => vec![projections::Model::from_name(n).ok_or_else(|| {
                    format!("no read model named {n:?}: orders, stock, deliveries or payments")
                })?],
            };
            // All at once: the log is read once for all of them.
            let bars = indicatif::MultiProgress::new();
            let style = indicatif::ProgressStyle::with_template(
                "{msg:<11} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
            )
            .expect("valid template")
            .progress_chars("=> ");
            let shown: Vec<_> = models
                .iter()
                .map(|m| {
                    let bar = bars.add(indicatif::ProgressBar::new(0).with_style(style.clone()));
                    bar.set_message(m.name());
                    (*m, bar)
                })
                .collect();
            let started = std::time::Instant::now();
            projections::rebuild_all(&store, &models, |model, done, total| {
                if let Some((_, bar)) = shown.iter().find(|(m, _)| *m == model) {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            })
            .await
            .map_err(|e| format!("rebuilding: {e}"))?;
            for (model, bar) in shown {
                bar.finish();
                say!(
                    "{}: rebuilt and swapped in {:.1?}",
                    model.name(),
                    started.elapsed()
                );
            }
        }
        Command::Migrate => {
            say!("migrated");
        }
        Command::DemoData => {
            let loaded = command_api::demo::load(&state)
                .await
                .map_err(|e| format!("loading demo data: {e}"))?;
            say!(
                "demo data: {} products, {} batches loaded",
                loaded.products,
                loaded.batches
            );
        }
        Command::Serve {
            listen,
            demo_data,
            expiry_warning_hours,
            clock: _,
            saga,
        } => {
            if demo_data.or(file.demo_data).unwrap_or(true) {
                let loaded = command_api::demo::load(&state)
                    .await
                    .map_err(|e| format!("loading demo data: {e}"))?;
                if loaded.products > 0 {
                    tracing::info!(
                        products = loaded.products,
                        batches = loaded.batches,
                        "demo data loaded"
                    );
                }
            }
            let addr = listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("binding {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            let stop = tokio_util::sync::CancellationToken::new();
            let mut workers = projections::spawn(&store, stop.clone());
            let saga = saga_settings(saga, &file)?;
            workers.extend(spawn_process_managers(
                &state,
                chrono::Duration::hours(
                    expiry_warning_hours
                        .or(file.expiry_warning_hours)
                        .unwrap_or(24) as i64,
                ),
                saga,
                stop.clone(),
            ));
            let shutdown = shutdown_signal();
            // Tests and scripts read this line to find a port chosen by the OS.
            println!("freshledger listening on http://{bound}");
            let app = command_api::router(state).merge(query_api::router(&store));
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| format!("serving: {e}"))?;
            // Requests are done; let each projector and process manager
            // finish the batch it is in (its checkpoint commits with it).
            stop.cancel();
            for w in workers {
                let _ = w.await;
            }
        }
    }
    // Let in-flight work settle, then close the pool (flushes SQLite's WAL).
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FRESHLEDGER_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freshledger: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
