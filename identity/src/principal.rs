//! Who is asking (the authenticated subject), and the rule of who may use
//! a route or a GraphQL field.

use event_schemas::{Actor, ActorRole};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a principal's token came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issuer {
    /// Our own access token, tied to a session that can be revoked.
    Local { session: Uuid },
    /// A token of the configured OpenID Connect issuer.
    Oidc,
}

/// The authenticated subject of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account (for an OIDC subject that is not a UUID: a UUID v5 of
    /// issuer and subject). It is also the customer's `customer_id` and
    /// the rider's `rider_id`.
    pub subject: Uuid,
    pub role: ActorRole,
    /// The warehouses a seller works for.
    pub warehouses: Vec<String>,
    /// Signed in with a second factor.
    pub mfa: bool,
    pub email_verified: bool,
    pub issuer: Issuer,
}

impl Principal {
    /// The actor recorded on every event this subject causes.
    pub fn actor(&self) -> Actor {
        Actor {
            role: self.role,
            id: self.subject.to_string(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == ActorRole::Admin
    }

    /// Staff: everyone but customers.
    pub fn is_staff(&self) -> bool {
        !matches!(self.role, ActorRole::Customer)
    }

    /// May this subject act on `warehouse`'s stock and orders?
    pub fn works_at(&self, warehouse: &str) -> bool {
        self.is_admin()
            || (self.role == ActorRole::Seller && self.warehouses.iter().any(|w| w == warehouse))
    }
}

/// Who may use a route or a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in subject (their own account, sign-out, MFA enrolment).
    Signed,
    /// Subjects of these roles only. An admin acts only after a second
    /// factor.
    Roles(&'static [ActorRole]),
}

/// Why a subject may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Nobody signed in.
    Unauthenticated,
    /// The role may not.
    Role,
    /// An admin signed in without a second factor.
    MfaRequired,
}

impl Denied {
    pub fn code(self) -> &'static str {
        match self {
            Denied::Unauthenticated => "unauthenticated",
            Denied::Role => "forbidden_role",
            Denied::MfaRequired => "mfa_required",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Denied::Unauthenticated => "sign in first: send Authorization: Bearer <access token>",
            Denied::Role => "your role may not do this",
            Denied::MfaRequired => {
                "admins act only after a second factor: enrol TOTP (POST /api/v1/auth/mfa/enrolment) and sign in with it"
            }
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Denied::Unauthenticated => 401,
            _ => 403,
        }
    }
}

/// Shorthands for the access tables.
pub mod roles {
    use super::{Access, ActorRole};
    use ActorRole::*;
    pub const PUBLIC: Access = Access::Public;
    pub const SIGNED: Access = Access::Signed;
    pub const ADMIN: Access = Access::Roles(&[Admin]);
    pub const STAFF: Access = Access::Roles(&[Seller, Admin]);
    pub const CUSTOMER: Access = Access::Roles(&[Customer, Admin]);
    pub const CUSTOMER_STAFF: Access = Access::Roles(&[Customer, Seller, Admin]);
    pub const RIDER: Access = Access::Roles(&[Delivery, Admin]);
    pub const RIDER_STAFF: Access = Access::Roles(&[Delivery, Seller, Admin]);
    pub const EVERY_ROLE: Access = Access::Roles(&[Customer, Seller, Delivery, Admin]);
}

/// The four roles a person can hold.
pub const PERSON_ROLES: [ActorRole; 4] = [
    ActorRole::Customer,
    ActorRole::Seller,
    ActorRole::Delivery,
    ActorRole::Admin,
];

impl Access {
    /// May `who` (nobody when `None`) use it?
    pub fn check(self, who: Option<&Principal>) -> Result<(), Denied> {
        match (self, who) {
            (Access::Public, _) => Ok(()),
            (_, None) => Err(Denied::Unauthenticated),
            (Access::Signed, Some(_)) => Ok(()),
            (Access::Roles(roles), Some(p)) => {
                if !roles.contains(&p.role) {
                    Err(Denied::Role)
                } else if p.is_admin() && !p.mfa {
                    Err(Denied::MfaRequired)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Does a subject of `role` (with a second factor) pass?
    pub fn allows(self, role: ActorRole) -> bool {
        match self {
            Access::Public | Access::Signed => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    /// The role names, as in tokens and events (`["seller", "admin"]`);
    /// `["anyone"]` for public, `["signed-in"]` for any subject.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Access::Public => vec!["anyone"],
            Access::Signed => vec!["signed-in"],
            Access::Roles(roles) => roles.iter().map(|r| role_name(*r)).collect(),
        }
    }
}

/// A role's name as tokens, events and the access tables write it.
pub fn role_name(role: ActorRole) -> &'static str {
    match role {
        ActorRole::Customer => "customer",
        ActorRole::Seller => "seller",
        ActorRole::Admin => "admin",
        ActorRole::Delivery => "delivery",
        ActorRole::System => "system",
    }
}

/// A person's role from its name (`system` is not one).
pub fn person_role(name: &str) -> Option<ActorRole> {
    PERSON_ROLES.into_iter().find(|r| role_name(*r) == name)
}
