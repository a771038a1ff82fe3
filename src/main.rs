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

use clap::Parser;

/// mimalloc rather than the system allocator: decoding rows and events
/// allocates many short-lived maps and strings, and glibc's malloc took
/// about a fifth of the server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FRESHLEDGER_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match app::run(cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freshledger: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
