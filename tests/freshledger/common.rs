//! Starts the real `freshledger` binary on a free port against a fresh
//! database (a temporary SQLite file, or a new Postgres database on the
//! server named by FRESHLEDGER_TEST_PG) and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::{Client, Response};
use serde_json::Value;

pub use testkit::Kind as Backend;
use testkit::TestDb;

pub struct App {
    pub url: String,
    pub client: Client,
    /// Every line the server wrote to stderr (also echoed to ours).
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    child: Option<Child>,
    db: Option<TestDb>,
    pub database_url: String,
}

pub async fn spawn(backend: Backend) -> App {
    spawn_with(backend, &[]).await
}

pub async fn spawn_with(backend: Backend, extra: &[&str]) -> App {
    let db = TestDb::new(backend, "app").await;
    let mut app = App {
        url: String::new(),
        client: Client::new(),
        logs: Default::default(),
        child: None,
        database_url: db.url.clone(),
        db: Some(db),
    };
    app.start(extra);
    app
}

impl App {
    fn start(&mut self, extra: &[&str]) {
        // Tests of single commands drive every step themselves; saga tests
        // switch the order saga on.
        let saga: &[&str] = if extra.contains(&"--order-saga") {
            &[]
        } else {
            &["--order-saga", "false"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_freshledger"))
            .args([
                "--database-url",
                &self.database_url,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(saga)
            .args(extra)
            .env("FRESHLEDGER_LOG", "warn")
            // Tests fire requests far faster than any client should; the
            // rate-limit tests set their own limits with flags.
            .env("FRESHLEDGER_RATE_LIMIT_PER_SECOND", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start freshledger");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let logs = self.logs.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                logs.lock().unwrap().push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("freshledger exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("freshledger listening on ") {
                break url.to_string();
            }
        };
        self.url = url;
        self.child = Some(child);
    }

    /// The server's stderr lines so far that contain every one of `words`.
    pub fn log_lines_with(&self, words: &[&str]) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .cloned()
            .collect()
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Stops the server (if running) and starts it again with `extra` flags.
    pub fn restart_with(&mut self, extra: &[&str]) {
        if self.child.is_some() {
            self.terminate();
        }
        self.start(extra);
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a JSON body and asserts the status; returns the JSON answer.
    pub async fn send(&self, path: &str, body: Value, status: u16) -> Value {
        expect(self.post(path, body).await, status).await
    }

    /// Puts a product in the catalogue (price in euro cents).
    pub async fn put_product(&self, sku: &str, name: &str, per: &str, cents: i64) {
        let r = self
            .client
            .put(format!("{}/api/v1/products/{sku}", self.url))
            .json(&serde_json::json!({
                "name": name, "categories": ["fruit"], "origin": "DE", "per": per,
                "price": {"amount_minor": cents, "currency": "EUR"}
            }))
            .send()
            .await
            .unwrap();
        expect(r, 200).await;
    }

    /// Registers a warehouse whose zones keep these storages (`ambient`,
    /// `chilled`, `frozen`).
    pub async fn register_warehouse(&self, id: &str, storages: &[&str]) {
        let zones: Vec<Value> = storages
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({"code": format!("Z-{i}"), "storage": s}))
            .collect();
        let r = self
            .client
            .put(format!("{}/api/v1/warehouses/{id}", self.url))
            .json(&serde_json::json!({
                "name": format!("Warehouse {id}"),
                "address": {"recipient": "Receiving", "line1": "Lagerstraße 1",
                            "city": "Berlin", "postal_code": "10115", "country": "DE"},
                "zones": zones,
            }))
            .send()
            .await
            .unwrap();
        expect(r, 200).await;
    }

    /// The warehouse and supplier tests without demo data receive their
    /// batches at and from: `WH-BER-1` (ambient and chilled) and
    /// `SUP-ALMERIA-COOP`.
    pub async fn register_places(&self) {
        self.register_warehouse("WH-BER-1", &["ambient", "chilled"])
            .await;
        self.register_supplier("SUP-ALMERIA-COOP").await;
    }

    /// Registers a supplier.
    pub async fn register_supplier(&self, id: &str) {
        let r = self
            .client
            .put(format!("{}/api/v1/suppliers/{id}", self.url))
            .json(&serde_json::json!({
                "name": format!("Supplier {id}"),
                "contact": {"name": "Sales", "email": "sales@example.com", "phone": "+4930123456"},
            }))
            .send()
            .await
            .unwrap();
        expect(r, 200).await;
    }

    /// POSTs a GraphQL request (`{"query", "variables"}`) and returns the
    /// JSON answer.
    pub async fn graphql(&self, request: &Value) -> Value {
        self.client
            .post(format!("{}/graphql", self.url))
            .json(request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// How many events the log holds once it has settled: every subscriber
    /// (read models, process managers) has caught up with the head, so no
    /// reaction to an earlier event is still to come.
    pub async fn log_len(&self) -> u64 {
        self.log_len_within(std::time::Duration::from_secs(30))
            .await
    }

    /// [`App::log_len`], waiting up to `patience` for the log to settle.
    pub async fn log_len_within(&self, patience: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + patience;
        let mut last = Value::Null;
        while std::time::Instant::now() < deadline {
            // A log that does not answer fails the test; it never hangs it.
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let s: Value = self
                .client
                .get(format!("{}/api/v1/log", self.url))
                .timeout(left.max(std::time::Duration::from_secs(1)))
                .send()
                .await
                .expect("GET /api/v1/log answers")
                .json()
                .await
                .unwrap();
            last = s.clone();
            // While readers are stalled the head is only the last one proven
            // safe: not settled.
            if !s["stall"].is_null() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            let head = s["head_position"].as_u64().unwrap();
            let subs = s["subscriptions"].as_array().unwrap();
            let parked: Vec<&Value> = subs.iter().filter(|x| x["parked"] == true).collect();
            assert!(parked.is_empty(), "a subscriber is parked: {parked:?}");
            if !subs.is_empty() && subs.iter().all(|x| x["position"].as_u64() == Some(head)) {
                return s["event_count"].as_u64().unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the log never settled: {last}");
    }

    pub async fn finish(mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(status.success(), "freshledger exited with {status}");
        }
        if let Some(db) = self.db.take() {
            db.remove().await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts a status and returns the JSON body.
pub async fn expect(resp: Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "body: {body}");
    body
}
