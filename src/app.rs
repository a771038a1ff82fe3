//! The composition root: opens the store, builds the write side once, and
//! wires the command API, GraphQL, the projectors, the process managers
//! and the timer scheduler into one process; or runs one maintenance
//! command.

use std::sync::Arc;
use std::time::Duration;

use command_api::AppState;
use domain::clock::{Clock, FixedClock, SystemClock};
use store::{Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use write_side::WriteSide;

use crate::cli::{self, Cli, Command, ProjectionsCommand, SagaSettings};
use crate::{analytics, audit, kafka};

/// Why the binary stops with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("{0}")]
    Config(String),
    #[error("{doing}: {source}")]
    Store {
        doing: &'static str,
        source: StoreError,
    },
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
}

pub(crate) fn store_err(doing: &'static str) -> impl FnOnce(StoreError) -> AppError {
    move |source| AppError::Store { doing, source }
}

pub(crate) async fn run(cli: Cli, metrics: crate::telemetry::Metrics) -> Result<(), AppError> {
    let file = cli::file_config(&cli.config).map_err(AppError::Config)?;
    // No subcommand is `serve`, with its settings from the environment.
    let default = <Cli as clap::Parser>::try_parse_from(["freshledger", "serve"])
        .map_err(|e| AppError::Config(e.to_string()))?
        .command
        .expect("serve was given");
    let command = cli.command.as_ref().unwrap_or(&default);
    // An export is verified offline: no database is opened.
    if let Command::Audit {
        command:
            cli::AuditCommand::Verify {
                file: Some(export),
                public_key,
                json,
                ..
            },
        ..
    } = command
    {
        return audit::verify_file(export, public_key, *json);
    }
    let store = Store::connect(cli::store_config(&cli, &file))
        .await
        .map_err(store_err("opening the event store"))?;
    store
        .migrate()
        .await
        .map_err(store_err("migrating the event store"))?;
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
            .map_err(store_err("preparing read models"))?;
    }
    match command {
        Command::Projections { command } => projections_command(&store, command).await?,
        Command::Relay { command } => kafka::command(&store, command).await?,
        Command::Analytics {
            clickhouse,
            command,
        } => {
            let config = cli::analytics_config(clickhouse, &file).map_err(AppError::Config)?;
            analytics::command(&store, config, command).await?
        }
        Command::Audit { audit, command } => {
            let url = store.config().url.clone();
            let key = cli::audit_key(audit, &file, &url, false).map_err(AppError::Config)?;
            let mut config = ::audit::AuditConfig::new(key);
            config.checkpoint_sink = cli::audit_config_sink(audit, &file);
            let chain = ::audit::Audit::new(&store, config)
                .await
                .map_err(store_err("preparing the audit chain"))?;
            audit::command(&store, &chain, command).await?
        }
        Command::Migrate => say!("migrated"),
        Command::DemoData => {
            let write = WriteSide::new(&store, Arc::new(SystemClock));
            let loaded = command_api::demo::load(&write)
                .await
                .map_err(store_err("loading demo data"))?;
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
            clock,
            saga,
            limits,
            rate,
            identity,
            kafka,
            clickhouse,
            audit,
        } => {
            let (limits, backdate_window) = cli::limits(limits, &file).map_err(AppError::Config)?;
            let manual = clock.as_deref() == Some("manual");
            let settings = Serve {
                listen: listen
                    .or(file.listen)
                    .unwrap_or_else(|| cli::DEFAULT_LISTEN.parse().expect("valid default")),
                demo_data: demo_data.or(file.demo_data).unwrap_or(true),
                warn_before: chrono::Duration::hours(
                    expiry_warning_hours
                        .or(file.expiry_warning_hours)
                        .unwrap_or(24) as i64,
                ),
                manual_clock: if manual {
                    // Resume where it stood before a restart.
                    let at = store
                        .manual_clock()
                        .await
                        .map_err(store_err("reading the manual clock"))?
                        .unwrap_or_else(chrono::Utc::now);
                    Some(Arc::new(FixedClock::at(at)))
                } else {
                    None
                },
                saga: cli::saga_settings(saga, &file).map_err(AppError::Config)?,
                limits,
                backdate_window,
                rate_limit: cli::rate_limit(rate, &file)
                    .await
                    .map_err(AppError::Config)?,
                identity: cli::identity_config(identity, &file).map_err(AppError::Config)?,
                relay: cli::relay_config(kafka, &file).map_err(AppError::Config)?,
                analytics: cli::analytics_config(clickhouse, &file).map_err(AppError::Config)?,
                audit: cli::audit_config(audit, &file, &store.config().url)
                    .map_err(AppError::Config)?,
            };
            serve(&store, settings, metrics).await?;
        }
    }
    // Let in-flight work settle, then close the pool (flushes SQLite's WAL).
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.close().await;
    Ok(())
}

/// What `serve` runs with, resolved.
struct Serve {
    listen: std::net::SocketAddr,
    demo_data: bool,
    warn_before: chrono::Duration,
    manual_clock: Option<Arc<FixedClock>>,
    saga: Option<SagaSettings>,
    limits: write_side::Limits,
    backdate_window: chrono::Duration,
    rate_limit: Option<Arc<command_api::limit::RateLimit>>,
    identity: identity::IdentityConfig,
    /// The Kafka relay, when brokers are configured.
    relay: Option<relay::RelayConfig>,
    /// The ClickHouse projector, when a URL is configured.
    analytics: Option<::analytics::AnalyticsConfig>,
    /// The audit chain, unless this process does not keep it.
    audit: Option<::audit::AuditConfig>,
}

async fn serve(
    store: &Store,
    settings: Serve,
    metrics: crate::telemetry::Metrics,
) -> Result<(), AppError> {
    let clock: Arc<dyn Clock> = match &settings.manual_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    let write = WriteSide::with_limits(store, clock, settings.limits);
    let (identity, bootstrapped) = identity::Identity::start(store, settings.identity)
        .await
        .map_err(|e| AppError::Config(format!("identity: {e}")))?;
    if let Some(admin) = bootstrapped {
        match admin.generated_password {
            // Shown once, on stdout only (never in the log).
            Some(password) => println!(
                "first start: created admin {} with the one-time password {password} (sign in and change it)",
                admin.email
            ),
            None => println!(
                "first start: created admin {} with the password from FRESHLEDGER_ADMIN_PASSWORD",
                admin.email
            ),
        }
    }
    if settings.demo_data {
        let loaded = command_api::demo::load(&write)
            .await
            .map_err(store_err("loading demo data"))?;
        if loaded.products > 0 {
            tracing::info!(
                products = loaded.products,
                batches = loaded.batches,
                "demo data loaded"
            );
        }
    }
    let addr = settings.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Io {
            doing: format!("binding {addr}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| AppError::Io {
        doing: "reading the bound address".into(),
        source,
    })?;
    let stop = CancellationToken::new();
    let mut workers = projections::spawn(store, stop.clone());
    workers.push(spawn_identity_pruning(identity.clone(), stop.clone()));
    workers.extend(spawn_process_managers(
        &write,
        settings.warn_before,
        settings.saga,
        stop.clone(),
    ));
    let mut state = AppState::new(write, identity.clone(), settings.manual_clock)
        .with_backdate_window(settings.backdate_window);
    let mut integrations: Vec<Arc<dyn command_api::integrations::Integration>> = Vec::new();
    if let Some(config) = settings.relay {
        let relay = relay::Relay::new(store, config)
            .await
            .map_err(store_err("preparing the Kafka relay"))?;
        workers.push(relay.spawn(stop.clone()));
        integrations.push(kafka::integration(&relay));
    }
    if let Some(config) = settings.analytics {
        let projector = ::analytics::Analytics::new(store, config)
            .await
            .map_err(store_err("preparing the ClickHouse projector"))?;
        workers.push(projector.spawn(stop.clone()));
        integrations.push(analytics::integration(&projector));
    }
    if let Some(config) = settings.audit {
        let chain = ::audit::Audit::new(store, config)
            .await
            .map_err(store_err("preparing the audit chain"))?;
        workers.push(chain.spawn(stop.clone()));
        integrations.push(audit::integration(&chain));
    }
    for i in &integrations {
        state = state.with_integration(i.clone());
    }
    let shutdown = shutdown_signal();
    // Tests and scripts read this line to find a port chosen by the OS.
    println!("freshledger listening on http://{bound}");
    let scrape = {
        let store = store.clone();
        axum::routing::get(move || async move {
            let text = metrics.render(&store, &integrations).await;
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        })
    };
    let app = command_api::edge(
        command_api::router(state)
            .merge(query_api::router(store, identity.clone()))
            .route("/metrics", scrape),
        identity,
        settings.rate_limit,
    );
    // With each connection's peer address: rate limits are per client.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| AppError::Io {
            doing: "serving".into(),
            source,
        })?;
    // Requests are done. Leave the members first, so the other processes
    // take over the leases this one is about to release; then let each
    // projector and process manager finish the batch it is in (its
    // checkpoint commits with it) and hand its lease back.
    store.leave();
    stop.cancel();
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

async fn projections_command(store: &Store, command: &ProjectionsCommand) -> Result<(), AppError> {
    match command {
        ProjectionsCommand::Status => {
            let head = store.head().await.map_err(store_err("reading the log"))?;
            say!("log head: {head}");
            let subscriptions = store
                .subscriptions()
                .await
                .map_err(store_err("reading subscriptions"))?;
            for s in subscriptions {
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
        ProjectionsCommand::Checksum => {
            for model in projections::Model::ALL {
                let sum = projections::checksum(store, model)
                    .await
                    .map_err(store_err("reading read models"))?;
                say!("{:<12} {sum}", model.name());
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let models = match name {
                None => projections::Model::ALL.to_vec(),
                Some(n) => vec![projections::Model::from_name(n).ok_or_else(|| {
                    let names: Vec<_> = projections::Model::ALL.iter().map(|m| m.name()).collect();
                    AppError::Config(format!(
                        "no read model named {n:?}: one of {}",
                        names.join(", ")
                    ))
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
            projections::rebuild_all(store, &models, |model, done, total| {
                if let Some((_, bar)) = shown.iter().find(|(m, _)| *m == model) {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            })
            .await
            .map_err(store_err("rebuilding"))?;
            for (model, bar) in shown {
                bar.finish();
                say!(
                    "{}: rebuilt and swapped in {:.1?}",
                    model.name(),
                    started.elapsed()
                );
            }
        }
    }
    Ok(())
}

/// Runs a reactor subscription until `stop`, while this process holds its
/// lease, restarting it after errors.
fn spawn_reactor(
    name: String,
    store: &Store,
    reactor: Arc<dyn store::Reactor>,
    concurrency: u32,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        store::Subscription::reactor(name, &store, reactor)
            .with_concurrency(concurrency as usize)
            .run_leased(&stop, |_| {})
            .await
    })
}

/// Hourly, identity deletes sessions, tokens and keys that can no longer
/// be used.
fn spawn_identity_pruning(identity: identity::Identity, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match identity.prune().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "identity: pruned ended sessions and tokens"),
                Err(e) => {
                    tracing::warn!(error = %e, "identity: pruning failed; retried in an hour")
                }
            }
        }
    })
}

/// The process managers (spoilage, the order saga) and the timer scheduler.
fn spawn_process_managers(
    write: &WriteSide,
    warn_before: chrono::Duration,
    saga: Option<SagaSettings>,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let store = &write.store;
    let spoilage = Arc::new(sagas::spoilage::Spoilage::new(write, warn_before));
    let mut workers = vec![spawn_reactor(
        "spoilage".into(),
        store,
        spoilage,
        1,
        stop.clone(),
    )];
    if let Some(s) = saga {
        let gateway = Arc::new(sagas::gateway::Metered(
            sagas::gateway::SimulatedGateway::new(s.outcome, s.latency),
        ));
        for shard in 0..s.shards {
            let saga = sagas::order::OrderSaga::new(write, gateway.clone(), s.config.clone())
                .sharded(shard, s.shards);
            workers.push(spawn_reactor(
                sagas::order::subscription_name(shard),
                store,
                Arc::new(saga),
                s.concurrency,
                stop.clone(),
            ));
        }
    }
    workers.push(tokio::spawn(sagas::timers::run_leased(
        store.clone(),
        write.timers.clone(),
        write.clock.clone(),
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
