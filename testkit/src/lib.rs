//! A fresh database per test, so tests run in parallel without seeing each
//! other: a temporary SQLite file, or a new Postgres database on the server
//! named by `FRESHLEDGER_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.

use std::path::PathBuf;

use sqlx::Connection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The test Postgres server's admin URL.
pub fn admin_url() -> String {
    std::env::var("FRESHLEDGER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub kind: Kind,
    /// What to give `Store::connect` or `--database-url`.
    pub url: String,
    pg_name: Option<String>,
    dir: Option<PathBuf>,
}

impl TestDb {
    /// Creates it (`label` shows in database and folder names).
    pub async fn new(kind: Kind, label: &str) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("freshledger-{label}-{}", Uuid::now_v7()));
                TestDb {
                    kind,
                    url: format!("sqlite://{}/log.db", dir.display()),
                    pg_name: None,
                    dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let name = format!("fl_{label}_{}", Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url())
                    .await
                    .expect("connect to the test Postgres (FRESHLEDGER_TEST_PG)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                let base = admin_url();
                let base = base.rsplit_once('/').expect("a database URL").0;
                TestDb {
                    kind,
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    dir: None,
                }
            }
        }
    }

    /// Drops it (close every pool on it first).
    pub async fn remove(self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
