//! The catalogue table behind `domain::Catalog`.

use async_trait::async_trait;
use domain::catalog::CatalogUnavailable;
use domain::values::Sku;
use domain::{Catalog, Product};
use store::{sql, Backend, Store, StoreError};

pub struct SqlCatalog {
    store: Store,
}

impl SqlCatalog {
    pub fn new(store: &Store) -> Self {
        SqlCatalog {
            store: store.clone(),
        }
    }

    /// One statement per dialect here, not `store::sql`: the Postgres column
    /// is `json` and needs the cast, which SQLite would read as a numeric
    /// affinity.
    pub async fn upsert(&self, p: &Product) -> Result<(), StoreError> {
        let json = serde_json::to_string(p).expect("products serialize");
        match self.store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query("INSERT INTO products (sku, product) VALUES ($1, $2::json) ON CONFLICT (sku) DO UPDATE SET product = EXCLUDED.product, updated_at = now()")
                    .bind(p.sku.as_str()).bind(json).execute(pool).await?;
            }
            Backend::Sqlite(pool) => {
                sqlx::query("INSERT INTO products (sku, product) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET product = excluded.product, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
                    .bind(p.sku.as_str()).bind(json).execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn get(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.read("WHERE sku = ?", &[sku.as_str().into()])
            .await
            .map(|mut p| p.pop())
    }

    pub async fn list(&self) -> Result<Vec<Product>, StoreError> {
        self.read("ORDER BY sku", &[]).await
    }

    async fn read(&self, clause: &str, args: &[sql::Arg]) -> Result<Vec<Product>, StoreError> {
        sql::fetch(
            &self.store,
            &format!("SELECT CAST(product AS TEXT) AS product FROM products {clause}"),
            args,
        )
        .await?
        .iter()
        .map(|r| {
            serde_json::from_str(r["product"].as_str().unwrap_or_default())
                .map_err(|e| StoreError::Persistence(format!("product: {e}")))
        })
        .collect()
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, CatalogUnavailable> {
        self.get(sku)
            .await
            .map_err(|e| CatalogUnavailable(e.to_string()))
    }
}
