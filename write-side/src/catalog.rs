//! Reference data behind `domain::Catalog`: the store's `products`,
//! `warehouses` and `suppliers` tables, read back into the domain's types.

use async_trait::async_trait;
use domain::catalog::CatalogUnavailable;
use domain::values::{Sku, SupplierId, WarehouseId};
use domain::{Catalog, Product, Supplier, Warehouse};
use store::{Store, StoreError};

pub struct StoreCatalog {
    store: Store,
}

fn unavailable(e: StoreError) -> CatalogUnavailable {
    CatalogUnavailable(e.to_string())
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

    /// Registers (or replaces) a warehouse.
    pub async fn register_warehouse(&self, w: &Warehouse) -> Result<(), StoreError> {
        self.store.put_warehouse(w.id.as_str(), w).await
    }

    /// Every registered warehouse, in id order.
    pub async fn warehouses(&self) -> Result<Vec<Warehouse>, StoreError> {
        self.store.warehouses("", usize::MAX).await
    }

    /// Registers (or replaces) a supplier.
    pub async fn register_supplier(&self, s: &Supplier) -> Result<(), StoreError> {
        self.store.put_supplier(s.id.as_str(), s).await
    }

    /// Every registered supplier, in id order.
    pub async fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        self.store.suppliers("", usize::MAX).await
    }
}

#[async_trait]
impl Catalog for StoreCatalog {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, CatalogUnavailable> {
        self.get(sku).await.map_err(unavailable)
    }
    async fn warehouse(&self, id: &WarehouseId) -> Result<Option<Warehouse>, CatalogUnavailable> {
        self.store.warehouse(id.as_str()).await.map_err(unavailable)
    }
    async fn supplier(&self, id: &SupplierId) -> Result<Option<Supplier>, CatalogUnavailable> {
        self.store.supplier(id.as_str()).await.map_err(unavailable)
    }
}
