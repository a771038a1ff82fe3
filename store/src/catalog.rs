//! The catalogue table (`products`): reference data orders are priced from,
//! not event-sourced (ARCHITECTURE.md, "Catalogue decision"). The store owns
//! the table; callers give and get their own product type, stored as JSON
//! and read back into that type (a row that does not fit is an error, never
//! a default).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sql::{self, Arg};
use crate::{Backend, Store, StoreError};

impl Store {
    /// Creates or replaces the product with this SKU.
    pub async fn put_product<P: Serialize>(
        &self,
        sku: &str,
        product: &P,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(product).map_err(|e| StoreError::CorruptRow {
            table: "products",
            key: sku.to_string(),
            reason: e.to_string(),
        })?;
        // One statement per dialect: the Postgres column is `json` and needs
        // the cast, which SQLite would read as a numeric affinity.
        let statement = match self.backend() {
            Backend::Postgres(_) => {
                "INSERT INTO products (sku, product) VALUES (?, CAST(? AS json)) \
                 ON CONFLICT (sku) DO UPDATE SET product = EXCLUDED.product, updated_at = now()"
            }
            Backend::Sqlite(_) => {
                "INSERT INTO products (sku, product) VALUES (?, ?) \
                 ON CONFLICT (sku) DO UPDATE SET product = excluded.product, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
            }
        };
        sql::exec_pool(self, statement, &[sku.into(), json.into()]).await?;
        Ok(())
    }

    /// The product with this SKU, if catalogued.
    pub async fn product<P: DeserializeOwned>(&self, sku: &str) -> Result<Option<P>, StoreError> {
        Ok(self
            .read_products("WHERE sku = ?", vec![sku.into()])
            .await?
            .pop())
    }

    /// Up to `limit` products with a SKU after `after` (`""`: from the
    /// start), in SKU order.
    pub async fn products<P: DeserializeOwned>(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<P>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_products(
            "WHERE sku > ? ORDER BY sku LIMIT ?",
            vec![after.into(), limit.into()],
        )
        .await
    }

    async fn read_products<P: DeserializeOwned>(
        &self,
        clause: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<P>, StoreError> {
        sql::fetch(
            self,
            &format!("SELECT sku, CAST(product AS TEXT) AS product FROM products {clause}"),
            &args,
        )
        .await?
        .iter()
        .map(|r| {
            let sku = r["sku"].as_str().unwrap_or_default();
            serde_json::from_str(r["product"].as_str().unwrap_or_default()).map_err(|e| {
                StoreError::CorruptRow {
                    table: "products",
                    key: sku.to_string(),
                    reason: e.to_string(),
                }
            })
        })
        .collect()
    }
}
