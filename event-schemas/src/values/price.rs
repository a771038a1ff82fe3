//! Prices: per kilogram or per unit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// What a price is quoted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingUnit {
    /// Price per kilogram; sold by weight in grams.
    PerKg,
    /// Price per piece; sold in whole units.
    PerUnit,
}

impl PricingUnit {
    /// The unit of measure a product priced this way is sold in.
    pub fn unit_of_measure(&self) -> UnitOfMeasure {
        match self {
            PricingUnit::PerKg => UnitOfMeasure::Gram,
            PricingUnit::PerUnit => UnitOfMeasure::Unit,
        }
    }
}

/// A price quoted per kilogram or per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitPrice {
    pub amount: Money,
    pub per: PricingUnit,
}

impl UnitPrice {
    /// The price of `quantity`: per-kg prices are pro-rated by grams and
    /// rounded half-up to the minor unit, in integer arithmetic.
    pub fn price_of(&self, quantity: Quantity) -> Result<Money, PriceError> {
        let amount = quantity.expect_uom(self.per.unit_of_measure())? as i128;
        let unit = self.amount.amount_minor() as i128;
        let total = match self.per {
            PricingUnit::PerKg => (unit * amount + 500) / 1000,
            PricingUnit::PerUnit => unit * amount,
        };
        let total = i64::try_from(total).map_err(|_| PriceError::Overflow)?;
        Money::new(total, self.amount.currency()).map_err(|_| PriceError::Overflow)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error(transparent)]
    Unit(#[from] UnitMismatch),
    #[error("price overflows")]
    Overflow,
}
