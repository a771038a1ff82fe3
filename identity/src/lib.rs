//! Identity and access: who is asking, and may they.
//!
//! - Accounts (`identity_accounts`, owned here): customers sign up, an
//!   admin creates staff; argon2id passwords, email verification and
//!   password reset by single-use tokens, lockout after repeated failures,
//!   disabling. The first start creates an admin.
//! - Sessions and tokens ([`session`]): EdDSA access tokens with a `kid`
//!   from a rotatable key set ([`keys`], published as a JWKS), opaque
//!   refresh tokens rotated on every use.
//! - TOTP second factor with recovery codes ([`mfa`]); admins act only
//!   with it.
//! - Tokens of an external OpenID Connect issuer ([`oidc`]).
//! - [`Access`]: the rule the route and field tables are written in.
//!
//! Why tables and not events: the event log is published (Kafka), kept
//! forever and handed to auditors. Password hashes, TOTP secrets and token
//! hashes must be replaceable and erasable, and sign-in failures are
//! bookkeeping, not business facts. Every business event still names its
//! actor: the authenticated subject.

mod account;
mod error;
mod keys;
mod mail;
mod mfa;
mod oidc;
mod password;
mod principal;
mod session;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use event_schemas::ActorRole;
use serde::Deserialize;
use store::sql::exec_pool;
use store::{Store, StoreError};
use uuid::Uuid;

pub use account::{AccountView, LoginOutcome, MfaEnabled, MfaEnrolment, NewAccount, SignUp};
pub use error::{AuthError, IdentityError};
pub use jsonwebtoken::jwk::JwkSet;
pub use oidc::OidcConfig;
pub use principal::{
    person_role, role_name, roles, Access, Denied, Issuer, Principal, PERSON_ROLES,
};
pub use session::{Claims, Tokens};

/// What authentication found for one request: set by the HTTP edge on
/// every request, read by the command API's and GraphQL's guards.
#[derive(Debug, Clone)]
pub struct Caller(pub Result<Option<Principal>, AuthError>);

/// How identity behaves.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `iss` of our access tokens.
    pub issuer: String,
    /// `aud` of our access tokens.
    pub audience: String,
    pub access_ttl: chrono::Duration,
    /// A session's absolute lifetime (refresh tokens end with it).
    pub session_ttl: chrono::Duration,
    /// Failed sign-ins in a row that lock an account …
    pub lockout_threshold: u32,
    /// … for this long.
    pub lockout_duration: chrono::Duration,
    /// Where messages to account holders are written.
    pub mail_dir: Option<PathBuf>,
    pub oidc: Option<OidcConfig>,
    /// The admin the first start creates.
    pub bootstrap_email: String,
    /// Its password; generated (and printed once) when `None`.
    pub bootstrap_password: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuer: "freshledger".into(),
            audience: "freshledger-api".into(),
            access_ttl: chrono::Duration::minutes(15),
            session_ttl: chrono::Duration::days(30),
            lockout_threshold: 5,
            lockout_duration: chrono::Duration::minutes(15),
            mail_dir: None,
            oidc: None,
            bootstrap_email: "admin@freshledger.local".into(),
            bootstrap_password: None,
        }
    }
}

/// The admin a first start created.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub email: String,
    /// Set when it was generated: shown once, never stored in the clear.
    pub generated_password: Option<String>,
}

/// Identity's service: accounts, sessions, tokens.
#[derive(Clone)]
pub struct Identity(Arc<Inner>);

struct Inner {
    store: Store,
    config: IdentityConfig,
    keys: keys::KeyRing,
    oidc: Option<oidc::Oidc>,
    mailer: mail::Mailer,
    /// Checked when the email is unknown, so that a sign-in takes as long
    /// either way.
    dummy_hash: String,
    /// Access tokens checked in the last moment (see [`session::RECHECK`]).
    checked: session::Checked,
}

const TABLES: &str = include_str!("tables.sql");

impl Identity {
    /// Creates identity's tables (if missing), a signing key (if none) and
    /// the first admin (if there is no account at all).
    pub async fn start(
        store: &Store,
        config: IdentityConfig,
    ) -> Result<(Identity, Option<Bootstrapped>), IdentityError> {
        store::sql::exec_script(store, TABLES).await?;
        let keys = keys::KeyRing::new(store, config.access_ttl + chrono::Duration::minutes(5));
        keys.ensure().await?;
        let identity = Identity(Arc::new(Inner {
            store: store.clone(),
            oidc: config.oidc.clone().map(oidc::Oidc::new),
            mailer: mail::Mailer::new(config.mail_dir.clone()),
            dummy_hash: password::hash(&session::secret_token()).await,
            checked: session::Checked::default(),
            keys,
            config,
        }));
        let bootstrapped = identity.bootstrap().await?;
        Ok((identity, bootstrapped))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.0.store
    }

    pub(crate) fn config(&self) -> &IdentityConfig {
        &self.0.config
    }

    pub(crate) fn keys(&self) -> &keys::KeyRing {
        &self.0.keys
    }

    /// The subject of an `Authorization` header: `None` without one; a
    /// token that does not pass is an error, never "nobody".
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(header) = authorization.filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let token = token.trim();
        // A token of ours checked a moment ago stands (see session::RECHECK).
        if let Some(p) = self.0.checked.get(token) {
            return Ok(Some(p));
        }
        // The issuer picks the verifier; nothing of the payload is trusted
        // before the signature is.
        let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(token)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        let iss = claims["iss"].as_str().unwrap_or_default();
        match &self.0.oidc {
            Some(o) if iss == o.issuer() => o.verify(token).await.map(Some),
            _ => self.verify_local(token).await.map(Some),
        }
    }

    /// Deletes what can no longer be used: sessions ended (revoked or
    /// expired) more than a day ago with their refresh tokens, single-use
    /// tokens expired more than a day ago, and keys retired long enough
    /// that no token they signed is still valid. Returns the rows deleted.
    pub async fn prune(&self) -> Result<u64, IdentityError> {
        let day_ago = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
        let key_cutoff =
            (chrono::Utc::now() - self.config().access_ttl - chrono::Duration::days(1))
                .to_rfc3339();
        let ended = "(revoked_at IS NOT NULL AND revoked_at < ?) OR expires_at < ?";
        let statements: [(String, Vec<store::sql::Arg>); 4] = [
            (
                format!("DELETE FROM identity_refresh_tokens WHERE session_id IN (SELECT id FROM identity_sessions WHERE {ended})"),
                vec![day_ago.clone().into(), day_ago.clone().into()],
            ),
            (
                format!("DELETE FROM identity_sessions WHERE {ended}"),
                vec![day_ago.clone().into(), day_ago.clone().into()],
            ),
            (
                "DELETE FROM identity_one_time_tokens WHERE expires_at < ?".into(),
                vec![day_ago.into()],
            ),
            (
                "DELETE FROM identity_signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?".into(),
                vec![key_cutoff.into()],
            ),
        ];
        let mut deleted = 0;
        for (sql, args) in statements {
            deleted += exec_pool(self.store(), &sql, &args).await?;
        }
        Ok(deleted)
    }

    /// Our published signing keys (`/.well-known/jwks.json`).
    pub async fn jwks(&self) -> Result<JwkSet, IdentityError> {
        Ok(self.keys().jwks().await?)
    }

    /// Signs with a new key from now on; the old one stays published until
    /// its tokens have expired.
    pub async fn rotate_keys(&self) -> Result<String, IdentityError> {
        let kid = self.keys().rotate().await?;
        tracing::info!(kid, "signing key rotated");
        Ok(kid)
    }
}

/// One row of `identity_accounts`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AccountRow {
    id: Uuid,
    email: String,
    role: String,
    display_name: String,
    password_hash: String,
    warehouses: String,
    email_verified_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    failed_logins: i64,
    locked_until: Option<DateTime<Utc>>,
    totp_secret: Option<String>,
    totp_confirmed_at: Option<DateTime<Utc>>,
    recovery_codes: String,
    created_at: DateTime<Utc>,
}

impl AccountRow {
    fn corrupt(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::CorruptRow {
            table: "identity_accounts",
            key: self.id.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn role(&self) -> Result<ActorRole, StoreError> {
        person_role(&self.role).ok_or_else(|| self.corrupt(format!("unknown role {:?}", self.role)))
    }

    pub(crate) fn warehouses(&self) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(&self.warehouses).map_err(|e| self.corrupt(e))
    }

    pub(crate) fn recovery_hashes(&self) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(&self.recovery_codes).map_err(|e| self.corrupt(e))
    }
}

pub(crate) use store::sql::typed as row;

#[cfg(test)]
mod tests {
    use super::*;

    async fn identity() -> (Identity, Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fl-identity-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(store::StoreConfig::new(format!(
            "sqlite://{}/x.db",
            dir.display()
        )))
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let config = IdentityConfig {
            bootstrap_password: Some("first-admin-password".into()),
            ..IdentityConfig::default()
        };
        let (identity, first) = Identity::start(&store, config.clone()).await.unwrap();
        assert!(first.is_some_and(|b| b.generated_password.is_none()));
        // A second start (another process) creates no second admin.
        let (_, again) = Identity::start(&store, config).await.unwrap();
        assert!(again.is_none());
        (identity, store, dir)
    }

    #[tokio::test]
    async fn pruning_deletes_only_what_can_no_longer_be_used() {
        let (identity, store, dir) = identity().await;
        let signed_in = |outcome: LoginOutcome| match outcome {
            LoginOutcome::SignedIn(t) => t,
            other => panic!("{other:?}"),
        };
        let live = signed_in(
            identity
                .login("admin@freshledger.local", "first-admin-password")
                .await
                .unwrap(),
        );
        let ended = signed_in(
            identity
                .login("admin@freshledger.local", "first-admin-password")
                .await
                .unwrap(),
        );
        identity
            .revoke_session(ended.session_id, "signed_out")
            .await
            .unwrap();
        assert_eq!(
            identity.prune().await.unwrap(),
            0,
            "ended just now: kept a day"
        );
        exec_pool(
            &store,
            "UPDATE identity_sessions SET revoked_at = ? WHERE id = ?",
            &[
                (chrono::Utc::now() - chrono::Duration::days(2))
                    .to_rfc3339()
                    .into(),
                ended.session_id.to_string().into(),
            ],
        )
        .await
        .unwrap();
        // The session and its refresh token.
        assert_eq!(identity.prune().await.unwrap(), 2);
        identity.refresh(&live.refresh_token).await.unwrap();
        assert!(identity.refresh(&ended.refresh_token).await.is_err());
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
