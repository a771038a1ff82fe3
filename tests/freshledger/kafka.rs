//! The Kafka relay through the running binary, read back by a real
//! consumer group: the real broker of the test command (tansu on
//! 127.0.0.1:9092, FRESHLEDGER_TEST_KAFKA), and librdkafka's mock cluster
//! where a broker must fail on cue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::common::*;

fn broker() -> String {
    std::env::var("FRESHLEDGER_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A topic prefix no other test uses (they share one broker).
fn prefix() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

const STREAMS: [&str; 5] = ["order", "inventory-batch", "payment", "delivery", "timer"];

fn topics(prefix: &str) -> Vec<String> {
    let mut t: Vec<String> = STREAMS.iter().map(|s| format!("{prefix}.{s}.v1")).collect();
    t.push(format!("{prefix}.integration.v1"));
    t
}

/// Flags of a server that relays to `brokers` under `prefix`, with
/// `extra`; the order saga on (so orders make many events) unless `extra`
/// says otherwise.
fn relay_flags(brokers: &str, prefix: &str, extra: &[&str]) -> Vec<String> {
    let saga: &[&str] = if extra.contains(&"--order-saga") {
        &[]
    } else {
        &["--order-saga", "true"]
    };
    saga.iter()
        .chain(&["--kafka-brokers", brokers, "--kafka-topic-prefix", prefix])
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    partition: i32,
    key: String,
    headers: HashMap<String, String>,
    value: Value,
}

/// Reads `topics` from the beginning with a new consumer group until
/// `done` holds for what arrived, or two minutes pass (a hang guard, not a
/// figure): then what arrived so far, for the caller to say what is missing.
async fn consume(
    brokers: &str,
    topics: &[String],
    done: impl Fn(&[Msg]) -> bool,
) -> Result<Vec<Msg>, Vec<Msg>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while !done(&out) {
        if Instant::now() > deadline {
            return Err(out);
        }
        let Ok(received) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        else {
            continue;
        };
        let m = received.expect("the consumer reads");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Msg {
            topic: m.topic().to_string(),
            partition: m.partition(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            headers,
            value: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
        });
    }
    Ok(out)
}

fn event_ids(msgs: &[Msg], prefix: &str) -> HashSet<String> {
    msgs.iter()
        .filter(|m| !m.topic.ends_with(".integration.v1") && m.topic.starts_with(prefix))
        .map(|m| m.value["event_id"].as_str().unwrap().to_string())
        .collect()
}

/// Whether an event of the log has a public integration event.
fn is_public_source(e: &Value) -> bool {
    matches!(
        (
            e["stream_type"].as_str().unwrap(),
            e["event_type"].as_str().unwrap()
        ),
        (
            "Order",
            "OrderPlaced" | "OrderPaid" | "OrderShipped" | "OrderDelivered" | "OrderCancelled"
        ) | ("InventoryBatch", "StockReserved" | "BatchExpired")
            | ("Delivery", "RiderAssigned")
            | ("Payment", "PaymentRefunded")
    )
}

/// Reads the relay's topics until every event of `expected` and its public
/// event (if it has one) arrived.
async fn read_back(brokers: &str, prefix: &str, expected: &[Value]) -> Vec<Msg> {
    let events: HashSet<String> = expected
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let public: HashSet<String> = expected
        .iter()
        .filter(|e| is_public_source(e))
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let public_ids = |m: &[Msg]| -> HashSet<String> {
        m.iter()
            .filter(|m| m.topic.ends_with(".integration.v1"))
            .map(|m| m.value["id"].as_str().unwrap().to_string())
            .collect()
    };
    let read = consume(brokers, &topics(prefix), |m| {
        events.is_subset(&event_ids(m, prefix)) && public.is_subset(&public_ids(m))
    })
    .await;
    read.unwrap_or_else(|got| {
        let (ids, public_got) = (event_ids(&got, prefix), public_ids(&got));
        let missing: Vec<String> = expected
            .iter()
            .filter(|e| {
                let id = e["event_id"].as_str().unwrap();
                !ids.contains(id) || (is_public_source(e) && !public_got.contains(id))
            })
            .take(10)
            .map(|e| {
                format!(
                    "{} {}/{} v{} at {}",
                    e["event_type"], e["stream_type"], e["stream_id"], e["stream_version"], e["global_position"]
                )
            })
            .collect();
        panic!(
            "the consumer got {} messages in two minutes; missing (or their public event), first ten: {missing:#?}",
            got.len()
        )
    })
}

/// Every event of the log is on its stream type's topic, keyed by stream
/// id, in stream order by first appearance (duplicates only repeat what was
/// already seen), with the envelope in the headers.
fn assert_every_event_in_order(expected: &[Value], msgs: &[Msg], prefix: &str) {
    let wanted: HashSet<String> = expected
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let got = event_ids(msgs, prefix);
    let missing: Vec<&String> = wanted.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} events never reached Kafka: {missing:?}",
        missing.len()
    );
    let unknown: Vec<&String> = got.difference(&wanted).collect();
    assert!(unknown.is_empty(), "unknown events on Kafka: {unknown:?}");
    // Per key: the first appearances run 1, 2, 3, ... (nothing skipped,
    // nothing overtaken); the stream's messages all sit in one partition.
    let mut next: HashMap<(String, String), u64> = HashMap::new();
    let mut partition: HashMap<(String, String), i32> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for m in msgs
        .iter()
        .filter(|m| !m.topic.ends_with(".integration.v1"))
    {
        let v = &m.value;
        let id = v["event_id"].as_str().unwrap();
        let key = (m.topic.clone(), m.key.clone());
        assert_eq!(
            m.key,
            v["stream_id"].as_str().unwrap(),
            "keyed by stream id"
        );
        assert_eq!(
            *partition.entry(key.clone()).or_insert(m.partition),
            m.partition,
            "one stream, one partition"
        );
        let want = format!(
            "{}.{}.v1",
            prefix,
            match v["stream_type"].as_str().unwrap() {
                "InventoryBatch" => "inventory-batch".to_string(),
                other => other.to_lowercase(),
            }
        );
        assert_eq!(m.topic, want);
        for (h, field) in [
            ("event_id", "event_id"),
            ("event_type", "event_type"),
            ("event_version", "event_version"),
            ("stream_type", "stream_type"),
            ("stream_id", "stream_id"),
            ("correlation_id", "correlation_id"),
            ("actor", "actor"),
        ] {
            assert_eq!(
                m.headers.get(h).map(String::as_str),
                v[field].as_str(),
                "header {h}"
            );
        }
        for (h, field) in [
            ("stream_version", "stream_version"),
            ("global_position", "global_position"),
        ] {
            assert_eq!(
                m.headers[h],
                v[field].as_u64().unwrap().to_string(),
                "header {h}"
            );
        }
        for h in ["occurred_at", "recorded_at"] {
            let header: chrono::DateTime<Utc> = m.headers[h].parse().unwrap();
            let field: chrono::DateTime<Utc> = v[h].as_str().unwrap().parse().unwrap();
            assert_eq!(header, field, "header {h}");
        }
        assert_eq!(
            m.headers.get("causation_id").map(String::as_str),
            v["causation_id"].as_str()
        );
        if !seen.insert(id.to_string()) {
            continue;
        }
        let version = v["stream_version"].as_u64().unwrap();
        let n = next.entry(key).or_insert(1);
        assert_eq!(version, *n, "stream {} out of order", m.key);
        *n += 1;
    }
}

fn schema(path: &str) -> jsonschema::Validator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("event-schemas/schemas");
    let text = std::fs::read_to_string(dir.join(path)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Public events: each validates against its committed schema, carries
/// its source event's id, and every source that maps has one.
fn assert_public_events(expected: &[Value], msgs: &[Msg]) -> BTreeMap<String, usize> {
    let envelope = schema("RecordedEvent.json");
    for m in msgs
        .iter()
        .filter(|m| !m.topic.ends_with(".integration.v1"))
    {
        assert!(envelope.is_valid(&m.value), "{}", m.value);
    }
    let by_id: HashMap<&str, &Value> = expected
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e))
        .collect();
    let mut counts = BTreeMap::new();
    let mut public_ids = HashSet::new();
    for m in msgs.iter().filter(|m| m.topic.ends_with(".integration.v1")) {
        let ty = m.value["type"].as_str().unwrap();
        let v = schema(&format!("integration/{ty}.v1.json"));
        assert!(v.is_valid(&m.value), "{ty}: {}", m.value);
        let id = m.value["id"].as_str().unwrap();
        let source = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{ty} {id}: no such source event"));
        assert_eq!(m.value["source"]["event_type"], source["event_type"]);
        assert_eq!(m.headers["event_type"], ty);
        assert_eq!(m.headers["event_id"], id);
        if public_ids.insert(id.to_string()) {
            *counts.entry(ty.to_string()).or_insert(0) += 1;
        }
    }
    for e in expected {
        let maps = is_public_source(e);
        let id = e["event_id"].as_str().unwrap();
        assert_eq!(maps, public_ids.contains(id), "public event for {e}");
    }
    counts
}

/// Orders flow through the saga; every event of the log reaches Kafka in
/// order with its headers, and the public events validate.
#[tokio::test]
async fn every_event_reaches_kafka_in_stream_order_with_public_events() {
    let prefix = prefix();
    let app = spawn_with(
        Backend::Sqlite,
        &strs(&relay_flags(&broker(), &prefix, &[])),
    )
    .await;
    let mut orders = Vec::new();
    for i in 0..5 {
        orders.push(place(&app, &[("APL-GALA", 500 + i), ("BAN-CAV", 1000)]).await);
    }
    app.send(
        &format!("/api/v1/orders/{}/cancel", orders[0]),
        json!({"reason": "customer_request"}),
        200,
    )
    .await;
    app.log_len().await;
    let status = integration_status(&app, "kafka").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["lag"], 0, "{status}");
    let readyz = app.get_json("/readyz").await;
    assert_eq!(readyz["integrations"][0]["name"], "kafka", "{readyz}");
    let expected = all_events(&app).await;
    let msgs = read_back(&broker(), &prefix, &expected).await;
    assert_every_event_in_order(&expected, &msgs, &prefix);
    let counts = assert_public_events(&expected, &msgs);
    for ty in [
        "OrderCreated",
        "InventoryReserved",
        "PaymentConfirmed",
        "OrderCancelled",
    ] {
        assert!(counts.contains_key(ty), "no {ty}: {counts:?}");
    }
    assert_eq!(counts["OrderCreated"], 5);
    app.finish().await;
}

/// Without a reachable broker the server serves commands, and says what is
/// wrong with the relay in /readyz, which stays ready.
#[tokio::test]
async fn an_unreachable_broker_never_stops_commands() {
    let app = spawn_with(Backend::Sqlite, &["--kafka-brokers", "127.0.0.1:1"]).await;
    let before = app.get_json("/api/v1/log").await["head_position"]
        .as_u64()
        .unwrap();
    place(&app, &[("APL-GALA", 500)]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let kafka = loop {
        let r = app.get("/readyz").await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let kafka = body["integrations"][0].clone();
        if kafka["state"] == "retrying" {
            break kafka;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kafka["healthy"], false, "{kafka}");
    assert!(
        kafka["problem"].as_str().unwrap().contains("127.0.0.1:1"),
        "{kafka}"
    );
    let status = integration_status(&app, "kafka").await;
    assert!(status["lag"].as_u64().unwrap() > 0, "{status}");
    assert!(
        app.get_json("/api/v1/log").await["head_position"]
            .as_u64()
            .unwrap()
            > before
    );
    app.finish().await;
}

/// SIGKILL the relay's process in the middle of a stream of orders, start
/// it again: every event arrives, each stream in order; duplicates only of
/// what the crash left unacknowledged.
#[tokio::test]
async fn a_killed_relay_resumes_from_its_checkpoint_and_loses_nothing() {
    let prefix = prefix();
    let flags = relay_flags(&broker(), &prefix, &[]);
    let flags = strs(&flags);
    let mut app = spawn_with(Backend::Postgres, &flags).await;
    for round in 0..3u64 {
        let shared = &app;
        futures_util::future::join_all(
            (0..20u64)
                .map(|i| async move { place(shared, &[("APL-GALA", 100 + round * 20 + i)]).await }),
        )
        .await;
        // Mid-flight: the saga and the relay are still at work.
        app.kill();
        app.restart_with(&flags);
    }
    app.log_len().await;
    let expected = all_events(&app).await;
    let msgs = read_back(&broker(), &prefix, &expected).await;
    assert_every_event_in_order(&expected, &msgs, &prefix);
    assert_public_events(&expected, &msgs);
    app.finish().await;
}

/// Two processes on one database: one relays, the other stands by and
/// takes over within seconds of the first one's death.
#[tokio::test]
async fn one_relay_per_database_and_a_standby_takes_over() {
    let prefix = prefix();
    // The saga off: only the relays' standing is watched.
    let flags = relay_flags(&broker(), &prefix, &["--order-saga", "false"]);
    let flags = strs(&flags);
    let mut first = spawn_with(Backend::Postgres, &flags).await;
    let mut second = App::attach(&first, &flags).await;
    let states = |a: &Value, b: &Value| {
        let mut s = [
            a["state"].as_str().unwrap().to_string(),
            b["state"].as_str().unwrap().to_string(),
        ];
        s.sort();
        s
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (a, b) = loop {
        let (a, b) = (
            integration_status(&first, "kafka").await,
            integration_status(&second, "kafka").await,
        );
        if states(&a, &b) == ["active", "standby"] {
            break (a, b);
        }
        assert!(Instant::now() < deadline, "{a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (a["healthy"].clone(), b["healthy"].clone()),
        (json!(true), json!(true))
    );
    // Kill whichever is active; the other takes over.
    let survivor = if a["state"] == "active" {
        first.kill();
        &second
    } else {
        second.kill();
        &first
    };
    let killed_at = Instant::now();
    integration_until(survivor, "kafka", "active", |s| s["state"] == "active").await;
    eprintln!("took over in {:?}", killed_at.elapsed());
    place(survivor, &[("APL-GALA", 250)]).await;
    survivor.log_len().await;
    let expected = all_events(survivor).await;
    let msgs = read_back(&broker(), &prefix, &expected).await;
    assert_every_event_in_order(&expected, &msgs, &prefix);
    second.finish().await;
    first.finish().await;
}

/// A mock cluster of one broker, with the relay's topics.
fn mock_cluster(prefix: &str) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(1).unwrap();
    for t in topics(prefix) {
        mock.create_topic(&t, 3, 1).unwrap();
    }
    mock
}

/// The broker goes down under a stream of commands: commands go on, the
/// relay says it is waiting, and when the broker is back every event
/// arrives in order.
#[tokio::test]
async fn a_broker_outage_delays_events_but_loses_none() {
    let prefix = prefix();
    let mock = mock_cluster(&prefix);
    let brokers = mock.bootstrap_servers();
    let app = spawn_with(Backend::Sqlite, &strs(&relay_flags(&brokers, &prefix, &[]))).await;
    place(&app, &[("APL-GALA", 300)]).await;
    integration_until(&app, "kafka", "caught up", |s| {
        s["lag"] == 0 && s["state"] == "active"
    })
    .await;
    mock.broker_down(1).unwrap();
    for i in 0..5 {
        place(&app, &[("BAN-CAV", 1000 + i)]).await;
    }
    let waiting = integration_until(&app, "kafka", "unhealthy", |s| s["healthy"] == false).await;
    assert!(
        waiting["problem"]
            .as_str()
            .unwrap()
            .contains("acknowledged"),
        "{waiting}"
    );
    assert!(waiting["lag"].as_u64().unwrap() > 0, "{waiting}");
    mock.broker_up(1).unwrap();
    integration_until(&app, "kafka", "healthy again", |s| {
        s["lag"] == 0 && s["healthy"] == true
    })
    .await;
    app.log_len().await;
    let expected = all_events(&app).await;
    let msgs = read_back(&brokers, &prefix, &expected).await;
    assert_every_event_in_order(&expected, &msgs, &prefix);
    // Down again with messages waiting: SIGTERM still stops the server
    // cleanly (the relay gives up waiting, its checkpoint unmoved).
    mock.broker_down(1).unwrap();
    place(&app, &[("BAN-CAV", 999)]).await;
    integration_until(&app, "kafka", "unhealthy", |s| s["healthy"] == false).await;
    app.finish().await;
}

/// Produce requests the broker answers with retriable errors are retried
/// by the idempotent producer without reordering or loss.
#[tokio::test]
async fn produce_errors_are_retried_in_order() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let prefix = prefix();
    let mock = mock_cluster(&prefix);
    let brokers = mock.bootstrap_servers();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ]
        .repeat(5),
    );
    let app = spawn_with(Backend::Sqlite, &strs(&relay_flags(&brokers, &prefix, &[]))).await;
    for i in 0..10 {
        place(&app, &[("APL-GALA", 200 + i)]).await;
    }
    app.log_len().await;
    let expected = all_events(&app).await;
    let msgs = read_back(&brokers, &prefix, &expected).await;
    assert_every_event_in_order(&expected, &msgs, &prefix);
    app.finish().await;
}

/// An event too large for Kafka is dead-lettered with its error (the
/// limit sits between the size of a 14-line order's placement, about 2.7 kB,
/// and of its allocation, about 2 kB); its
/// stream's later events wait behind it while other streams flow; an
/// operator skips it (CLI), or retries it once the limit is raised, and the
/// waiting events follow in order.
#[tokio::test]
async fn a_poison_event_holds_back_only_its_stream_until_retried_or_skipped() {
    let prefix = prefix();
    let small = relay_flags(&broker(), &prefix, &["--kafka-max-message-bytes", "2400"]);
    let mut app = spawn_with(Backend::Postgres, &strs(&small)).await;
    let many: Vec<(&str, u64)> = [
        "APL-GALA", "APL-GRSM", "PEA-CONF", "BAN-CAV", "BAN-ORG", "ORA-NAVL", "LEM-PRIM",
        "GRP-RED", "WML-SDLS", "PCH-YLW", "CHR-SWT", "TOM-VINE", "PEP-RED", "CAR-ORG",
    ]
    .iter()
    .map(|s| (*s, 500))
    .collect();
    let big = place(&app, &many).await;
    let bigger = place(&app, &many).await;
    let fine = place(&app, &[("APL-GALA", 400)]).await;
    app.log_len().await;
    let status = integration_status(&app, "kafka").await;
    let letters = status["dead_letters"].as_array().unwrap().clone();
    let poison: Vec<&Value> = letters.iter().filter(|d| d["status"] == "poison").collect();
    assert_eq!(poison.len(), 2, "{status}");
    assert!(
        poison[0]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{status}"
    );
    assert_eq!(poison[0]["event_type"], "OrderPlaced");
    // The held streams' later events wait; the small order went through.
    let held: HashSet<&str> = letters
        .iter()
        .map(|d| d["stream_id"].as_str().unwrap())
        .collect();
    assert!(
        held.contains(big.as_str())
            && held.contains(bigger.as_str())
            && !held.contains(fine.as_str())
    );
    assert!(
        letters
            .iter()
            .any(|d| d["status"] == "blocked" && d["stream_id"] == big.as_str()),
        "{status}"
    );
    let expected = all_events(&app).await;
    let of = |id: &str| -> Vec<Value> {
        expected
            .iter()
            .filter(|e| e["stream_id"] == id)
            .cloned()
            .collect()
    };
    let fine_events = of(&fine);
    let msgs = consume(&broker(), &topics(&prefix), |m| {
        let got = event_ids(m, &prefix);
        fine_events
            .iter()
            .all(|e| got.contains(e["event_id"].as_str().unwrap()))
    })
    .await
    .expect("the small order's events arrive while the big ones wait");
    let got = event_ids(&msgs, &prefix);
    assert!(
        of(&big)
            .iter()
            .all(|e| !got.contains(e["event_id"].as_str().unwrap())),
        "a held stream leaked"
    );

    // The CLI lists them and refuses to act on a blocked one.
    let database_url = app.database_url.clone();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_freshledger"))
            .args(["--database-url", &database_url, "relay"])
            .args(args)
            .output()
            .unwrap()
    };
    let listed = cli(&["dead-letters"]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("poison") && listed.contains(&big),
        "{listed}"
    );
    let blocked = letters.iter().find(|d| d["status"] == "blocked").unwrap();
    let refused = cli(&["skip", &blocked["global_position"].to_string()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not poison"));

    // Skip the first: its stream's waiting events go out, without it.
    let first = poison
        .iter()
        .find(|d| d["stream_id"] == big.as_str())
        .unwrap();
    assert!(cli(&["skip", &first["global_position"].to_string()])
        .status
        .success());
    integration_until(&app, "kafka", "released the skipped stream", |s| {
        !s["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["stream_id"] == big.as_str())
    })
    .await;

    // Retry the second under the same limit: poison again.
    let second = poison
        .iter()
        .find(|d| d["stream_id"] == bigger.as_str())
        .unwrap();
    let position = second["global_position"].to_string();
    assert!(cli(&["retry", &position]).status.success());
    integration_until(&app, "kafka", "poison again", |s| {
        s["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["global_position"] == second["global_position"] && d["status"] == "poison")
    })
    .await;
    // Raise the limit and retry: the poison event, then its stream's waiting events.
    let large = relay_flags(
        &broker(),
        &prefix,
        &["--kafka-max-message-bytes", "1000000"],
    );
    app.restart_with(&strs(&large));
    assert!(cli(&["retry", &position]).status.success());
    integration_until(&app, "kafka", "no dead letters left", |s| {
        s.get("dead_letters")
            .is_none_or(|d| d.as_array().unwrap().is_empty())
    })
    .await;
    app.log_len().await;
    let expected = all_events(&app).await;
    let skipped = first["event_id"].as_str().unwrap().to_string();
    let wanted: Vec<Value> = expected
        .iter()
        .filter(|e| e["event_id"] != skipped.as_str())
        .cloned()
        .collect();
    let n = wanted.len();
    let msgs = read_back(&broker(), &prefix, &wanted).await;
    let got = event_ids(&msgs, &prefix);
    assert!(!got.contains(&skipped), "a skipped event was sent");
    // Order per stream holds for the retried stream; the skipped stream
    // starts at version 2.
    let retried: Vec<Value> = wanted
        .iter()
        .filter(|e| e["stream_id"] == bigger.as_str())
        .cloned()
        .collect();
    let retried_msgs: Vec<Msg> = msgs.iter().filter(|m| m.key == bigger).cloned().collect();
    assert_every_event_in_order(&retried, &retried_msgs, &prefix);
    let versions: Vec<u64> = msgs
        .iter()
        .filter(|m| m.key == big && !m.topic.ends_with(".integration.v1"))
        .map(|m| m.value["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&2), "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(got.len(), n, "every other event arrived");
    app.finish().await;
}
