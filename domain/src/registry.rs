//! The registries batches and orders must name: warehouses (where stock is
//! kept and orders are filled from) and suppliers (who stock comes from).
//! Reference data like the catalogue, reached through [`Catalog`]: a batch
//! for an unknown warehouse or supplier, or an order for an unknown
//! warehouse, is refused.
//!
//! [`Catalog`]: crate::Catalog

use std::collections::BTreeSet;

use event_schemas::inventory::ColdChain;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Address, SupplierId, Text, ValueError, WarehouseId};

/// Most storage zones one warehouse may list.
pub const MAX_ZONES: usize = 64;

/// One storage zone of a warehouse (`CHILL-A`), and the storage it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub code: Text<32>,
    pub storage: ColdChain,
}

/// A warehouse: its address and storage zones. Its cold-chain capability is
/// the storage its zones keep: a chilled batch can only be received where a
/// zone is chilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub name: Text<120>,
    pub address: Address,
    pub zones: Vec<Zone>,
}

impl Warehouse {
    pub fn new(
        id: WarehouseId,
        name: Text<120>,
        address: Address,
        zones: Vec<Zone>,
    ) -> Result<Self, ValueError> {
        if zones.is_empty() {
            return Err(ValueError::new(
                "zones",
                "a warehouse has at least one zone",
            ));
        }
        if zones.len() > MAX_ZONES {
            return Err(ValueError::new(
                "zones",
                format!("a warehouse has at most {MAX_ZONES} zones"),
            ));
        }
        let mut seen = BTreeSet::new();
        for z in &zones {
            if !seen.insert(z.code.as_str()) {
                return Err(ValueError::new(
                    "zones",
                    format!("zone {} is listed twice", z.code),
                ));
            }
        }
        Ok(Warehouse {
            id,
            name,
            address,
            zones,
        })
    }

    /// Whether some zone keeps this storage.
    pub fn keeps(&self, storage: ColdChain) -> bool {
        self.zones.iter().any(|z| z.storage == storage)
    }
}

/// How to reach a supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: Text<120>,
    pub email: String,
    /// E.164 (`+4930123456`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub phone: Option<String>,
}

impl Contact {
    pub fn new(name: Text<120>, email: &str, phone: Option<&str>) -> Result<Self, ValueError> {
        if !is_email(email) {
            return Err(ValueError::new(
                "email",
                format!("{email:?} is not an email address"),
            ));
        }
        if let Some(p) = phone {
            if !is_e164(p) {
                return Err(ValueError::new(
                    "phone",
                    format!("{p:?} is not an E.164 number (+ and 7 to 15 digits)"),
                ));
            }
        }
        Ok(Contact {
            name,
            email: email.to_string(),
            phone: phone.map(str::to_string),
        })
    }
}

/// `local@domain.tld`, at most 254 characters, no spaces: what a form
/// would accept, not RFC 5322 in full.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.chars().all(|c| c.is_ascii_graphic())
}

/// A phone number in E.164: `+` and 7 to 15 digits, the first not 0 (what
/// [`is_e164`] accepts, for schemas).
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{6,14}$";

/// `+` and 7 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A supplier stock is bought from (certifications come later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Supplier {
    pub id: SupplierId,
    pub name: Text<120>,
    pub contact: Contact,
}

/// A warehouse with one zone of each storage at a made-up address, for
/// tests and examples that are not about the registry.
pub fn sample_warehouse(id: &str) -> Warehouse {
    let zones = [ColdChain::Ambient, ColdChain::Chilled, ColdChain::Frozen]
        .into_iter()
        .enumerate()
        .map(|(i, storage)| Zone {
            code: format!("Z-{i}").parse().expect("valid code"),
            storage,
        })
        .collect();
    Warehouse::new(
        id.parse().expect("a valid warehouse id"),
        format!("Warehouse {id}").parse().expect("valid name"),
        Address::new("Receiving", "Lagerstraße 1", None, "Berlin", "10115", "DE")
            .expect("valid address"),
        zones,
    )
    .expect("a valid warehouse")
}

/// A supplier with a made-up contact, for tests and examples that are not
/// about the registry.
pub fn sample_supplier(id: &str) -> Supplier {
    Supplier {
        id: id.parse().expect("a valid supplier id"),
        name: format!("Supplier {id}").parse().expect("valid name"),
        contact: Contact::new("Sales".parse().expect("valid"), "sales@example.com", None)
            .expect("valid contact"),
    }
}
