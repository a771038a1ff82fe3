//! Sessions, access tokens and refresh tokens.
//!
//! A session begins at sign-in and is what a refresh-token family belongs
//! to. Access tokens are short-lived EdDSA JWTs naming their session
//! (`sid`); every request checks that the session is live and the account
//! enabled, so sign-out and disabling take effect at once. Refresh tokens
//! are opaque (256 random bits), stored as SHA-256 hashes, and rotated on
//! every use: presenting a used one revokes its whole session.
//!
//! A token checked in full (signature, claims, session, account) is taken
//! as checked for [`RECHECK`] after: at a thousand requests a second, the
//! session lookup and the signature check would otherwise be a large
//! share of a small machine's work. A revocation in this process clears
//! that memory at once; in another process it is seen within [`RECHECK`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use event_schemas::ActorRole;
use jsonwebtoken::errors::ErrorKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::sql::{exec_pool, fetch};
use uuid::Uuid;

use crate::error::{AuthError, IdentityError};
use crate::principal::{Issuer, Principal};
use crate::{AccountRow, Identity};

/// How long a fully checked access token is taken as checked.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Most tokens remembered as checked (the memory is emptied beyond).
const CHECKED_MAX: usize = 10_000;

/// Access tokens checked lately, with the subject each names and until
/// when it stands.
#[derive(Default)]
pub(crate) struct Checked(
    std::sync::Mutex<std::collections::HashMap<String, (Principal, std::time::Instant)>>,
);

impl Checked {
    pub(crate) fn get(&self, token: &str) -> Option<Principal> {
        let map = self.0.lock().expect("checked tokens");
        map.get(token)
            .filter(|(_, until)| *until > std::time::Instant::now())
            .map(|(p, _)| p.clone())
    }

    fn remember(&self, token: &str, principal: &Principal, exp: i64) {
        let left = (exp - Utc::now().timestamp()).max(0) as u64;
        let until = std::time::Instant::now() + RECHECK.min(std::time::Duration::from_secs(left));
        let mut map = self.0.lock().expect("checked tokens");
        if map.len() >= CHECKED_MAX {
            map.clear();
        }
        map.insert(token.to_string(), (principal.clone(), until));
    }

    /// Forgets every checked token (a session or account was revoked).
    pub(crate) fn forget(&self) {
        self.0.lock().expect("checked tokens").clear();
    }
}

/// The claims of our access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    pub role: ActorRole,
    /// Signed in with a second factor.
    pub mfa: bool,
    pub email_verified: bool,
    /// A seller's warehouses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warehouses: Vec<String>,
}

/// What a sign-in or a refresh hands out.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tokens {
    /// The bearer token for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Trade it for new tokens at `POST /api/v1/auth/refresh`; each works
    /// once.
    pub refresh_token: String,
    /// The session these tokens belong to.
    pub session_id: Uuid,
}

pub(crate) fn secret_token() -> String {
    let raw: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token's algorithm, if one of `accepted`, and its key id (required).
pub(crate) fn algorithm_and_kid(
    token: &str,
    accepted: &[jsonwebtoken::Algorithm],
) -> Result<(jsonwebtoken::Algorithm, String), AuthError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
    if !accepted.contains(&header.alg) {
        return Err(AuthError::Invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| AuthError::Invalid("the token names no key id".into()))?;
    Ok((header.alg, kid))
}

pub(crate) fn auth_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
        ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
        ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
        ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm not accepted".into()),
        ErrorKind::ImmatureSignature => AuthError::Invalid("not valid yet".into()),
        other => AuthError::Invalid(format!("{other:?}")),
    }
}

#[derive(Deserialize)]
struct SessionRow {
    account_id: Uuid,
    mfa: i64,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct RefreshRow {
    session_id: Uuid,
    used_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct LiveRow {
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl Identity {
    /// Starts a session for `account` and hands out its first tokens.
    pub(crate) async fn open_session(
        &self,
        account: &AccountRow,
        mfa: bool,
    ) -> Result<Tokens, IdentityError> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        exec_pool(
            self.store(),
            "INSERT INTO identity_sessions (id, account_id, mfa, created_at, expires_at, revoked_at, revoked_reason) VALUES (?, ?, ?, ?, ?, NULL, NULL)",
            &[
                id.to_string().into(),
                account.id.to_string().into(),
                i64::from(mfa).into(),
                now.to_rfc3339().into(),
                (now + self.config().session_ttl).to_rfc3339().into(),
            ],
        )
        .await?;
        self.tokens_for(account, id, mfa).await
    }

    async fn tokens_for(
        &self,
        account: &AccountRow,
        session: Uuid,
        mfa: bool,
    ) -> Result<Tokens, IdentityError> {
        let refresh = secret_token();
        exec_pool(
            self.store(),
            "INSERT INTO identity_refresh_tokens (hash, session_id, issued_at, used_at) VALUES (?, ?, ?, NULL)",
            &[
                digest(&refresh).into(),
                session.to_string().into(),
                Utc::now().to_rfc3339().into(),
            ],
        )
        .await?;
        let now = Utc::now().timestamp();
        let ttl = self.config().access_ttl.num_seconds();
        let claims = Claims {
            iss: self.config().issuer.clone(),
            aud: self.config().audience.clone(),
            sub: account.id.to_string(),
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti: Uuid::now_v7().to_string(),
            sid: session.to_string(),
            role: account.role()?,
            mfa,
            email_verified: account.email_verified_at.is_some(),
            warehouses: account.warehouses()?,
        };
        Ok(Tokens {
            access_token: self.keys().sign(&claims).await?,
            token_type: "Bearer".into(),
            expires_in: ttl as u64,
            refresh_token: refresh,
            session_id: session,
        })
    }

    /// Revokes a session (sign-out, reuse, password change).
    pub(crate) async fn revoke_session(
        &self,
        session: Uuid,
        reason: &str,
    ) -> Result<(), IdentityError> {
        self.0.checked.forget();
        exec_pool(
            self.store(),
            "UPDATE identity_sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            &[
                Utc::now().to_rfc3339().into(),
                reason.into(),
                session.to_string().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Revokes every session of an account.
    pub(crate) async fn revoke_all(
        &self,
        account: Uuid,
        reason: &str,
    ) -> Result<(), IdentityError> {
        self.0.checked.forget();
        exec_pool(
            self.store(),
            "UPDATE identity_sessions SET revoked_at = ?, revoked_reason = ? WHERE account_id = ? AND revoked_at IS NULL",
            &[
                Utc::now().to_rfc3339().into(),
                reason.into(),
                account.to_string().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// New tokens for a refresh token, which is used up; a token used
    /// before revokes its session (someone else holds a copy).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, IdentityError> {
        const BAD: IdentityError = IdentityError::BadToken {
            code: "invalid_refresh_token",
            message: "the refresh token is unknown, expired or revoked; sign in again",
        };
        let hash = digest(refresh_token);
        let Some(row) = fetch(
            self.store(),
            "SELECT session_id, used_at FROM identity_refresh_tokens WHERE hash = ?",
            &[hash.clone().into()],
        )
        .await?
        .pop() else {
            return Err(BAD);
        };
        let token: RefreshRow = crate::row("identity_refresh_tokens", row)?;
        let Some(session) = self.session(token.session_id).await? else {
            return Err(BAD);
        };
        if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
            return Err(BAD);
        }
        if token.used_at.is_some() {
            self.revoke_session(token.session_id, "refresh_token_reused")
                .await?;
            tracing::warn!(session = %token.session_id, "a used refresh token was presented again: its session is revoked");
            return Err(IdentityError::RefreshReused);
        }
        // Claimed by exactly one caller: a concurrent second use is a reuse.
        let claimed = exec_pool(
            self.store(),
            "UPDATE identity_refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL",
            &[Utc::now().to_rfc3339().into(), hash.into()],
        )
        .await?;
        if claimed != 1 {
            self.revoke_session(token.session_id, "refresh_token_reused")
                .await?;
            return Err(IdentityError::RefreshReused);
        }
        let account = self.account_row(session.account_id).await?.ok_or(BAD)?;
        if account.disabled_at.is_some() {
            self.revoke_session(token.session_id, "account_disabled")
                .await?;
            return Err(IdentityError::Disabled);
        }
        self.tokens_for(&account, token.session_id, session.mfa != 0)
            .await
    }

    async fn session(&self, id: Uuid) -> Result<Option<SessionRow>, IdentityError> {
        Ok(match fetch(
            self.store(),
            "SELECT account_id, mfa, expires_at, revoked_at FROM identity_sessions WHERE id = ?",
            &[id.to_string().into()],
        )
        .await?
        .pop()
        {
            Some(row) => Some(crate::row("identity_sessions", row)?),
            None => None,
        })
    }

    /// Checks one of our access tokens: signature, algorithm, issuer,
    /// audience, expiry, then that its session is live and its account
    /// enabled.
    pub(crate) async fn verify_local(&self, token: &str) -> Result<Principal, AuthError> {
        let (_, kid) = algorithm_and_kid(token, &[jsonwebtoken::Algorithm::EdDSA])?;
        let key = self
            .keys()
            .verifying(&kid)
            .await
            .map_err(|_| AuthError::Unavailable)?
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid:?}")))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[&self.config().issuer]);
        validation.set_audience(&[&self.config().audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let claims: Claims = jsonwebtoken::decode(token, &key, &validation)
            .map_err(auth_error)?
            .claims;
        let subject = Uuid::parse_str(&claims.sub)
            .map_err(|_| AuthError::Invalid("sub is not an account id".into()))?;
        let session = Uuid::parse_str(&claims.sid)
            .map_err(|_| AuthError::Invalid("sid is not a session id".into()))?;
        let live = fetch(
            self.store(),
            "SELECT s.revoked_at, s.expires_at, a.disabled_at FROM identity_sessions s JOIN identity_accounts a ON a.id = s.account_id WHERE s.id = ? AND a.id = ?",
            &[session.to_string().into(), subject.to_string().into()],
        )
        .await
        .map_err(|_| AuthError::Unavailable)?
        .pop()
        .ok_or(AuthError::Revoked)?;
        let live: LiveRow =
            crate::row("identity_sessions", live).map_err(|_| AuthError::Unavailable)?;
        if live.revoked_at.is_some() || live.disabled_at.is_some() || live.expires_at <= Utc::now()
        {
            return Err(AuthError::Revoked);
        }
        let principal = Principal {
            subject,
            role: claims.role,
            warehouses: claims.warehouses,
            mfa: claims.mfa,
            email_verified: claims.email_verified,
            issuer: Issuer::Local { session },
        };
        self.0.checked.remember(token, &principal, claims.exp);
        Ok(principal)
    }
}
