//! Value objects shared by every event and command.
//!
//! Parse, don't validate: every type here can only be constructed through a
//! checked constructor (or `Deserialize`, which goes through the same check),
//! so an instance is always valid and its error says why not.

mod ids;
mod money;
mod place;
mod price;
mod quantity;
mod text;

pub use ids::*;
pub use money::*;
pub use place::*;
pub use price::*;
pub use quantity::*;
pub use text::*;

/// Why a value could not be constructed. `field` names what was wrong in the
/// input's own vocabulary so an API can report it verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValueError {
    pub field: &'static str,
    pub reason: String,
}

impl ValueError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
