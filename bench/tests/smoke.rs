//! A few seconds of the bench tool against the real server (the full runs
//! are in BENCHMARKS.md; benchmarks never run in the test command).

use std::process::Command;

fn run(args: &[&str]) -> String {
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_freshledger-bench"));
    let server = bench.with_file_name(format!("freshledger{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "{} is built by `cargo test --workspace` (the root package's tests need it)",
        server.display()
    );
    let out = Command::new(bench)
        .args(["--server", server.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn figure(report: &str, label: &str) -> String {
    report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{report}"))
        .to_string()
}

#[test]
fn lifecycles_by_hand_are_measured() {
    let r = run(&["--backend", "sqlite", "--orders", "12", "--clients", "3"]);
    // 12 orders x 15 commands, every one answered 2xx (else the tool fails).
    assert!(
        figure(&r, "commands").contains("commands            180 in"),
        "{r}"
    );
    for label in [
        "command latency",
        "projection lag",
        "rebuild",
        "server peak memory",
        "baseline",
    ] {
        figure(&r, label);
    }
}

#[test]
fn the_saga_pays_placed_orders() {
    let r = run(&[
        "--backend",
        "sqlite",
        "--mode",
        "saga",
        "--orders",
        "10",
        "--clients",
        "2",
    ]);
    assert!(
        figure(&r, "orders").contains("placed-and-paid orders/s"),
        "{r}"
    );
    // The baseline puts the rate in proportion: the raw INSERT rate over
    // the events an order takes.
    assert!(
        figure(&r, "ceiling").ends_with("orders/s at one INSERT per event"),
        "{r}"
    );
    // Each paid order's saga appended at least its reservation, allocation,
    // hold timer, payment opened and authorized, paid, and hold cancelled.
    let events: u64 = figure(&r, "events")
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("events in {r}"));
    assert!(events >= 10 * 8, "{r}");
}

#[test]
fn an_open_loop_run_measures_every_command_at_a_fixed_rate() {
    let trace = std::env::temp_dir().join(format!("fl-lag-trace-{}.csv", std::process::id()));
    let r = run(&[
        "--backend",
        "postgres",
        "--rate",
        "300",
        "--orders",
        "4",
        "--no-baseline",
        "--lag-trace",
        trace.to_str().unwrap(),
    ]);
    assert!(
        figure(&r, "backend").contains("open loop at 300 commands/s"),
        "{r}"
    );
    assert!(
        figure(&r, "commands").contains("commands            60 in"),
        "{r}"
    );
    // One lag sample per command: each answer's position was seen applied.
    assert!(
        figure(&r, "projection lag").ends_with("(60 samples)"),
        "{r}"
    );
    // The trace holds the same 60 samples: distinct positions, answered
    // within the run, lags no shorter than zero.
    let csv = std::fs::read_to_string(&trace).unwrap();
    std::fs::remove_file(&trace).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("answered_ms,position,lag_ms,probe_ms"),
        "{csv}"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 60, "{csv}");
    let mut positions: Vec<u64> = rows.iter().map(|r| r[1] as u64).collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 60, "{csv}");
    assert!(
        rows.iter()
            .all(|r| r.len() == 4 && r[0] >= 0.0 && r[2] >= 0.0 && r[3] >= 0.0),
        "{csv}"
    );
}
