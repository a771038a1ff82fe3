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
    /// Sends the admin's access token with every request.
    pub client: Client,
    /// The admin's access token (signed in with a second factor).
    pub admin_token: String,
    /// The admin's TOTP secret.
    pub admin_totp: String,
    /// Every line the server wrote to stderr (also echoed to ours).
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    child: Option<Child>,
    db: Option<TestDb>,
    pub database_url: String,
    /// `FRESHLEDGER_LOG` of the server (`warn` unless a test asks).
    log_level: &'static str,
}

pub async fn spawn(backend: Backend) -> App {
    spawn_with(backend, &[]).await
}

/// A server whose first admin has not signed in yet (`client` sends no
/// token).
pub async fn spawn_signed_out(backend: Backend, extra: &[&str]) -> App {
    started(backend, extra, "warn").await
}

/// A server on a fresh database logging at `level`, not signed in.
async fn started(backend: Backend, extra: &[&str], level: &'static str) -> App {
    let db = TestDb::new(backend, "app").await;
    let mut app = App {
        url: String::new(),
        client: Client::new(),
        admin_token: String::new(),
        admin_totp: String::new(),
        logs: Default::default(),
        child: None,
        database_url: db.url.clone(),
        db: Some(db),
        log_level: level,
    };
    app.start(extra);
    app
}

/// A server on a database the test prepared itself (it stays the test's
/// to remove), signed in as its first admin.
pub async fn spawn_on(database_url: &str, extra: &[&str]) -> App {
    let mut app = App {
        url: String::new(),
        client: Client::new(),
        admin_token: String::new(),
        admin_totp: String::new(),
        logs: Default::default(),
        child: None,
        database_url: database_url.to_string(),
        db: None,
        log_level: "warn",
    };
    app.start(extra);
    app.sign_in_admin().await;
    app
}

/// A signed-in server whose log has `level` (`FRESHLEDGER_LOG`).
pub async fn spawn_logging(backend: Backend, extra: &[&str], level: &'static str) -> App {
    let mut app = started(backend, extra, level).await;
    app.sign_in_admin().await;
    app
}

pub async fn spawn_with(backend: Backend, extra: &[&str]) -> App {
    let mut app = spawn_signed_out(backend, extra).await;
    app.sign_in_admin().await;
    app
}

impl App {
    /// Another server process on `other`'s database (the database stays
    /// `other`'s to remove), with `other`'s admin token.
    pub async fn attach(other: &App, extra: &[&str]) -> App {
        let mut app = App {
            url: String::new(),
            // The admin's token is good on every process of the database.
            client: client_with(&other.admin_token),
            admin_token: other.admin_token.clone(),
            admin_totp: other.admin_totp.clone(),
            logs: Default::default(),
            child: None,
            database_url: other.database_url.clone(),
            db: None,
            log_level: "warn",
        };
        app.start(extra);
        app
    }
}

/// A signed-in account of a test.
pub struct Person {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
    /// Sends `token` with every request.
    pub client: Client,
}

/// The password of the admin every test server starts with.
pub const ADMIN_PASSWORD: &str = "test-admin-password-1";
pub const ADMIN_EMAIL: &str = "admin@freshledger.local";

/// The current code of a TOTP secret (as an authenticator app shows it).
pub fn totp_code(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
        .unwrap()
        .generate_current()
        .unwrap()
}

/// A client that sends `token` as its bearer token.
pub fn client_with(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Client::builder().default_headers(headers).build().unwrap()
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
            .env("FRESHLEDGER_LOG", self.log_level)
            .env("FRESHLEDGER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FRESHLEDGER_MAIL_DIR", self.mail_dir())
            // Tests fire requests far faster than any client should; the
            // rate-limit tests set their own limits with flags.
            .env("FRESHLEDGER_RATE_LIMIT_PER_SECOND", "0")
            .env("FRESHLEDGER_AUTH_RATE_LIMIT_PER_MINUTE", "0")
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

    /// Where this server writes messages to account holders.
    pub fn mail_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "freshledger-mail-{}",
            self.database_url
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        ))
    }

    /// Signs in as the first admin, enrolling TOTP on the way: every
    /// request of `client` then carries an admin's token.
    pub async fn sign_in_admin(&mut self) {
        let anonymous = Client::new();
        let login = expect(
            anonymous
                .post(format!("{}/api/v1/auth/login", self.url))
                .json(&serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(
            login["status"], "signed_in",
            "a new admin has no second factor yet"
        );
        let first = client_with(login["access_token"].as_str().unwrap());
        let enrolment = expect(
            first
                .post(format!("{}/api/v1/auth/mfa/enrolment", self.url))
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let secret = enrolment["secret"].as_str().unwrap().to_string();
        let enabled = expect(
            first
                .post(format!("{}/api/v1/auth/mfa/confirmation", self.url))
                .json(&serde_json::json!({"code": totp_code(&secret)}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        self.admin_totp = secret;
        self.admin_token = enabled["tokens"]["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        self.client = client_with(&self.admin_token);
    }

    /// A new account of `role` (created by the admin, so its email is
    /// verified), signed in: a seller works for `warehouses`.
    pub async fn person(&self, role: &str, warehouses: &[&str]) -> Person {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = "person-password-1";
        let account = expect(
            self.post(
                "/api/v1/accounts",
                serde_json::json!({"email": email, "password": password,
                    "display_name": format!("A {role}"), "role": role, "warehouses": warehouses}),
            )
            .await,
            201,
        )
        .await;
        let login = expect(
            Client::new()
                .post(format!("{}/api/v1/auth/login", self.url))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let token = login["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("signed in without MFA: {login}"))
            .to_string();
        Person {
            id: account["account_id"].as_str().unwrap().to_string(),
            email,
            client: client_with(&token),
            token,
            refresh_token: login["refresh_token"].as_str().unwrap().to_string(),
        }
    }

    /// The server's stderr lines so far that contain every one of `words`.
    /// Every line the server has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

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

// Orders and the log, shared by the integration tests (Kafka, ClickHouse).

pub fn slot() -> Value {
    let start = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .unwrap()
        .and_utc();
    serde_json::json!({"starts_at": start, "ends_at": start + chrono::Duration::hours(2)})
}

pub fn order_body(lines: &[(&str, u64)]) -> Value {
    serde_json::json!({
        "customer_id": "0192f3a4-0000-7000-8000-00000000c0de",
        "warehouse_id": "WH-BER-1",
        "lines": lines.iter().map(|(sku, grams)| serde_json::json!({"sku": sku, "quantity": {"uom": "gram", "amount": grams}})).collect::<Vec<_>>(),
        "delivery_slot": slot(),
        "delivery_address": {"recipient": "Ada Lovelace", "line1": "Invalidenstrasse 1",
                             "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "card"
    })
}

/// Places an order (the saga then reserves, authorizes, ...); its id.
pub async fn place(app: &App, lines: &[(&str, u64)]) -> String {
    app.send("/api/v1/orders", order_body(lines), 201).await["stream_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every event of the log, read over HTTP.
pub async fn all_events(app: &App) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out
            .last()
            .map(|e| e["global_position"].as_u64().unwrap())
            .unwrap_or(0);
        let page: Vec<Value> = serde_json::from_value(
            app.get_json(&format!("/api/v1/events?after={after}&limit=1000"))
                .await,
        )
        .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// An integration's entry (`kafka`, `clickhouse`) in `/api/v1/log`.
pub async fn integration_status(app: &App, name: &str) -> Value {
    let log = app.get_json("/api/v1/log").await;
    log["integrations"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no {name} integration in /api/v1/log: {log}"))
}

/// Waits (a minute at most) until `check` holds for an integration's status.
pub async fn integration_until(
    app: &App,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = integration_status(app, name).await;
        if check(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never got to {what}: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Owned flags as the `&str`s the spawn helpers take.
pub fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}
