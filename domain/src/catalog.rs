//! The product catalogue orders are priced from.
//!
//! Products are reference data, not an event-sourced aggregate: an order
//! records the price it was placed at (`OrderLine::unit_price`), so history
//! never depends on today's catalogue, and nothing in the write model needs a
//! product's past. The catalogue is reached through the `Catalog` trait; the
//! server backs it with a table, tests with `InMemoryCatalog`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::{Supplier, Warehouse};
use crate::values::{
    Money, PricingUnit, Sku, SupplierId, Text, UnitPrice, ValueError, WarehouseId,
};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Fruit,
    Vegetable,
    Herb,
    Mushroom,
    Organic,
    Imported,
}

/// Nutrition per 100 g, in integer units (kcal, milligrams).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nutrition {
    pub energy_kcal: u32,
    pub protein_mg: u32,
    pub carbohydrate_mg: u32,
    pub sugar_mg: u32,
    pub fat_mg: u32,
    pub fibre_mg: u32,
}

impl Nutrition {
    /// Macronutrients cannot weigh more than the 100 g they are measured in.
    pub fn validate(&self) -> Result<(), ValueError> {
        let total = self.protein_mg as u64
            + self.carbohydrate_mg as u64
            + self.fat_mg as u64
            + self.fibre_mg as u64;
        if total > 100_000 {
            return Err(ValueError::new(
                "nutrition",
                "macronutrients exceed 100 g per 100 g",
            ));
        }
        if self.sugar_mg > self.carbohydrate_mg {
            return Err(ValueError::new("nutrition", "sugar exceeds carbohydrate"));
        }
        Ok(())
    }
}

/// A product as sold: price per kg or per unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: Sku,
    pub name: Text<120>,
    /// The first category is the primary one; `organic`/`imported` are tags.
    pub categories: Vec<Category>,
    pub price: UnitPrice,
    /// Country of origin, ISO 3166-1 alpha-2.
    pub origin: String,
    pub nutrition: Nutrition,
}

impl Product {
    pub fn new(
        sku: Sku,
        name: &str,
        categories: Vec<Category>,
        price: Money,
        per: PricingUnit,
        origin: &str,
        nutrition: Nutrition,
    ) -> Result<Self, ValueError> {
        if categories.is_empty() {
            return Err(ValueError::new("categories", "at least one is required"));
        }
        if price.is_zero() {
            return Err(ValueError::new("price", "a product cannot be free"));
        }
        if origin.len() != 2 || !origin.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValueError::new(
                "origin",
                format!("{origin:?} is not an ISO 3166-1 alpha-2 code"),
            ));
        }
        nutrition.validate()?;
        Ok(Product {
            sku,
            name: name.parse()?,
            categories,
            price: UnitPrice { amount: price, per },
            origin: origin.to_string(),
            nutrition,
        })
    }
}

/// The catalogue could not be read (its database is down): not the same as
/// an unknown product.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalogue unavailable: {0}")]
pub struct CatalogUnavailable(pub String);

/// Where aggregates look reference data up: prices, warehouses, suppliers.
#[async_trait]
pub trait Catalog: Send + Sync {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, CatalogUnavailable>;
    async fn warehouse(&self, id: &WarehouseId) -> Result<Option<Warehouse>, CatalogUnavailable>;
    async fn supplier(&self, id: &SupplierId) -> Result<Option<Supplier>, CatalogUnavailable>;
}

/// Reference data held in memory (tests).
#[derive(Debug, Default)]
pub struct InMemoryCatalog {
    products: RwLock<BTreeMap<Sku, Product>>,
    warehouses: RwLock<BTreeMap<WarehouseId, Warehouse>>,
    suppliers: RwLock<BTreeMap<SupplierId, Supplier>>,
}

impl InMemoryCatalog {
    pub fn new(products: impl IntoIterator<Item = Product>) -> Self {
        let c = InMemoryCatalog::default();
        for p in products {
            c.upsert(p);
        }
        c
    }
    pub fn upsert(&self, p: Product) {
        self.products
            .write()
            .expect("catalog lock")
            .insert(p.sku.clone(), p);
    }
    /// With [`sample_warehouse`]s and [`sample_supplier`]s of these ids
    /// (tests that are not about the registry).
    ///
    /// [`sample_warehouse`]: crate::registry::sample_warehouse
    /// [`sample_supplier`]: crate::registry::sample_supplier
    pub fn with_samples(self, warehouses: &[&str], suppliers: &[&str]) -> Self {
        for w in warehouses {
            self.register_warehouse(crate::registry::sample_warehouse(w));
        }
        for s in suppliers {
            self.register_supplier(crate::registry::sample_supplier(s));
        }
        self
    }

    pub fn register_warehouse(&self, w: Warehouse) {
        self.warehouses
            .write()
            .expect("catalog lock")
            .insert(w.id.clone(), w);
    }
    pub fn register_supplier(&self, s: Supplier) {
        self.suppliers
            .write()
            .expect("catalog lock")
            .insert(s.id.clone(), s);
    }
}

#[async_trait]
impl Catalog for InMemoryCatalog {
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, CatalogUnavailable> {
        Ok(self
            .products
            .read()
            .expect("catalog lock")
            .get(sku)
            .cloned())
    }
    async fn warehouse(&self, id: &WarehouseId) -> Result<Option<Warehouse>, CatalogUnavailable> {
        Ok(self
            .warehouses
            .read()
            .expect("catalog lock")
            .get(id)
            .cloned())
    }
    async fn supplier(&self, id: &SupplierId) -> Result<Option<Supplier>, CatalogUnavailable> {
        Ok(self
            .suppliers
            .read()
            .expect("catalog lock")
            .get(id)
            .cloned())
    }
}
