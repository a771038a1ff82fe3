//! Reference data: the product catalogue orders are priced from, and the
//! registries of warehouses and suppliers that batches and orders must name.
//! Not event-sourced (ARCHITECTURE.md, "Catalogue decision"). The store owns
//! the tables; callers give and get their own types, stored as JSON and read
//! back into that type (a row that does not fit is an error, never a
//! default).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sql::{self, Arg};
use crate::{Backend, Store, StoreError};

/// One table of reference data: a text key and a JSON document.
#[derive(Debug, Clone, Copy)]
struct Table {
    name: &'static str,
    key: &'static str,
    doc: &'static str,
}

const PRODUCTS: Table = Table {
    name: "products",
    key: "sku",
    doc: "product",
};
const WAREHOUSES: Table = Table {
    name: "warehouses",
    key: "id",
    doc: "warehouse",
};
const SUPPLIERS: Table = Table {
    name: "suppliers",
    key: "id",
    doc: "supplier",
};

impl Store {
    /// Creates or replaces the product with this SKU.
    pub async fn put_product<P: Serialize>(
        &self,
        sku: &str,
        product: &P,
    ) -> Result<(), StoreError> {
        self.put(PRODUCTS, sku, product).await
    }

    /// The product with this SKU, if catalogued.
    pub async fn product<P: DeserializeOwned>(&self, sku: &str) -> Result<Option<P>, StoreError> {
        self.get(PRODUCTS, sku).await
    }

    /// Up to `limit` products with a SKU after `after` (`""`: from the
    /// start), in SKU order.
    pub async fn products<P: DeserializeOwned>(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<P>, StoreError> {
        self.list(PRODUCTS, after, limit).await
    }

    /// Creates or replaces the warehouse with this id.
    pub async fn put_warehouse<W: Serialize>(
        &self,
        id: &str,
        warehouse: &W,
    ) -> Result<(), StoreError> {
        self.put(WAREHOUSES, id, warehouse).await
    }

    /// The warehouse with this id, if registered.
    pub async fn warehouse<W: DeserializeOwned>(&self, id: &str) -> Result<Option<W>, StoreError> {
        self.get(WAREHOUSES, id).await
    }

    /// Up to `limit` warehouses with an id after `after`, in id order.
    pub async fn warehouses<W: DeserializeOwned>(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<W>, StoreError> {
        self.list(WAREHOUSES, after, limit).await
    }

    /// Creates or replaces the supplier with this id.
    pub async fn put_supplier<S: Serialize>(
        &self,
        id: &str,
        supplier: &S,
    ) -> Result<(), StoreError> {
        self.put(SUPPLIERS, id, supplier).await
    }

    /// The supplier with this id, if registered.
    pub async fn supplier<S: DeserializeOwned>(&self, id: &str) -> Result<Option<S>, StoreError> {
        self.get(SUPPLIERS, id).await
    }

    /// Up to `limit` suppliers with an id after `after`, in id order.
    pub async fn suppliers<S: DeserializeOwned>(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<S>, StoreError> {
        self.list(SUPPLIERS, after, limit).await
    }

    async fn put<T: Serialize>(&self, t: Table, key: &str, doc: &T) -> Result<(), StoreError> {
        let json = serde_json::to_string(doc).map_err(|e| StoreError::CorruptRow {
            table: t.name,
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        // One statement per dialect: the Postgres column is `json` and needs
        // the cast, which SQLite would read as a numeric affinity.
        let (value, now) = match self.backend() {
            Backend::Postgres(_) => ("CAST(? AS json)", "now()"),
            Backend::Sqlite(_) => ("?", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
        };
        let statement = format!(
            "INSERT INTO {name} ({key}, {doc}) VALUES (?, {value}) \
             ON CONFLICT ({key}) DO UPDATE SET {doc} = excluded.{doc}, updated_at = {now}",
            name = t.name,
            key = t.key,
            doc = t.doc,
        );
        sql::exec_pool(self, &statement, &[key.into(), json.into()]).await?;
        Ok(())
    }

    async fn get<T: DeserializeOwned>(&self, t: Table, key: &str) -> Result<Option<T>, StoreError> {
        Ok(self
            .read(t, &format!("WHERE {} = ?", t.key), vec![key.into()])
            .await?
            .pop())
    }

    async fn list<T: DeserializeOwned>(
        &self,
        t: Table,
        after: &str,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(
            t,
            &format!("WHERE {key} > ? ORDER BY {key} LIMIT ?", key = t.key),
            vec![after.into(), limit.into()],
        )
        .await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        t: Table,
        clause: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, StoreError> {
        sql::fetch(
            self,
            &format!(
                "SELECT {key} AS k, CAST({doc} AS TEXT) AS d FROM {name} {clause}",
                key = t.key,
                doc = t.doc,
                name = t.name,
            ),
            &args,
        )
        .await?
        .iter()
        .map(|r| {
            serde_json::from_str(r["d"].as_str().unwrap_or_default()).map_err(|e| {
                StoreError::CorruptRow {
                    table: t.name,
                    key: r["k"].as_str().unwrap_or_default().to_string(),
                    reason: e.to_string(),
                }
            })
        })
        .collect()
    }
}
