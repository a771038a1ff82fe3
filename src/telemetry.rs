//! What an operator sees of the process: logs (text for a person, JSON
//! lines for a collector), traces (OpenTelemetry, exported over OTLP when
//! an endpoint is configured) and metrics (Prometheus text at `/metrics`).

use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use command_api::integrations::Integration;
use store::Store;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// For a person (colours at a terminal).
    Text,
    /// One JSON object per line, with the current span's fields (the
    /// request's or reaction's `correlation_id` and `trace_id`).
    Json,
}

/// Kept until exit: flushes the spans still buffered.
pub(crate) struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    pub(crate) fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the logger and the tracer. Spans always carry a W3C trace
/// context (it goes into the events' metadata and the logs); they leave
/// the process only when `otlp_endpoint` is set (OTLP over HTTP,
/// `…/v1/traces`).
pub(crate) fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Tracing, String> {
    let mut provider = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name("freshledger")
            .build(),
    );
    if let Some(endpoint) = otlp_endpoint {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("the OTLP exporter for {endpoint}: {e}"))?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FRESHLEDGER_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into());
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, not in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Each layer has its own filter: traces (and the trace context carried
    // into the events) do not depend on how much is logged.
    let spans = tracing_subscriber::EnvFilter::new(
        "info,sqlx=warn,tower_http=warn,hyper=warn,h2=warn,reqwest=warn,rdkafka=warn",
    );
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("freshledger"))
                .with_filter(spans),
        )
        .try_init()
        .map_err(|e| format!("installing the logger: {e}"))?;
    Ok(Tracing { provider })
}

/// Latency buckets, in seconds: 1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The Prometheus recorder behind the `metrics` facade every crate
/// records through, and what `/metrics` reads at each scrape.
#[derive(Clone)]
pub(crate) struct Metrics {
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
}

impl Metrics {
    pub(crate) fn install() -> Result<Metrics, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| format!("installing the metrics recorder: {e}"))?;
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        Ok(Metrics {
            handle,
            process: Arc::new(process),
        })
    }

    /// The Prometheus text of everything, with the gauges read now: the
    /// log's head, every subscription's position and lag, leases, the pool,
    /// the integrations, the process's memory and CPU.
    pub(crate) async fn render(
        &self,
        store: &Store,
        integrations: &[Arc<dyn Integration>],
    ) -> String {
        self.process.collect();
        let pool = store.pool_status();
        metrics::gauge!("freshledger_db_pool_connections", "state" => "idle").set(pool.idle);
        metrics::gauge!("freshledger_db_pool_connections", "state" => "in_use")
            .set(pool.open.saturating_sub(pool.idle));
        metrics::gauge!("freshledger_db_pool_max_connections").set(pool.max);
        let leases = store.leases();
        metrics::gauge!("freshledger_lease_members").set(leases.members as f64);
        for w in &leases.works {
            let held = w.state == store::WorkState::Active;
            metrics::gauge!("freshledger_lease_held", "lease" => w.name.clone()).set(held as u8);
        }
        if let Ok(progress) = store.progress(std::time::Duration::from_secs(1)).await {
            metrics::gauge!("freshledger_log_head_position").set(progress.head as f64);
            for s in &progress.subscriptions {
                let name = s.name.clone();
                metrics::gauge!("freshledger_subscription_position", "subscription" => name.clone())
                    .set(s.position as f64);
                metrics::gauge!("freshledger_subscription_lag_events", "subscription" => name.clone())
                    .set(progress.lag(s) as f64);
                metrics::gauge!("freshledger_subscription_parked", "subscription" => name)
                    .set(s.parked as u8);
            }
        }
        for status in command_api::integrations::statuses(integrations).await {
            let name = status.name;
            metrics::gauge!("freshledger_integration_healthy", "integration" => name.clone())
                .set(status.healthy as u8);
            if let Some(lag) = status.lag {
                metrics::gauge!("freshledger_integration_lag_events", "integration" => name.clone())
                    .set(lag as f64);
            }
            if let Some(p) = status.position {
                metrics::gauge!("freshledger_integration_position", "integration" => name)
                    .set(p as f64);
            }
        }
        self.handle.render()
    }
}

/// Help text for every metric Freshledger records.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by method and route template"
    );
    describe_counter!("freshledger_commands_total", "Commands handled, by aggregate and outcome (appended, unchanged, rejected, conflict, error)");
    describe_counter!(
        "freshledger_command_conflicts_total",
        "Optimistic-concurrency conflicts retried, by aggregate"
    );
    describe_histogram!(
        "freshledger_command_duration_seconds",
        Unit::Seconds,
        "Time to decide and append a command, retries included"
    );
    describe_counter!(
        "freshledger_events_appended_total",
        "Events appended by this process, by stream type"
    );
    describe_gauge!(
        "freshledger_log_head_position",
        "The log's head: the highest position safe to read up to"
    );
    describe_gauge!(
        "freshledger_subscription_position",
        "A subscriber's checkpoint"
    );
    describe_gauge!(
        "freshledger_subscription_lag_events",
        "Events a subscriber has yet to apply"
    );
    describe_gauge!(
        "freshledger_subscription_parked",
        "1 while a subscriber is parked at an event that keeps failing"
    );
    describe_gauge!(
        "freshledger_lease_members",
        "Serving processes sharing the database's leased work"
    );
    describe_gauge!(
        "freshledger_lease_held",
        "1 while this process holds the lease"
    );
    describe_counter!(
        "freshledger_saga_steps_total",
        "Events the order saga reacted to, by event type"
    );
    describe_counter!(
        "freshledger_saga_compensations_total",
        "Compensations the saga made, by kind"
    );
    describe_gauge!(
        "freshledger_timers_due",
        "Timers due at the scheduler's last look"
    );
    describe_counter!(
        "freshledger_timers_fired_total",
        "Timers fired by this process"
    );
    describe_counter!(
        "freshledger_gateway_calls_total",
        "Payment gateway calls, by gateway, operation and outcome"
    );
    describe_histogram!(
        "freshledger_gateway_call_duration_seconds",
        Unit::Seconds,
        "Payment gateway call latency"
    );
    describe_gauge!(
        "freshledger_db_pool_connections",
        "Database connections, by state (idle, in_use)"
    );
    describe_gauge!(
        "freshledger_db_pool_max_connections",
        "The most connections the pool opens"
    );
    describe_gauge!(
        "freshledger_integration_healthy",
        "1 while an optional integration works (or stands by behind a process that does)"
    );
    describe_gauge!(
        "freshledger_integration_lag_events",
        "Events an integration has yet to pass on"
    );
    describe_gauge!(
        "freshledger_integration_position",
        "An integration's checkpoint in the log"
    );
}
