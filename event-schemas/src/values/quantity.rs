//! Quantities: integer grams or whole units, never mixed.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// How stock of a product is counted: by weight in grams, or in whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitOfMeasure {
    /// Integer grams.
    Gram,
    /// Whole pieces (a pineapple, a bunch, a punnet).
    Unit,
}

impl fmt::Display for UnitOfMeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitOfMeasure::Gram => "g",
            UnitOfMeasure::Unit => "unit",
        })
    }
}

/// A strictly positive amount in one unit of measure. Grams and units never
/// mix: arithmetic on different units is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "QuantityRepr")]
pub struct Quantity {
    uom: UnitOfMeasure,
    /// Grams or whole units, at least 1.
    #[schemars(range(min = 1))]
    amount: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Quantity")]
struct QuantityRepr {
    uom: UnitOfMeasure,
    /// Grams or whole units, at least 1.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    amount: i64,
}

impl TryFrom<QuantityRepr> for Quantity {
    type Error = ValueError;
    fn try_from(r: QuantityRepr) -> Result<Self, Self::Error> {
        if r.amount <= 0 {
            return Err(ValueError::new(
                "quantity",
                format!("{} must be at least 1 {}", r.amount, r.uom),
            ));
        }
        Quantity::new(r.uom, r.amount as u64)
    }
}

/// Largest quantity accepted anywhere: 1,000 tonnes or a billion units.
pub const MAX_QUANTITY: u64 = 1_000_000_000;

impl Quantity {
    pub fn new(uom: UnitOfMeasure, amount: u64) -> Result<Self, ValueError> {
        if amount == 0 {
            return Err(ValueError::new(
                "quantity",
                format!("0 {uom} is not a quantity"),
            ));
        }
        if amount > MAX_QUANTITY {
            return Err(ValueError::new(
                "quantity",
                format!("{amount} exceeds the maximum of {MAX_QUANTITY}"),
            ));
        }
        Ok(Quantity { uom, amount })
    }
    pub fn grams(amount: u64) -> Result<Self, ValueError> {
        Self::new(UnitOfMeasure::Gram, amount)
    }
    pub fn units(amount: u64) -> Result<Self, ValueError> {
        Self::new(UnitOfMeasure::Unit, amount)
    }
    pub fn uom(&self) -> UnitOfMeasure {
        self.uom
    }
    pub fn amount(&self) -> u64 {
        self.amount
    }
    /// Checks that this quantity is counted in `uom`.
    pub fn expect_uom(&self, uom: UnitOfMeasure) -> Result<u64, UnitMismatch> {
        if self.uom != uom {
            return Err(UnitMismatch {
                expected: uom,
                actual: self.uom,
            });
        }
        Ok(self.amount)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.uom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a quantity in {expected}, got {actual}")]
pub struct UnitMismatch {
    pub expected: UnitOfMeasure,
    pub actual: UnitOfMeasure,
}
