//! The catalogue behind `domain::Catalog`: the store's `products` table,
//! read back into `domain::Product`.

use async_trait::async_trait;
use domain::catalog::CatalogUnavailable;
use domain::values::Sku;
use domain::{Catalog, Product};
use store::{Store, StoreError};

pub struct StoreCatalog {
    store: Store,
}

impl StoreCatalog {
    pub fn new(store: &Store) -> Self {
        StoreCatalog {
            store: store.clone(),
        }
    }

    pub async fn upsert(&self, p: &Product) -> Result<(), StoreError> {
        self.store.put_product(p.sku.as_str(), p).await
    }

    pub async fn get(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.store.product(sku.as_str()).await
    }

    /// The whole catalogue, in SKU order.
    pub async fn list(&self) -> Result<Vec<Product>, StoreError> {
        self.store.products("", usize::MAX).await
    }
}

#[async_trait]
impl Catalog for StoreCatalog {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, CatalogUnavailable> {
        self.get(sku)
            .await
            .map_err(|e| CatalogUnavailable(e.to_string()))
    }
}
