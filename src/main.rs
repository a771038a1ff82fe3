//! `freshledger`: the one binary. [`cli`] resolves the configuration;
//! [`app`] is the composition root that builds everything once and serves
//! the command API, GraphQL, the read-model projectors, the process
//! managers and the timers in one process (or runs one maintenance
//! command).

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
            return Err(crate::app::AppError::Io { doing: "writing output".into(), source: e });
        }
    }};
}

mod analytics;
mod app;
mod audit;
mod cli;
mod kafka;
mod telemetry;

use clap::Parser;

/// mimalloc rather than the system allocator: decoding rows and events
/// allocates many short-lived maps and strings, and glibc's malloc took
/// about a fifth of the server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let started = telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref())
        .and_then(|tracing| Ok((tracing, telemetry::Metrics::install()?)));
    let (tracing, metrics) = match started {
        Ok(both) => both,
        Err(e) => {
            eprintln!("freshledger: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = app::run(cli, metrics).await;
    // Spans still buffered leave before the process does.
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .ok();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freshledger: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
