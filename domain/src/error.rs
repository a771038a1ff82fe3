//! What every aggregate error shares: a stable machine-readable code and the
//! kind of failure, which the command API maps to an HTTP status.

/// The kind of a rejected command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is well-formed but not acceptable (422).
    Invalid,
    /// Something the command names does not exist (404).
    NotFound,
    /// The command is not allowed in the aggregate's current state (409).
    Conflict,
    /// Something the decision needs is out of reach; retry later (503).
    Unavailable,
}

pub trait DomainError: std::error::Error {
    /// Every code this error can carry, with its kind: the contract the
    /// API documents (`code` and `kind` of any value are one of these
    /// pairs; the command API checks that in debug builds).
    const CODES: &'static [(&'static str, ErrorKind)];
    /// A stable snake_case code, part of the API contract.
    fn code(&self) -> &'static str;
    fn kind(&self) -> ErrorKind;
}

/// How the API spells a value in words: its serde name, with underscores
/// read as spaces when `spaced` (`confirm_allocation` → "confirm
/// allocation"). For error messages written for a person, never Rust's
/// debug text.
pub(crate) fn spelled<T: serde::Serialize>(value: &T, spaced: bool) -> String {
    let word = serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if spaced {
        word.replace('_', " ")
    } else {
        word
    }
}
