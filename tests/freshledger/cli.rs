//! The binary's command line and configuration.

use std::process::Command;

use crate::common::*;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_explains_every_setting() {
    let top = help(&["--help"]);
    for s in [
        "serve",
        "migrate",
        "demo-data",
        "--database-url",
        "FRESHLEDGER_DATABASE_URL",
        "--config",
        "--snapshot-every",
        "--max-connections",
        "sqlite://",
    ] {
        assert!(top.contains(s), "--help does not mention {s}:\n{top}");
    }
    let serve = help(&["serve", "--help"]);
    for s in [
        "--listen",
        "FRESHLEDGER_LISTEN",
        "--demo-data",
        "--order-saga",
        "--reservation-hold-minutes",
        "--shelf-life-margin-hours",
        "--gateway-outcome",
        "by-amount",
        "--slot-horizon-days",
        "--backdate-window-hours",
        "--rate-limit-per-second",
        "--redis-url",
    ] {
        assert!(
            serve.contains(s),
            "serve --help does not mention {s}:\n{serve}"
        );
    }
}

/// `serve --help` names every key the configuration file takes, and a file
/// with every one of them is accepted (unknown keys are refused).
#[test]
fn help_lists_every_config_file_key() {
    const KEYS: [(&str, &str); 45] = [
        ("database_url", "\"sqlite://data/x.db\""),
        ("listen", "\"127.0.0.1:0\""),
        ("snapshot_every", "100"),
        ("max_connections", "4"),
        ("demo_data", "false"),
        ("expiry_warning_hours", "24"),
        ("order_saga", "false"),
        ("reservation_hold_minutes", "15"),
        ("shelf_life_margin_hours", "24"),
        ("gateway_outcome", "\"approve\""),
        ("gateway_latency_ms", "0"),
        ("saga_shards", "2"),
        ("saga_concurrency", "4"),
        ("slot_horizon_days", "14"),
        ("backdate_window_hours", "72"),
        ("rate_limit_per_second", "100"),
        ("rate_limit_burst", "200"),
        ("redis_url", "\"redis://127.0.0.1:6379/\""),
        ("redis_namespace", "\"freshledger\""),
        ("trusted_proxies", "\"10.0.0.0/8, 127.0.0.1\""),
        ("auth_rate_limit_per_minute", "20"),
        ("auth_rate_limit_burst", "10"),
        ("access_token_ttl_minutes", "15"),
        ("mail_dir", "\"data/mail\""),
        ("admin_email", "\"admin@example.com\""),
        ("oidc_issuer", "\"https://sso.example.com\""),
        ("oidc_audience", "\"freshledger-api\""),
        ("oidc_jwks_url", "\"https://sso.example.com/jwks\""),
        ("oidc_role_claim", "\"realm_access.roles\""),
        ("oidc_roles", "\"a=admin\""),
        ("oidc_warehouses_claim", "\"warehouses\""),
        ("kafka_brokers", "\"127.0.0.1:9092\""),
        ("kafka_topic_prefix", "\"shop\""),
        ("kafka_partitions", "6"),
        ("kafka_replication_factor", "1"),
        ("kafka_max_message_bytes", "1000000"),
        ("kafka_options", "[\"compression.type=lz4\"]"),
        ("clickhouse_url", "\"http://127.0.0.1:8123\""),
        ("clickhouse_user", "\"default\""),
        ("clickhouse_database", "\"freshledger\""),
        ("audit_chain", "true"),
        ("audit_key_file", "\"data/audit-key.pem\""),
        ("audit_checkpoint_events", "1000"),
        ("audit_checkpoint_seconds", "60"),
        ("audit_checkpoint_file", "\"data/checkpoints.jsonl\""),
    ];
    let serve = help(&["serve", "--help"]).replace(['\n', ' '], "");
    for (key, _) in KEYS {
        assert!(serve.contains(key), "serve --help does not list {key}");
    }
    let dir = std::env::temp_dir().join(format!("fl-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("all.toml");
    let text: String = KEYS.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    std::fs::write(&cfg, text).unwrap();
    let db = format!("sqlite://{}/x.db", dir.display());
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--database-url",
            &db,
            "migrate",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Kafka settings that cannot work stop the server at start with a clear
/// message (before it listens), never a panic.
#[test]
fn bad_kafka_settings_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("fl-kafka-{}", uuid::Uuid::now_v7()));
    let db = format!("sqlite://{}/x.db", dir.display());
    for (flags, says) in [
        (
            &[
                "--kafka-brokers",
                "127.0.0.1:9092",
                "--kafka-topic-prefix",
                "a b",
            ][..],
            "kafka_topic_prefix",
        ),
        (
            &[
                "--kafka-brokers",
                "127.0.0.1:9092",
                "--kafka-option",
                "acks",
            ][..],
            "is not key=value",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
            .args(["--database-url", &db, "serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // File values are bounded like the flags.
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("kafka.toml");
    std::fs::write(
        &cfg,
        "kafka_brokers = \"127.0.0.1:9092\"\nkafka_partitions = 0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--config", cfg.to_str().unwrap(), "--database-url", &db])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("kafka_partitions: 0 is not in 1..=10000"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_config_file_supplies_settings_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("freshledger-cfg-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("from-file.db");
    let cfg = dir.join("freshledger.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = \"sqlite://{}\"\ndemo_data = false\n",
            db.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--config", cfg.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the database named in the file was created");
    // A flag wins over the file.
    let other = dir.join("from-flag.db");
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--database-url",
            &format!("sqlite://{}", other.display()),
            "migrate",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(other.exists());
    // An unknown key in the file is an error that names it.
    std::fs::write(&cfg, "databse_url = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--config", cfg.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("databse_url"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut app = spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    app.finish().await;
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = std::env::temp_dir().join(format!("freshledger-pipe-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("pipe.db").display());
    // `freshledger projections status | true`: the reader is gone before
    // the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_freshledger"))
        .args(["--database-url", &url, "projections", "status"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
