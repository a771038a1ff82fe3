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
        "--no-baseline",
    ]);
    assert!(
        figure(&r, "orders").contains("placed-and-paid orders/s"),
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
    let r = run(&[
        "--backend",
        "postgres",
        "--rate",
        "300",
        "--orders",
        "4",
        "--no-baseline",
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
}
