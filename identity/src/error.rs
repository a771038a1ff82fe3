//! What identity refuses, each with a stable code and an HTTP status.

use chrono::{DateTime, Utc};
use store::StoreError;

/// A refused account operation (sign-up, login, tokens, MFA, admin).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request is well-formed but its values are not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many failed sign-ins: the account is locked until {until}")]
    Locked { until: DateTime<Utc> },
    #[error("this account is disabled")]
    Disabled,
    /// An opaque token (refresh, verification, reset, MFA challenge) that
    /// is unknown, used, expired or revoked.
    #[error("{message}")]
    BadToken {
        code: &'static str,
        message: &'static str,
    },
    #[error("this refresh token was already used: every session of its family is revoked; sign in again")]
    RefreshReused,
    #[error("the authentication code is wrong")]
    InvalidMfaCode,
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("no such account")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        IdentityError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::Invalid { code, .. }
            | IdentityError::BadToken { code, .. }
            | IdentityError::Conflict { code, .. }
            | IdentityError::Forbidden { code, .. } => code,
            IdentityError::EmailTaken => "email_taken",
            IdentityError::InvalidCredentials => "invalid_credentials",
            IdentityError::Locked { .. } => "account_locked",
            IdentityError::Disabled => "account_disabled",
            IdentityError::RefreshReused => "refresh_token_reused",
            IdentityError::InvalidMfaCode => "invalid_mfa_code",
            IdentityError::NotFound => "account_not_found",
            IdentityError::Store(e) if e.is_outage() => "unavailable",
            IdentityError::Store(_) => "internal",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            IdentityError::Invalid { .. } => 422,
            IdentityError::EmailTaken | IdentityError::Conflict { .. } => 409,
            IdentityError::InvalidCredentials
            | IdentityError::BadToken { .. }
            | IdentityError::RefreshReused
            | IdentityError::InvalidMfaCode => 401,
            IdentityError::Locked { .. } => 423,
            IdentityError::Disabled | IdentityError::Forbidden { .. } => 403,
            IdentityError::NotFound => 404,
            IdentityError::Store(e) if e.is_outage() => 503,
            IdentityError::Store(_) => 500,
        }
    }

    /// Every code an identity route can answer, with its status (for the
    /// OpenAPI document).
    pub const CODES: &'static [(u16, &'static str)] = &[
        (422, "weak_password"),
        (422, "invalid_email"),
        (422, "invalid_account"),
        (409, "email_taken"),
        (401, "invalid_credentials"),
        (423, "account_locked"),
        (403, "account_disabled"),
        (401, "invalid_refresh_token"),
        (401, "refresh_token_reused"),
        (401, "invalid_mfa_token"),
        (401, "invalid_mfa_code"),
        (401, "invalid_token"),
        (409, "mfa_already_enabled"),
        (409, "mfa_not_enrolled"),
        (403, "mfa_staff_only"),
        (403, "not_owner"),
        (404, "account_not_found"),
        (409, "cannot_disable_self"),
        (403, "external_account"),
    ];
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was sent")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token's session was revoked or its account disabled")]
    Revoked,
    #[error("the token carries no role this API knows")]
    NoRole,
    #[error("the token could not be checked now; try again")]
    Unavailable,
}

impl AuthError {
    /// The RFC 6750 error of a `WWW-Authenticate: Bearer` challenge.
    pub fn challenge(&self) -> String {
        match self {
            AuthError::Missing => r#"Bearer realm="freshledger""#.to_string(),
            AuthError::Malformed => {
                r#"Bearer realm="freshledger", error="invalid_request""#.to_string()
            }
            other => format!(
                r#"Bearer realm="freshledger", error="invalid_token", error_description="{}""#,
                other.to_string().replace('"', "'")
            ),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::Malformed => "malformed_authorization",
            AuthError::Expired => "token_expired",
            AuthError::Invalid(_) => "invalid_token",
            AuthError::Revoked => "token_revoked",
            AuthError::NoRole => "no_role",
            AuthError::Unavailable => "unavailable",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AuthError::NoRole => 403,
            AuthError::Unavailable => 503,
            _ => 401,
        }
    }

    pub const CODES: &'static [(u16, &'static str)] = &[
        (401, "unauthenticated"),
        (401, "malformed_authorization"),
        (401, "token_expired"),
        (401, "invalid_token"),
        (401, "token_revoked"),
    ];
}
