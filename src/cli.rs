//! The command line, the environment and the optional TOML file, resolved
//! into settings (flag > environment > file > default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use store::StoreConfig;

pub(crate) const DEFAULT_DATABASE_URL: &str = "sqlite://data/freshledger.db";
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Freshledger: an event-sourced backend for a fresh-produce marketplace.
///
/// Every setting can come from a flag, an environment variable, or the
/// optional TOML file given with --config (in that order of precedence).
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// TOML file with any of: database_url, listen, snapshot_every,
    /// max_connections, demo_data, expiry_warning_hours, order_saga,
    /// reservation_hold_minutes, shelf_life_margin_hours, gateway_outcome,
    /// gateway_latency_ms, saga_shards, saga_concurrency,
    /// slot_horizon_days, backdate_window_hours, rate_limit_per_second,
    /// rate_limit_burst, redis_url, redis_namespace, trusted_proxies,
    /// auth_rate_limit_per_minute, auth_rate_limit_burst,
    /// access_token_ttl_minutes, mail_dir, admin_email, oidc_issuer,
    /// oidc_audience, oidc_jwks_url, oidc_role_claim, oidc_roles,
    /// oidc_warehouses_claim, kafka_brokers, kafka_topic_prefix,
    /// kafka_partitions, kafka_replication_factor, kafka_max_message_bytes,
    /// kafka_options, clickhouse_url, clickhouse_user, clickhouse_database,
    /// audit_chain, audit_key_file, audit_checkpoint_events, audit_checkpoint_seconds,
    /// audit_checkpoint_file (the flags' names with underscores).
    #[arg(long, env = "FRESHLEDGER_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,

    /// Event store: sqlite://path/to/file.db (embedded, the default:
    /// sqlite://data/freshledger.db) or postgres://user@host:port/db.
    #[arg(long, env = "FRESHLEDGER_DATABASE_URL", global = true)]
    pub(crate) database_url: Option<String>,

    /// Snapshot aggregates every N events; 0 turns snapshots off [default: 100].
    #[arg(long, env = "FRESHLEDGER_SNAPSHOT_EVERY", global = true)]
    pub(crate) snapshot_every: Option<usize>,

    /// Largest database connection pool [default: 16].
    #[arg(long, env = "FRESHLEDGER_MAX_CONNECTIONS", global = true)]
    pub(crate) max_connections: Option<u32>,

    /// Log lines on stderr: `text` for a person, or `json` (one object per
    /// line, with the request's or reaction's correlation_id and trace_id)
    /// for a log collector. Levels: FRESHLEDGER_LOG (e.g. `info,store=debug`).
    #[arg(
        long,
        env = "FRESHLEDGER_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    pub(crate) log_format: crate::telemetry::LogFormat,

    /// Export traces over OTLP/HTTP to this collector (e.g.
    /// http://jaeger:4318); off when unset.
    #[arg(long, env = "FRESHLEDGER_OTLP_ENDPOINT", global = true)]
    pub(crate) otlp_endpoint: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
pub(crate) enum Command {
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
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        rate: RateArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        #[command(flatten)]
        audit: AuditArgs,
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
    /// The Kafka relay: its checkpoint and lag, dead letters, retry, skip.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// ClickHouse analytics: tables' positions, replays, reports.
    Analytics {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
    /// The audit trail: the hash chain's state, verification (online or of
    /// an export, offline), exports, checkpoints, lot recall.
    Audit {
        #[command(flatten)]
        audit: AuditArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Where the chain stands, its last checkpoint and the signing key.
    Status,
    /// Bring the chain up to the head now and sign a checkpoint there
    /// (what a running server does continuously).
    Sync,
    /// Recompute the chain, check every link and signature, and name the
    /// first bad position and why. Exit status 1 when anything is wrong.
    Verify {
        /// Checkpoints kept outside the database (JSON lines, as
        /// --audit-checkpoint-file or `audit checkpoints` write them):
        /// verification starts at the first and must meet every one.
        #[arg(long)]
        from_checkpoint: Option<PathBuf>,
        /// The public key checkpoints must be signed with (PEM, hex or
        /// base64url) [default: the configured signing key's].
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Verify this export instead of the database (no database is
        /// opened).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write positions FROM..=TO, their links and checkpoints as a
    /// self-contained JSON-lines file (`audit verify --file` checks it).
    Export {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        /// The file to write [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print the signed checkpoints as JSON lines.
    Checkpoints {
        /// Only those after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Print the public key of the configured signing key (PEM).
    PublicKey,
    /// Every order line a batch (or a supplier's batches received in a
    /// period) fed, and the delivery and customer each reached.
    Recall {
        #[arg(
            long,
            required_unless_present = "supplier",
            conflicts_with = "supplier"
        )]
        batch: Option<String>,
        #[arg(long, requires_all = ["from", "to"])]
        supplier: Option<String>,
        /// Received from (RFC 3339 or a date).
        #[arg(long, value_parser = parse_moment)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Received before (RFC 3339 or a date).
        #[arg(long, value_parser = parse_moment)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// csv or json [default: csv].
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
    },
}

/// The audit chain's settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct AuditArgs {
    /// Keep the audit chain in this process (with several processes on one
    /// database, one keeps it and the others stand by). Off, nothing keeps
    /// it here; `freshledger audit sync` catches it up [default: true].
    #[arg(long, env = "FRESHLEDGER_AUDIT_CHAIN")]
    pub(crate) audit_chain: Option<bool>,
    /// The Ed25519 key that signs checkpoints (PKCS#8 PEM, e.g. from
    /// `openssl genpkey -algorithm ed25519`); FRESHLEDGER_AUDIT_KEY may
    /// hold the PEM itself. [default: on SQLite, audit-key.pem beside the
    /// database, generated on first start; on Postgres, none: checkpoints
    /// are recorded unsigned]
    #[arg(long, env = "FRESHLEDGER_AUDIT_KEY_FILE")]
    pub(crate) audit_key_file: Option<PathBuf>,
    /// Sign a checkpoint at least every this many events [default: 1000].
    #[arg(long, env = "FRESHLEDGER_AUDIT_CHECKPOINT_EVENTS", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) audit_checkpoint_events: Option<u64>,
    /// ... and at least this often while the log grows, in seconds
    /// [default: 60].
    #[arg(long, env = "FRESHLEDGER_AUDIT_CHECKPOINT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) audit_checkpoint_seconds: Option<u64>,
    /// Also append every checkpoint to this file (JSON lines; `-` for
    /// standard output), so they live outside the database.
    #[arg(long, env = "FRESHLEDGER_AUDIT_CHECKPOINT_FILE")]
    pub(crate) audit_checkpoint_file: Option<PathBuf>,
}

/// Where the embedded default keeps its audit key: beside the database.
fn default_key_path(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://")?;
    let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
    Some(path.with_file_name("audit-key.pem"))
}

/// The signing key: FRESHLEDGER_AUDIT_KEY (the PEM), the key file, or on
/// SQLite the default file (generated when `create`, with a warning).
pub(crate) fn audit_key(
    args: &AuditArgs,
    file: &FileConfig,
    database_url: &str,
    create: bool,
) -> Result<Option<audit::AuditKey>, String> {
    if let Some(pem) = std::env::var("FRESHLEDGER_AUDIT_KEY")
        .ok()
        .filter(|p| !p.trim().is_empty())
    {
        return audit::AuditKey::from_pem(&pem)
            .map(Some)
            .map_err(|e| format!("FRESHLEDGER_AUDIT_KEY: {e}"));
    }
    if let Some(path) = args.audit_key_file.clone().or(file.audit_key_file.clone()) {
        return audit::AuditKey::load_or_create(&path, false)
            .map(|(k, _)| Some(k))
            .map_err(|e| format!("audit_key_file: {e} (create one with `openssl genpkey -algorithm ed25519 -out {}`)", path.display()));
    }
    let Some(path) = default_key_path(database_url) else {
        return Ok(None);
    };
    if !create && !path.exists() {
        return Ok(None);
    }
    let (key, created) = audit::AuditKey::load_or_create(&path, create)?;
    if created {
        tracing::warn!(
            path = %path.display(),
            public_key = %key.public().encoded(),
            "generated a new audit signing key: keep its public key (`freshledger audit public-key`) somewhere this machine cannot change, and configure a key of your own (--audit-key-file) in production"
        );
    }
    Ok(Some(key))
}

/// Where checkpoints are copied besides the database.
pub(crate) fn audit_config_sink(args: &AuditArgs, file: &FileConfig) -> audit::CheckpointSink {
    match args
        .audit_checkpoint_file
        .clone()
        .or(file.audit_checkpoint_file.clone())
    {
        None => audit::CheckpointSink::None,
        Some(p) if p.as_os_str() == "-" => audit::CheckpointSink::Stdout,
        Some(p) => audit::CheckpointSink::File(p),
    }
}

/// The audit chain's settings, resolved; `None` when this process does
/// not keep the chain.
pub(crate) fn audit_config(
    args: &AuditArgs,
    file: &FileConfig,
    database_url: &str,
) -> Result<Option<audit::AuditConfig>, String> {
    if !args.audit_chain.or(file.audit_chain).unwrap_or(true) {
        return Ok(None);
    }
    let key = audit_key(args, file, database_url, true)?;
    if key.is_none() {
        tracing::warn!("no audit signing key configured (--audit-key-file or FRESHLEDGER_AUDIT_KEY): the chain's checkpoints are recorded unsigned");
    }
    let mut config = audit::AuditConfig::new(key);
    if let Some(n) = args
        .audit_checkpoint_events
        .or(file.audit_checkpoint_events)
    {
        config.checkpoint_every = within("audit_checkpoint_events", n, 1..=10_000_000)?;
    }
    if let Some(s) = args
        .audit_checkpoint_seconds
        .or(file.audit_checkpoint_seconds)
    {
        config.checkpoint_period =
            Duration::from_secs(within("audit_checkpoint_seconds", s, 1..=86_400)?);
    }
    config.checkpoint_sink = audit_config_sink(args, file);
    Ok(Some(config))
}

#[derive(Debug, Subcommand)]
pub(crate) enum AnalyticsCommand {
    /// Each table's position in the log and its lag, and the last replay.
    Status {
        /// Also count each table's rows and compute an order-independent
        /// checksum of them (to compare two replays).
        #[arg(long)]
        checksums: bool,
    },
    /// Build tables anew from the log beside the live ones, then swap them
    /// in at once; the live projector continues from where the replay
    /// stopped. Into another --clickhouse-database, the tables keep the log
    /// as it stood ("what did we know then").
    Replay {
        /// Up to and including this position [default: the head].
        #[arg(long, conflicts_with = "as_of")]
        to_position: Option<u64>,
        /// The log as it stood at this moment (RFC 3339, or a date: its
        /// midnight UTC).
        #[arg(long, value_parser = parse_moment)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// Only these tables (comma-separated): events, order_lines,
        /// stock_movements, payments, deliveries [default: all].
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Run a committed report (see `analytics reports`).
    Report {
        /// The report's name.
        name: String,
        /// From this moment, inclusive (RFC 3339, or a date: its midnight
        /// UTC) [default: the beginning].
        #[arg(long, value_parser = parse_moment)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Until this moment, exclusive; for inventory_aging the moment
        /// stock is counted at [default: no end; inventory_aging: now].
        #[arg(long, value_parser = parse_moment)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this warehouse.
        #[arg(long)]
        warehouse: Option<String>,
        /// table (aligned columns), csv or json (an array of objects).
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
    },
    /// The committed reports and what each answers.
    Reports,
    /// Print the Grafana dashboard over the reports (JSON; the one in
    /// deploy/grafana/dashboards is this for the database `freshledger`).
    Dashboard {
        /// The ClickHouse database its queries read.
        #[arg(long, default_value = "freshledger")]
        database: String,
    },
}

/// A moment on the command line: RFC 3339, or a date (its midnight UTC).
pub(crate) fn parse_moment(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| {
            format!("{s:?} is not a date (2026-11-30) or an RFC 3339 time (2026-11-30T12:00:00Z)")
        })
}

#[derive(Debug, Subcommand)]
pub(crate) enum RelayCommand {
    /// The relay's checkpoint, the head of the log, the lag, and the dead
    /// letters holding streams back.
    Status,
    /// Events Kafka refused (poison) and those waiting behind them.
    DeadLetters {
        /// Also those already skipped or delivered.
        #[arg(long)]
        all: bool,
    },
    /// Send the poison event at POSITION again, then the events of its
    /// stream that wait behind it (a running relay picks it up).
    Retry { position: u64 },
    /// Give up the poison event at POSITION; the events of its stream that
    /// wait behind it are sent.
    Skip { position: u64 },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectionsCommand {
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

/// The bounds the shop sets on what it accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LimitArgs {
    /// Accept delivery slots starting at most this many days ahead
    /// [default: 14].
    #[arg(long, env = "FRESHLEDGER_SLOT_HORIZON_DAYS", value_parser = clap::value_parser!(u32).range(1..=365))]
    pub(crate) slot_horizon_days: Option<u32>,
    /// Accept an X-Occurred-At at most this many hours in the past (late
    /// uploads from the warehouse floor) [default: 72].
    #[arg(long, env = "FRESHLEDGER_BACKDATE_WINDOW_HOURS", value_parser = clap::value_parser!(u32).range(0..=8760))]
    pub(crate) backdate_window_hours: Option<u32>,
}

/// Rate limits per client address.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RateArgs {
    /// Requests a second each client address may make, steadily; 0 turns
    /// rate limiting off [default: 100].
    #[arg(long, env = "FRESHLEDGER_RATE_LIMIT_PER_SECOND")]
    pub(crate) rate_limit_per_second: Option<u32>,
    /// Requests a client address may make at once above the steady rate
    /// [default: 200].
    #[arg(long, env = "FRESHLEDGER_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_limit_burst: Option<u32>,
    /// Redis (redis://host:6379/) to share rate limits between server
    /// processes; without it each process keeps its own.
    #[arg(long, env = "FRESHLEDGER_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Prefix of this deployment's keys in Redis [default: freshledger].
    #[arg(long, env = "FRESHLEDGER_REDIS_NAMESPACE")]
    pub(crate) redis_namespace: Option<String>,
    /// Reverse proxies (comma-separated addresses or CIDR ranges, e.g.
    /// 10.0.0.0/8) whose X-Forwarded-For names the client for rate limits;
    /// from anyone else the header is ignored [default: none].
    #[arg(long, env = "FRESHLEDGER_TRUSTED_PROXIES")]
    pub(crate) trusted_proxies: Option<String>,
    /// Requests a minute each client address may make to the sign-in and
    /// token routes (/api/v1/auth/…), steadily; 0 turns this limit off
    /// [default: 20].
    #[arg(long, env = "FRESHLEDGER_AUTH_RATE_LIMIT_PER_MINUTE")]
    pub(crate) auth_rate_limit_per_minute: Option<u32>,
    /// Requests at once above that steady rate [default: 10].
    #[arg(long, env = "FRESHLEDGER_AUTH_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) auth_rate_limit_burst: Option<u32>,
}

/// The rate limiter the settings ask for (`None`: off).
pub(crate) async fn rate_limit(
    args: &RateArgs,
    file: &FileConfig,
) -> Result<Option<std::sync::Arc<command_api::limit::RateLimit>>, String> {
    let quota = command_api::limit::Quota::per_second(
        args.rate_limit_per_second
            .or(file.rate_limit_per_second)
            .unwrap_or(100),
        args.rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(200)
            .max(1),
    );
    let auth = command_api::limit::Quota::per_minute(
        args.auth_rate_limit_per_minute
            .or(file.auth_rate_limit_per_minute)
            .unwrap_or(20),
        args.auth_rate_limit_burst
            .or(file.auth_rate_limit_burst)
            .unwrap_or(10)
            .max(1),
    );
    let limit = match args.redis_url.clone().or(file.redis_url.clone()) {
        Some(url) => {
            let namespace = args
                .redis_namespace
                .clone()
                .or(file.redis_namespace.clone())
                .unwrap_or_else(|| "freshledger".into());
            command_api::limit::RateLimit::shared(quota, auth, &url, &namespace)
                .await
                .map_err(|e| format!("redis_url {url}: {e}"))?
        }
        None => command_api::limit::RateLimit::local(quota, auth),
    };
    let proxies = args
        .trusted_proxies
        .clone()
        .or(file.trusted_proxies.clone())
        .unwrap_or_default();
    let proxies = command_api::limit::proxies(&proxies)
        .map_err(|p| format!("trusted_proxies: {p:?} is not an address or CIDR range"))?;
    Ok(limit.map(|l| std::sync::Arc::new(l.trusting(proxies))))
}

/// The order fulfilment saga's settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct SagaArgs {
    /// Run the order saga: allocate, take payment, pick, ship, capture and
    /// compensate automatically. Off, orders move only by explicit commands
    /// (back-office tools, tests of single steps) [default: true].
    #[arg(long, env = "FRESHLEDGER_ORDER_SAGA")]
    pub(crate) order_saga: Option<bool>,
    /// Cancel a card order not paid within this many minutes [default: 15].
    #[arg(long, env = "FRESHLEDGER_RESERVATION_HOLD_MINUTES")]
    pub(crate) reservation_hold_minutes: Option<u32>,
    /// Allocate only from batches with at least this many hours of shelf
    /// life left at the end of the delivery slot [default: 24].
    #[arg(long, env = "FRESHLEDGER_SHELF_LIFE_MARGIN_HOURS")]
    pub(crate) shelf_life_margin_hours: Option<u32>,
    /// The simulated payment gateway's answer to authorizations: approve,
    /// decline, timeout, or by-amount (minor units ending in 51 decline, in
    /// 52 time out) [default: approve].
    #[arg(long, env = "FRESHLEDGER_GATEWAY_OUTCOME")]
    pub(crate) gateway_outcome: Option<sagas::gateway::Outcome>,
    /// The simulated gateway's latency per call, in milliseconds [default: 0].
    #[arg(long, env = "FRESHLEDGER_GATEWAY_LATENCY_MS")]
    pub(crate) gateway_latency_ms: Option<u64>,
    /// Run the order saga as this many concurrent shards (orders spread by
    /// id; each shard a subscription of its own) [default: 4].
    #[arg(long, env = "FRESHLEDGER_SAGA_SHARDS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) saga_shards: Option<u32>,
    /// Orders each saga shard works on at once (different orders' events in
    /// a batch; one order's always in log order). 1: strictly in log
    /// order, so competing orders are served first come, first served
    /// [default: 8].
    #[arg(long, env = "FRESHLEDGER_SAGA_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) saga_concurrency: Option<u32>,
}

/// Sign-in: our own accounts and tokens, and an optional external OpenID
/// Connect issuer. The first start creates an admin; its password comes
/// from FRESHLEDGER_ADMIN_PASSWORD (environment only: never a flag or a
/// file), or is generated and printed once.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct IdentityArgs {
    /// Lifetime of an access token, in minutes [default: 15].
    #[arg(long, env = "FRESHLEDGER_ACCESS_TOKEN_TTL_MINUTES", value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub(crate) access_token_ttl_minutes: Option<u32>,
    /// Directory where messages to account holders (email verification,
    /// password reset) are written, one .eml file each [default: data/mail].
    #[arg(long, env = "FRESHLEDGER_MAIL_DIR")]
    pub(crate) mail_dir: Option<PathBuf>,
    /// Email of the admin the first start creates [default:
    /// admin@freshledger.local].
    #[arg(long, env = "FRESHLEDGER_ADMIN_EMAIL")]
    pub(crate) admin_email: Option<String>,
    /// Accept access tokens of this OpenID Connect issuer (its `iss`);
    /// off when absent.
    #[arg(long, env = "FRESHLEDGER_OIDC_ISSUER")]
    pub(crate) oidc_issuer: Option<String>,
    /// The `aud` its tokens must carry [default: freshledger-api].
    #[arg(long, env = "FRESHLEDGER_OIDC_AUDIENCE")]
    pub(crate) oidc_audience: Option<String>,
    /// Its JWKS URL [default: the jwks_uri of
    /// <issuer>/.well-known/openid-configuration].
    #[arg(long, env = "FRESHLEDGER_OIDC_JWKS_URL")]
    pub(crate) oidc_jwks_url: Option<String>,
    /// The claim holding its roles, dot-separated into nested objects
    /// (realm_access.roles for Keycloak) [default: roles].
    #[arg(long, env = "FRESHLEDGER_OIDC_ROLE_CLAIM")]
    pub(crate) oidc_role_claim: Option<String>,
    /// Its roles mapped to ours, first match wins: theirs=ours,…
    /// [default: admin=admin,seller=seller,delivery=delivery,customer=customer].
    #[arg(long, env = "FRESHLEDGER_OIDC_ROLES")]
    pub(crate) oidc_roles: Option<String>,
    /// The claim listing a seller's warehouses [default: warehouses].
    #[arg(long, env = "FRESHLEDGER_OIDC_WAREHOUSES_CLAIM")]
    pub(crate) oidc_warehouses_claim: Option<String>,
}

/// The Kafka relay (off unless brokers are given).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...): publish every event, and
    /// the public integration events, to Kafka. Off when absent.
    #[arg(long, env = "FRESHLEDGER_KAFKA_BROKERS")]
    pub(crate) kafka_brokers: Option<String>,
    /// Prefix of the relay's topics ({prefix}.order.v1, ...,
    /// {prefix}.integration.v1) [default: freshledger].
    #[arg(long, env = "FRESHLEDGER_KAFKA_TOPIC_PREFIX")]
    pub(crate) kafka_topic_prefix: Option<String>,
    /// Partitions of the topics the relay creates [default: 6].
    #[arg(long, env = "FRESHLEDGER_KAFKA_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) kafka_partitions: Option<u32>,
    /// Replicas of the topics the relay creates [default: 1].
    #[arg(long, env = "FRESHLEDGER_KAFKA_REPLICATION_FACTOR", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub(crate) kafka_replication_factor: Option<u32>,
    /// Largest message sent; larger events are dead-lettered. At most the
    /// broker's message.max.bytes [default: 1000000].
    #[arg(long, env = "FRESHLEDGER_KAFKA_MAX_MESSAGE_BYTES", value_parser = clap::value_parser!(u64).range(1024..=100_000_000))]
    pub(crate) kafka_max_message_bytes: Option<u64>,
    /// A further librdkafka setting, key=value (security.protocol,
    /// sasl.mechanism, compression.type, ...); repeat the flag, or separate
    /// with commas in the environment.
    #[arg(
        long = "kafka-option",
        env = "FRESHLEDGER_KAFKA_OPTIONS",
        value_delimiter = ','
    )]
    pub(crate) kafka_options: Vec<String>,
}

/// The relay's settings; `None` when no brokers are configured.
pub(crate) fn relay_config(
    args: &KafkaArgs,
    file: &FileConfig,
) -> Result<Option<relay::RelayConfig>, String> {
    let Some(brokers) = args
        .kafka_brokers
        .clone()
        .or(file.kafka_brokers.clone())
        .filter(|b| !b.trim().is_empty())
    else {
        return Ok(None);
    };
    let mut config = relay::RelayConfig::new(brokers.trim());
    if let Some(p) = args
        .kafka_topic_prefix
        .clone()
        .or(file.kafka_topic_prefix.clone())
    {
        let ok = !p.is_empty()
            && p.len() <= 200
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(format!(
                "kafka_topic_prefix: {p:?} may hold only letters, digits, '.', '_' and '-'"
            ));
        }
        config.topic_prefix = p;
    }
    if let Some(n) = args.kafka_partitions.or(file.kafka_partitions) {
        config.partitions = within("kafka_partitions", n, 1..=10_000)? as i32;
    }
    if let Some(n) = args
        .kafka_replication_factor
        .or(file.kafka_replication_factor)
    {
        config.replication_factor = within("kafka_replication_factor", n, 1..=32)? as i32;
    }
    if let Some(n) = args
        .kafka_max_message_bytes
        .or(file.kafka_max_message_bytes)
    {
        config.max_message_bytes =
            within("kafka_max_message_bytes", n, 1024..=100_000_000)? as usize;
    }
    let options = if args.kafka_options.is_empty() {
        file.kafka_options.clone().unwrap_or_default()
    } else {
        args.kafka_options.clone()
    };
    for option in options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        let (k, v) = option
            .split_once('=')
            .ok_or_else(|| format!("kafka option {option:?} is not key=value"))?;
        config
            .options
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some(config))
}

/// ClickHouse analytics (off unless a URL is given). The password comes
/// from FRESHLEDGER_CLICKHOUSE_PASSWORD (environment only).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ClickHouseArgs {
    /// ClickHouse's HTTP interface (http://host:8123): project the log into
    /// analytics tables there. Off when absent.
    #[arg(long, env = "FRESHLEDGER_CLICKHOUSE_URL")]
    pub(crate) clickhouse_url: Option<String>,
    /// The ClickHouse user [default: ClickHouse's `default`].
    #[arg(long, env = "FRESHLEDGER_CLICKHOUSE_USER")]
    pub(crate) clickhouse_user: Option<String>,
    /// The database of the analytics tables, created if missing
    /// [default: freshledger].
    #[arg(long, env = "FRESHLEDGER_CLICKHOUSE_DATABASE")]
    pub(crate) clickhouse_database: Option<String>,
}

/// The analytics settings; `None` when no ClickHouse URL is configured.
pub(crate) fn analytics_config(
    args: &ClickHouseArgs,
    file: &FileConfig,
) -> Result<Option<analytics::AnalyticsConfig>, String> {
    let Some(url) = args
        .clickhouse_url
        .clone()
        .or(file.clickhouse_url.clone())
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let mut config = analytics::AnalyticsConfig::new(url.trim());
    config.user = args
        .clickhouse_user
        .clone()
        .or(file.clickhouse_user.clone());
    config.password = std::env::var("FRESHLEDGER_CLICKHOUSE_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(db) = args
        .clickhouse_database
        .clone()
        .or(file.clickhouse_database.clone())
    {
        config.database = db;
    }
    config.check()?;
    Ok(Some(config))
}

/// Where messages to account holders go unless configured.
pub(crate) const DEFAULT_MAIL_DIR: &str = "data/mail";

/// Identity's settings.
pub(crate) fn identity_config(
    args: &IdentityArgs,
    file: &FileConfig,
) -> Result<identity::IdentityConfig, String> {
    let mut config = identity::IdentityConfig::default();
    if let Some(m) = args
        .access_token_ttl_minutes
        .or(file.access_token_ttl_minutes)
    {
        let m = within("access_token_ttl_minutes", m, 1..=1440)?;
        config.access_ttl = chrono::Duration::minutes(m.into());
    }
    config.mail_dir = Some(
        args.mail_dir
            .clone()
            .or(file.mail_dir.clone())
            .unwrap_or_else(|| DEFAULT_MAIL_DIR.into()),
    );
    if let Some(e) = args.admin_email.clone().or(file.admin_email.clone()) {
        config.bootstrap_email = e;
    }
    config.bootstrap_password = std::env::var("FRESHLEDGER_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(issuer) = args.oidc_issuer.clone().or(file.oidc_issuer.clone()) {
        let roles_text = args
            .oidc_roles
            .clone()
            .or(file.oidc_roles.clone())
            .unwrap_or_else(|| {
                "admin=admin,seller=seller,delivery=delivery,customer=customer".into()
            });
        let mut roles = Vec::new();
        for pair in roles_text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (theirs, ours) = pair
                .split_once('=')
                .ok_or_else(|| format!("oidc_roles: {pair:?} is not theirs=ours"))?;
            let ours = identity::person_role(ours.trim()).ok_or_else(|| {
                format!("oidc_roles: {ours:?} is not customer, seller, delivery or admin")
            })?;
            roles.push((theirs.trim().to_string(), ours));
        }
        config.oidc = Some(identity::OidcConfig {
            issuer,
            audience: args
                .oidc_audience
                .clone()
                .or(file.oidc_audience.clone())
                .unwrap_or_else(|| "freshledger-api".into()),
            jwks_url: args.oidc_jwks_url.clone().or(file.oidc_jwks_url.clone()),
            role_claim: args
                .oidc_role_claim
                .clone()
                .or(file.oidc_role_claim.clone())
                .unwrap_or_else(|| "roles".into()),
            roles,
            warehouses_claim: args
                .oidc_warehouses_claim
                .clone()
                .or(file.oidc_warehouses_claim.clone())
                .unwrap_or_else(|| "warehouses".into()),
            refresh_cooldown: Duration::from_secs(10),
        });
    }
    Ok(config)
}

/// `value` of setting `key` if it lies in `range`: flags and environment
/// variables are bounded by clap already, values from the file here.
fn within<T>(key: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{key}: {value} is not in {}..={}",
            range.start(),
            range.end()
        ))
    }
}

/// The optional configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) database_url: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) snapshot_every: Option<usize>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) demo_data: Option<bool>,
    pub(crate) expiry_warning_hours: Option<u32>,
    pub(crate) order_saga: Option<bool>,
    pub(crate) reservation_hold_minutes: Option<u32>,
    pub(crate) shelf_life_margin_hours: Option<u32>,
    pub(crate) gateway_outcome: Option<String>,
    pub(crate) gateway_latency_ms: Option<u64>,
    pub(crate) saga_shards: Option<u32>,
    pub(crate) saga_concurrency: Option<u32>,
    pub(crate) slot_horizon_days: Option<u32>,
    pub(crate) backdate_window_hours: Option<u32>,
    pub(crate) rate_limit_per_second: Option<u32>,
    pub(crate) rate_limit_burst: Option<u32>,
    pub(crate) redis_url: Option<String>,
    pub(crate) redis_namespace: Option<String>,
    pub(crate) trusted_proxies: Option<String>,
    pub(crate) auth_rate_limit_per_minute: Option<u32>,
    pub(crate) auth_rate_limit_burst: Option<u32>,
    pub(crate) access_token_ttl_minutes: Option<u32>,
    pub(crate) mail_dir: Option<PathBuf>,
    pub(crate) admin_email: Option<String>,
    pub(crate) oidc_issuer: Option<String>,
    pub(crate) oidc_audience: Option<String>,
    pub(crate) oidc_jwks_url: Option<String>,
    pub(crate) oidc_role_claim: Option<String>,
    pub(crate) oidc_roles: Option<String>,
    pub(crate) oidc_warehouses_claim: Option<String>,
    pub(crate) kafka_brokers: Option<String>,
    pub(crate) kafka_topic_prefix: Option<String>,
    pub(crate) kafka_partitions: Option<u32>,
    pub(crate) kafka_replication_factor: Option<u32>,
    pub(crate) kafka_max_message_bytes: Option<u64>,
    pub(crate) kafka_options: Option<Vec<String>>,
    pub(crate) clickhouse_url: Option<String>,
    pub(crate) clickhouse_user: Option<String>,
    pub(crate) clickhouse_database: Option<String>,
    pub(crate) audit_chain: Option<bool>,
    pub(crate) audit_key_file: Option<PathBuf>,
    pub(crate) audit_checkpoint_events: Option<u64>,
    pub(crate) audit_checkpoint_seconds: Option<u64>,
    pub(crate) audit_checkpoint_file: Option<PathBuf>,
}

pub(crate) fn file_config(path: &Option<PathBuf>) -> Result<FileConfig, String> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The event store's settings.
pub(crate) fn store_config(cli: &Cli, file: &FileConfig) -> StoreConfig {
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
    config
}

/// The write side's limits and the command API's backdating window.
pub(crate) fn limits(
    args: &LimitArgs,
    file: &FileConfig,
) -> Result<(write_side::Limits, chrono::Duration), String> {
    let days = args
        .slot_horizon_days
        .or(file.slot_horizon_days)
        .unwrap_or(domain::order::DEFAULT_SLOT_HORIZON_DAYS);
    let days = within("slot_horizon_days", days, 1..=365)?;
    let hours = args
        .backdate_window_hours
        .or(file.backdate_window_hours)
        .unwrap_or(command_api::DEFAULT_BACKDATE_WINDOW_HOURS);
    let hours = within("backdate_window_hours", hours, 0..=8760)?;
    Ok((
        write_side::Limits {
            slot_horizon: chrono::Duration::days(days.into()),
        },
        chrono::Duration::hours(hours.into()),
    ))
}

/// The order saga's settings (flag > env > file > default); `None` when it
/// is switched off.
pub(crate) struct SagaSettings {
    pub(crate) shards: u32,
    pub(crate) concurrency: u32,
    pub(crate) config: sagas::order::SagaConfig,
    pub(crate) outcome: sagas::gateway::Outcome,
    pub(crate) latency: Duration,
}

pub(crate) fn saga_settings(
    args: &SagaArgs,
    file: &FileConfig,
) -> Result<Option<SagaSettings>, String> {
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
