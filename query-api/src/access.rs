//! Who may read what: one table for every root field of the schema, shown
//! in the SDL as `@access(roles: […])` on the field and enforced by
//! [`guard`] in its resolver. Nested fields are reached only through a
//! root field, so they inherit its rule; ownership (a customer's own
//! orders, a rider's own deliveries, a seller's warehouses) is each
//! resolver's part, and what is not yours reads as absent.

use async_graphql::{Context, Error, ErrorExtensions, Result, TypeDirective};
use identity::roles::*;
use identity::{Access, Denied, Principal};

/// Every root field and who may use it.
pub const FIELDS: &[(&str, Access)] = &[
    ("products", PUBLIC),
    ("warehouses", STAFF),
    ("suppliers", STAFF),
    ("order", CUSTOMER_STAFF),
    ("customerOrders", CUSTOMER),
    ("delivery", EVERY_ROLE),
    ("expiringBatches", STAFF),
    ("spoilageLedger", STAFF),
    ("stockByWarehouse", STAFF),
    ("payments", CUSTOMER),
    ("orderStatus", CUSTOMER_STAFF),
    ("auditEvents", ADMIN),
    ("streamStateAsOf", ADMIN),
    ("lotRecall", ADMIN),
];

/// The rule of a root field.
pub fn rule(field: &str) -> Access {
    FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("{field} is missing from the access table"))
}

/// The role names of a field, for its `@access` directive.
pub(crate) fn roles_of(field: &str) -> Vec<String> {
    rule(field)
        .names()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Who may use the field (roles as in tokens; `anyone` when public).
#[TypeDirective(location = "FieldDefinition")]
#[allow(non_camel_case_types)]
pub fn access(roles: Vec<String>) {}

/// The subject of this request (none when signed out).
#[derive(Debug, Clone, Default)]
pub struct Viewer(pub Option<Principal>);

pub(crate) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

/// Applies the table's rule for `field`; the subject, if signed in.
pub(crate) fn guard<'a>(ctx: &'a Context<'_>, field: &str) -> Result<Option<&'a Principal>> {
    let who = ctx.data_opt::<Viewer>().and_then(|v| v.0.as_ref());
    match rule(field).check(who) {
        Ok(()) => Ok(who),
        Err(Denied::Unauthenticated) => Err(coded(
            "UNAUTHENTICATED",
            "sign in first: send Authorization: Bearer <access token>",
        )),
        Err(d) => Err(coded(
            if d == Denied::MfaRequired {
                "MFA_REQUIRED"
            } else {
                "FORBIDDEN"
            },
            d.message(),
        )),
    }
}

/// The subject of a field that requires one (after [`guard`]).
pub(crate) fn signed<'a>(ctx: &'a Context<'_>, field: &str) -> Result<&'a Principal> {
    guard(ctx, field)?.ok_or_else(|| coded("UNAUTHENTICATED", "sign in first"))
}

/// A warehouse filter a seller may use: theirs (the only one they have,
/// when none is named); admins any or none.
pub(crate) fn warehouse_scope(who: &Principal, asked: Option<String>) -> Result<Option<String>> {
    if who.is_admin() {
        return Ok(asked);
    }
    match asked {
        Some(w) if who.works_at(&w) => Ok(Some(w)),
        Some(_) => Err(coded("FORBIDDEN", "not one of your warehouses")),
        None => match who.warehouses.as_slice() {
            [only] => Ok(Some(only.clone())),
            _ => Err(coded(
                "BAD_USER_INPUT",
                "name the warehouse (warehouseId): you work for several, or none",
            )),
        },
    }
}
