//! The catalogue table behind `domain::Catalog`.

use async_trait::async_trait;
use domain::catalog::CatalogUnavailable;
use domain::values::Sku;
use domain::{Catalog, Product};
use store::{Backend, Store, StoreError};

pub struct SqlCatalog {
    store: Store,
}

impl SqlCatalog {
    pub fn new(store: &Store) -> Self {
        SqlCatalog {
            store: store.clone(),
        }
    }

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
        let row: Option<String> = match self.store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT product::text FROM products WHERE sku = $1")
                    .bind(sku.as_str())
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("SELECT product FROM products WHERE sku = ?")
                    .bind(sku.as_str())
                    .fetch_optional(pool)
                    .await?
            }
        };
        row.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| StoreError::Persistence(format!("product {sku}: {e}")))
        })
        .transpose()
    }

    pub async fn list(&self) -> Result<Vec<Product>, StoreError> {
        let rows: Vec<String> = match self.store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT product::text FROM products ORDER BY sku")
                    .fetch_all(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("SELECT product FROM products ORDER BY sku")
                    .fetch_all(pool)
                    .await?
            }
        };
        rows.iter()
            .map(|j| {
                serde_json::from_str(j)
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
