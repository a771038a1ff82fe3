//! The identity routes: sign-up, sign-in (with a second factor), token
//! refresh, sign-out, email verification, password reset and change, MFA
//! enrolment, staff accounts, signing keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use identity::{AccountView, IdentityError, LoginOutcome, MfaEnabled, MfaEnrolment, Tokens};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Subject;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let err = ApiError::new(status, e.code(), e.to_string());
        match e {
            IdentityError::Locked { until } => err.with_details(serde_json::json!({
                "locked_until": until,
                "retry_after_seconds": (until - chrono::Utc::now()).num_seconds().max(1),
            })),
            _ => err,
        }
    }
}

/// Sign-in with email and password.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schemars(length(min = 1, max = 254))]
    pub email: String,
    #[schemars(length(min = 1, max = 1024))]
    pub password: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[schemars(length(min = 1, max = 1024))]
    pub refresh_token: String,
}

/// The second step of a sign-in with MFA.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerification {
    #[schemars(length(min = 1, max = 1024))]
    pub mfa_token: String,
    /// A 6-digit TOTP code, or a recovery code.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaConfirmation {
    /// The 6-digit code the authenticator shows now.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
}

/// A single-use token from a message we sent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    #[schemars(length(min = 1, max = 1024))]
    pub token: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schemars(length(min = 1, max = 254))]
    pub email: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmation {
    #[schemars(length(min = 1, max = 1024))]
    pub token: String,
    #[schemars(length(min = 10, max = 128))]
    pub new_password: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schemars(length(min = 1, max = 1024))]
    pub current_password: String,
    #[schemars(length(min = 10, max = 128))]
    pub new_password: String,
}

/// An answer that says what happened and nothing more.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Done {
    pub status: String,
}

fn done(status: StatusCode, what: &str) -> Response {
    (
        status,
        Json(Done {
            status: what.into(),
        }),
    )
        .into_response()
}

/// The published signing keys (RFC 7517).
#[derive(Debug, Serialize)]
pub struct Jwks(identity::JwkSet);

impl JsonSchema for Jwks {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Jwks".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "JSON Web Key Set (RFC 7517): the Ed25519 keys (kty OKP, crv Ed25519, alg EdDSA) that sign access tokens, by kid",
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {
                "type": "object",
                "required": ["kty", "kid"],
                "properties": {
                    "kty": {"type": "string"}, "kid": {"type": "string"}, "alg": {"type": "string"},
                    "use": {"type": "string"}, "crv": {"type": "string"}, "x": {"type": "string"},
                },
            }}},
        })
    }
}

/// A new signing key's id.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Rotated {
    pub kid: String,
}

pub async fn sign_up(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<identity::SignUp>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.identity.sign_up(b).await?)))
}

pub async fn login(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<Login>,
) -> Result<Json<LoginOutcome>, ApiError> {
    Ok(Json(s.identity.login(&b.email, &b.password).await?))
}

pub async fn verify_mfa(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<MfaVerification>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(s.identity.verify_mfa(&b.mfa_token, &b.code).await?))
}

pub async fn refresh(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<Refresh>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(s.identity.refresh(&b.refresh_token).await?))
}

pub async fn logout(
    State(s): State<AppState>,
    Subject(who): Subject,
) -> Result<Response, ApiError> {
    s.identity.logout(&who).await?;
    Ok(done(StatusCode::OK, "signed_out"))
}

pub async fn me(
    State(s): State<AppState>,
    Subject(who): Subject,
) -> Result<Json<AccountView>, ApiError> {
    match who.issuer {
        identity::Issuer::Local { .. } => Ok(Json(s.identity.view(who.subject).await?)),
        identity::Issuer::Oidc => Ok(Json(AccountView {
            account_id: who.subject,
            email: String::new(),
            display_name: String::new(),
            role: identity::role_name(who.role).into(),
            warehouses: who.warehouses.clone(),
            email_verified: who.email_verified,
            mfa_enabled: who.mfa,
            disabled: false,
            locked_until: None,
            created_at: chrono::Utc::now(),
        })),
    }
}

pub async fn verify_email(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<TokenBody>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(s.identity.verify_email(&b.token).await?))
}

pub async fn request_reset(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ResetRequest>,
) -> Result<Response, ApiError> {
    if b.email.trim().is_empty() || b.email.len() > 254 {
        return Err(ApiError::invalid(
            "invalid_email",
            "an email address has 1 to 254 characters",
        ));
    }
    s.identity.request_password_reset(&b.email).await?;
    Ok(done(StatusCode::ACCEPTED, "sent_if_the_account_exists"))
}

pub async fn confirm_reset(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ResetConfirmation>,
) -> Result<Response, ApiError> {
    s.identity.reset_password(&b.token, &b.new_password).await?;
    Ok(done(StatusCode::OK, "password_reset"))
}

pub async fn change_password(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiJson(b): ApiJson<PasswordChange>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(
        s.identity
            .change_password(&who, &b.current_password, &b.new_password)
            .await?,
    ))
}

pub async fn enrol_mfa(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiJson(_): ApiJson<crate::dto::Empty>,
) -> Result<Json<MfaEnrolment>, ApiError> {
    Ok(Json(s.identity.enrol_mfa(&who).await?))
}

pub async fn confirm_mfa(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiJson(b): ApiJson<MfaConfirmation>,
) -> Result<Json<MfaEnabled>, ApiError> {
    Ok(Json(s.identity.confirm_mfa(&who, &b.code).await?))
}

pub async fn create_account(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiJson(b): ApiJson<identity::NewAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    for w in &b.warehouses {
        let id: domain::values::WarehouseId =
            w.parse().map_err(|e: domain::values::ValueError| {
                ApiError::invalid("invalid_account", e.to_string())
            })?;
        let found = domain::Catalog::warehouse(s.write.catalog.as_ref(), &id)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            })?;
        if found.is_none() {
            return Err(ApiError::invalid(
                "unknown_warehouse",
                format!("warehouse {w} is not registered"),
            ));
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(s.identity.create_account(&who, b).await?),
    ))
}

pub async fn list_accounts(State(s): State<AppState>) -> Result<Json<Vec<AccountView>>, ApiError> {
    Ok(Json(s.identity.accounts().await?))
}

pub async fn disable_account(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(_): ApiJson<crate::dto::Empty>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(s.identity.set_disabled(&who, id, true).await?))
}

pub async fn enable_account(
    State(s): State<AppState>,
    Subject(who): Subject,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(_): ApiJson<crate::dto::Empty>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(s.identity.set_disabled(&who, id, false).await?))
}

pub async fn jwks(State(s): State<AppState>) -> Result<Json<Jwks>, ApiError> {
    Ok(Json(Jwks(s.identity.jwks().await?)))
}

pub async fn rotate_keys(
    State(s): State<AppState>,
    ApiJson(_): ApiJson<crate::dto::Empty>,
) -> Result<Json<Rotated>, ApiError> {
    Ok(Json(Rotated {
        kid: s.identity.rotate_keys().await?,
    }))
}
