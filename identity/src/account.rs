//! Accounts: sign-up, staff accounts, sign-in (with lockout and a second
//! factor), email verification, password reset, disabling.

use chrono::{DateTime, Utc};
use event_schemas::ActorRole;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use store::sql::{exec_pool, fetch, Arg};
use uuid::Uuid;

use crate::error::IdentityError;
use crate::principal::{person_role, role_name, Issuer, Principal};
use crate::session::{digest, secret_token, Tokens};
use crate::{mfa, password, AccountRow, Bootstrapped, Identity};

/// A customer signing up.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// Where the verification message goes; also the sign-in name.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// 10 to 128 characters.
    #[schemars(length(min = 10, max = 128))]
    pub password: String,
    #[schemars(length(min = 1, max = 100))]
    pub display_name: String,
}

/// A staff (or customer) account an admin creates.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// 10 to 128 characters; tell it to its holder, who can change it.
    #[schemars(length(min = 10, max = 128))]
    pub password: String,
    #[schemars(length(min = 1, max = 100))]
    pub display_name: String,
    /// customer, seller, delivery or admin.
    #[schemars(regex(pattern = r"^(customer|seller|delivery|admin)$"))]
    pub role: String,
    /// The warehouses a seller works for (registered warehouse ids).
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub warehouses: Vec<String>,
}

/// An account as its holder and admins see it (never a secret).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccountView {
    pub account_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// customer, seller, delivery or admin.
    pub role: String,
    pub warehouses: Vec<String>,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    pub disabled: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What a password sign-in gives: tokens, or a challenge for the second
/// factor.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginOutcome {
    SignedIn(Tokens),
    /// Send `mfa_token` with a TOTP or recovery code to
    /// `POST /api/v1/auth/mfa/verification` within `expires_in` seconds.
    MfaRequired {
        mfa_token: String,
        expires_in: u64,
    },
}

/// A TOTP secret to put into an authenticator app, pending confirmation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MfaEnrolment {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_url: String,
}

/// MFA switched on: recovery codes (shown once) and tokens of a session
/// signed in with the second factor.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MfaEnabled {
    /// Each works once in place of a TOTP code. Keep them safe: they are
    /// not shown again.
    pub recovery_codes: Vec<String>,
    pub tokens: Tokens,
}

const ACCOUNT_COLUMNS: &str = "id, email, role, display_name, password_hash, warehouses, email_verified_at, disabled_at, failed_logins, locked_until, totp_secret, totp_confirmed_at, totp_last_step, recovery_codes, created_at";

/// Single-use token purposes.
const VERIFY_EMAIL: &str = "verify_email";
const RESET_PASSWORD: &str = "reset_password";
const MFA_LOGIN: &str = "mfa_login";

/// A verification or reset token that is unknown, used or expired.
const BAD_LINK: IdentityError = IdentityError::BadToken {
    code: "invalid_token",
    message: "the link is unknown, used or expired; ask for a new one",
};

fn normalise_email(email: &str) -> Result<String, IdentityError> {
    let e = email.trim().to_ascii_lowercase();
    if e.len() > 254 || !domain::registry::is_email(&e) {
        return Err(IdentityError::invalid(
            "invalid_email",
            format!("{email:?} is not an email address"),
        ));
    }
    Ok(e)
}

fn display_name(name: &str) -> Result<String, IdentityError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(IdentityError::invalid(
            "invalid_account",
            "a display name has 1 to 100 printable characters",
        ));
    }
    Ok(n.to_string())
}

impl AccountRow {
    fn view(&self) -> Result<AccountView, IdentityError> {
        Ok(AccountView {
            account_id: self.id,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            role: self.role.clone(),
            warehouses: self.warehouses()?,
            email_verified: self.email_verified_at.is_some(),
            mfa_enabled: self.totp_confirmed_at.is_some(),
            disabled: self.disabled_at.is_some(),
            locked_until: self.locked_until.filter(|t| *t > Utc::now()),
            created_at: self.created_at,
        })
    }
}

impl Identity {
    pub(crate) async fn account_row(&self, id: Uuid) -> Result<Option<AccountRow>, IdentityError> {
        self.account_where("id = ?", id.to_string().into()).await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRow>, IdentityError> {
        self.account_where("email = ?", email.into()).await
    }

    async fn account_where(
        &self,
        condition: &str,
        arg: Arg,
    ) -> Result<Option<AccountRow>, IdentityError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM identity_accounts WHERE {condition}");
        Ok(match fetch(self.store(), &sql, &[arg]).await?.pop() {
            Some(r) => Some(crate::row("identity_accounts", r)?),
            None => None,
        })
    }

    /// Inserts an account; `false` when the email is taken.
    #[allow(clippy::too_many_arguments)]
    async fn insert_account(
        &self,
        id: Uuid,
        email: &str,
        role: ActorRole,
        name: &str,
        password: &str,
        warehouses: &[String],
        verified: bool,
        by: &str,
    ) -> Result<bool, IdentityError> {
        let hash = password::hash(password).await;
        let now = Utc::now().to_rfc3339();
        let inserted = exec_pool(
            self.store(),
            "INSERT INTO identity_accounts (id, email, role, display_name, password_hash, warehouses, email_verified_at, disabled_at, failed_logins, locked_until, totp_secret, totp_confirmed_at, totp_last_step, recovery_codes, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL, NULL, NULL, 0, '[]', ?, ?) ON CONFLICT (email) DO NOTHING",
            &[
                id.to_string().into(),
                email.into(),
                role_name(role).into(),
                name.into(),
                hash.into(),
                serde_json::to_string(warehouses).expect("strings serialise").into(),
                verified.then(|| now.clone()).into(),
                now.into(),
                by.into(),
            ],
        )
        .await?;
        Ok(inserted == 1)
    }

    /// The first start with no account creates an admin.
    pub(crate) async fn bootstrap(&self) -> Result<Option<Bootstrapped>, IdentityError> {
        let any = fetch(
            self.store(),
            "SELECT id FROM identity_accounts LIMIT 1",
            &[],
        )
        .await?;
        if !any.is_empty() {
            return Ok(None);
        }
        let config = self.config();
        let email = normalise_email(&config.bootstrap_email)?;
        let (password, generated) = match &config.bootstrap_password {
            Some(p) => (p.clone(), false),
            None => (secret_token()[..24].to_string(), true),
        };
        password::check_policy(&password, &email)?;
        let created = self
            .insert_account(
                Uuid::now_v7(),
                &email,
                ActorRole::Admin,
                "Administrator",
                &password,
                &[],
                true,
                "system:bootstrap",
            )
            .await?;
        // Another process may have created it first: only the one that
        // did tells its password.
        Ok(created.then(|| Bootstrapped {
            email,
            generated_password: generated.then_some(password),
        }))
    }

    /// A customer signs up; a verification message goes to the address.
    pub async fn sign_up(&self, req: SignUp) -> Result<AccountView, IdentityError> {
        let email = normalise_email(&req.email)?;
        let name = display_name(&req.display_name)?;
        password::check_policy(&req.password, &email)?;
        let id = Uuid::now_v7();
        if !self
            .insert_account(
                id,
                &email,
                ActorRole::Customer,
                &name,
                &req.password,
                &[],
                false,
                "self",
            )
            .await?
        {
            return Err(IdentityError::EmailTaken);
        }
        self.send_verification(id, &email).await?;
        self.view(id).await
    }

    /// An admin creates an account of any role (verified: the admin vouches
    /// for the address).
    pub async fn create_account(
        &self,
        by: &Principal,
        req: NewAccount,
    ) -> Result<AccountView, IdentityError> {
        let email = normalise_email(&req.email)?;
        let name = display_name(&req.display_name)?;
        password::check_policy(&req.password, &email)?;
        let role = person_role(&req.role).ok_or_else(|| {
            IdentityError::invalid(
                "invalid_account",
                format!(
                    "role {:?} is not one of customer, seller, delivery, admin",
                    req.role
                ),
            )
        })?;
        if role != ActorRole::Seller && !req.warehouses.is_empty() {
            return Err(IdentityError::invalid(
                "invalid_account",
                "only sellers work for warehouses",
            ));
        }
        let id = Uuid::now_v7();
        if !self
            .insert_account(
                id,
                &email,
                role,
                &name,
                &req.password,
                &req.warehouses,
                true,
                &by.actor().to_string(),
            )
            .await?
        {
            return Err(IdentityError::EmailTaken);
        }
        tracing::info!(account = %id, role = role_name(role), by = %by.actor(), "account created");
        self.view(id).await
    }

    pub async fn view(&self, id: Uuid) -> Result<AccountView, IdentityError> {
        self.account_row(id)
            .await?
            .ok_or(IdentityError::NotFound)?
            .view()
    }

    /// Every account, oldest first.
    pub async fn accounts(&self) -> Result<Vec<AccountView>, IdentityError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM identity_accounts ORDER BY id");
        fetch(self.store(), &sql, &[])
            .await?
            .into_iter()
            .map(|r| crate::row::<AccountRow>("identity_accounts", r)?.view())
            .collect()
    }

    /// Disables (or enables again) an account; disabling ends its sessions.
    pub async fn set_disabled(
        &self,
        by: &Principal,
        id: Uuid,
        disabled: bool,
    ) -> Result<AccountView, IdentityError> {
        if disabled && by.subject == id {
            return Err(IdentityError::Conflict {
                code: "cannot_disable_self",
                message: "an admin cannot disable their own account",
            });
        }
        self.account_row(id).await?.ok_or(IdentityError::NotFound)?;
        if disabled {
            exec_pool(
                self.store(),
                "UPDATE identity_accounts SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL",
                &[Utc::now().to_rfc3339().into(), id.to_string().into()],
            )
            .await?;
            self.revoke_all(id, "account_disabled").await?;
        } else {
            exec_pool(
                self.store(),
                "UPDATE identity_accounts SET disabled_at = NULL, failed_logins = 0, locked_until = NULL WHERE id = ?",
                &[id.to_string().into()],
            )
            .await?;
        }
        tracing::info!(account = %id, disabled, by = %by.actor(), "account status changed");
        self.view(id).await
    }

    /// Password sign-in. An unknown email costs as much as a wrong
    /// password; after `lockout_threshold` failures in a row the account is
    /// locked for `lockout_duration`.
    pub async fn login(&self, email: &str, pw: &str) -> Result<LoginOutcome, IdentityError> {
        let email = email.trim().to_ascii_lowercase();
        let Some(account) = self.account_by_email(&email).await? else {
            password::verify(pw, &self.0.dummy_hash).await;
            return Err(IdentityError::InvalidCredentials);
        };
        if let Some(until) = account.locked_until.filter(|t| *t > Utc::now()) {
            return Err(IdentityError::Locked { until });
        }
        if !password::verify(pw, &account.password_hash).await {
            self.failed(&account).await?;
            return Err(IdentityError::InvalidCredentials);
        }
        if account.disabled_at.is_some() {
            return Err(IdentityError::Disabled);
        }
        if account.totp_confirmed_at.is_some() {
            let challenge = secret_token();
            self.issue_one_time(
                account.id,
                MFA_LOGIN,
                &challenge,
                chrono::Duration::minutes(5),
            )
            .await?;
            return Ok(LoginOutcome::MfaRequired {
                mfa_token: challenge,
                expires_in: 300,
            });
        }
        self.succeeded(&account).await?;
        Ok(LoginOutcome::SignedIn(
            self.open_session(&account, false).await?,
        ))
    }

    async fn failed(&self, account: &AccountRow) -> Result<(), IdentityError> {
        let until = (Utc::now() + self.config().lockout_duration).to_rfc3339();
        exec_pool(
            self.store(),
            "UPDATE identity_accounts SET failed_logins = failed_logins + 1, locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END WHERE id = ?",
            &[
                i64::from(self.config().lockout_threshold).into(),
                until.into(),
                account.id.to_string().into(),
            ],
        )
        .await?;
        if account.failed_logins + 1 >= i64::from(self.config().lockout_threshold) {
            tracing::warn!(account = %account.id, "account locked after repeated failed sign-ins");
        }
        Ok(())
    }

    async fn succeeded(&self, account: &AccountRow) -> Result<(), IdentityError> {
        if account.failed_logins != 0 || account.locked_until.is_some() {
            exec_pool(
                self.store(),
                "UPDATE identity_accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                &[account.id.to_string().into()],
            )
            .await?;
        }
        Ok(())
    }

    /// The second step of a sign-in with MFA: a TOTP code or a recovery
    /// code for the challenge `login` gave.
    pub async fn verify_mfa(&self, mfa_token: &str, code: &str) -> Result<Tokens, IdentityError> {
        const BAD: IdentityError = IdentityError::BadToken {
            code: "invalid_mfa_token",
            message: "the sign-in challenge is unknown, used or expired; sign in again",
        };
        let hash = digest(mfa_token);
        let Some(row) = fetch(
            self.store(),
            "SELECT account_id FROM identity_one_time_tokens WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
            &[hash.clone().into(), MFA_LOGIN.into(), Utc::now().to_rfc3339().into()],
        )
        .await?
        .pop() else {
            return Err(BAD);
        };
        let id: Uuid = row["account_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(BAD)?;
        let account = self.account_row(id).await?.ok_or(BAD)?;
        if let Some(until) = account.locked_until.filter(|t| *t > Utc::now()) {
            return Err(IdentityError::Locked { until });
        }
        if account.disabled_at.is_some() {
            return Err(IdentityError::Disabled);
        }
        if !self.second_factor(&account, code).await? {
            self.failed(&account).await?;
            return Err(IdentityError::InvalidMfaCode);
        }
        if !self.use_one_time(&hash, MFA_LOGIN).await? {
            return Err(BAD);
        }
        self.succeeded(&account).await?;
        self.open_session(&account, true).await
    }

    /// Checks (and uses up) a TOTP code or a recovery code.
    async fn second_factor(&self, account: &AccountRow, code: &str) -> Result<bool, IdentityError> {
        let Some(secret) = account
            .totp_secret
            .as_deref()
            .filter(|_| account.totp_confirmed_at.is_some())
        else {
            return Ok(false);
        };
        let now = Utc::now().timestamp().max(0) as u64;
        if let Some(step) = mfa::check(secret, code, now) {
            // A code works once: a step at or before the last one used is a
            // replay.
            let used = exec_pool(
                self.store(),
                "UPDATE identity_accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
                &[
                    (step as i64).into(),
                    account.id.to_string().into(),
                    (step as i64).into(),
                ],
            )
            .await?;
            return Ok(used == 1);
        }
        let wanted = digest(&mfa::normalise_recovery(code));
        let hashes = account.recovery_hashes()?;
        if !hashes.contains(&wanted) {
            return Ok(false);
        }
        let left: Vec<&String> = hashes.iter().filter(|h| **h != wanted).collect();
        let used = exec_pool(
            self.store(),
            "UPDATE identity_accounts SET recovery_codes = ? WHERE id = ? AND recovery_codes = ?",
            &[
                serde_json::to_string(&left)
                    .expect("strings serialise")
                    .into(),
                account.id.to_string().into(),
                account.recovery_codes.clone().into(),
            ],
        )
        .await?;
        if used == 1 {
            tracing::info!(account = %account.id, left = left.len(), "a recovery code was used");
        }
        Ok(used == 1)
    }

    /// Ends the caller's session (its refresh tokens stop working, and so
    /// do its access tokens).
    pub async fn logout(&self, who: &Principal) -> Result<(), IdentityError> {
        match who.issuer {
            Issuer::Local { session } => self.revoke_session(session, "signed_out").await,
            // An external issuer's sessions end there.
            Issuer::Oidc => Ok(()),
        }
    }

    /// A staff member starts enrolling a TOTP authenticator.
    pub async fn enrol_mfa(&self, who: &Principal) -> Result<MfaEnrolment, IdentityError> {
        let account = self.own_account(who).await?;
        if !who.is_staff() {
            return Err(IdentityError::Forbidden {
                code: "mfa_staff_only",
                message: "a second factor is for staff accounts",
            });
        }
        if account.totp_confirmed_at.is_some() {
            return Err(IdentityError::Conflict {
                code: "mfa_already_enabled",
                message: "a second factor is already enabled on this account",
            });
        }
        let (secret, otpauth_url) = mfa::new_secret(&account.email);
        exec_pool(
            self.store(),
            "UPDATE identity_accounts SET totp_secret = ? WHERE id = ? AND totp_confirmed_at IS NULL",
            &[secret.clone().into(), account.id.to_string().into()],
        )
        .await?;
        Ok(MfaEnrolment {
            secret,
            otpauth_url,
        })
    }

    /// Confirms enrolment with a first code: MFA is on, recovery codes are
    /// handed out once, and the caller's session is replaced by one signed
    /// in with the second factor.
    pub async fn confirm_mfa(
        &self,
        who: &Principal,
        code: &str,
    ) -> Result<MfaEnabled, IdentityError> {
        let account = self.own_account(who).await?;
        if account.totp_confirmed_at.is_some() {
            return Err(IdentityError::Conflict {
                code: "mfa_already_enabled",
                message: "a second factor is already enabled on this account",
            });
        }
        let Some(secret) = &account.totp_secret else {
            return Err(IdentityError::Conflict {
                code: "mfa_not_enrolled",
                message: "start with POST /api/v1/auth/mfa/enrolment",
            });
        };
        let now = Utc::now().timestamp().max(0) as u64;
        let Some(step) = mfa::check(secret, code, now) else {
            return Err(IdentityError::InvalidMfaCode);
        };
        let codes = mfa::recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| digest(c)).collect();
        let confirmed = exec_pool(
            self.store(),
            "UPDATE identity_accounts SET totp_confirmed_at = ?, totp_last_step = ?, recovery_codes = ? WHERE id = ? AND totp_confirmed_at IS NULL AND totp_secret = ?",
            &[
                Utc::now().to_rfc3339().into(),
                (step as i64).into(),
                serde_json::to_string(&hashes).expect("strings serialise").into(),
                account.id.to_string().into(),
                secret.clone().into(),
            ],
        )
        .await?;
        if confirmed != 1 {
            return Err(IdentityError::Conflict {
                code: "mfa_already_enabled",
                message: "a second factor is already enabled on this account",
            });
        }
        tracing::info!(account = %account.id, "second factor enabled");
        self.logout(who).await?;
        let account = self.own_account(who).await?;
        Ok(MfaEnabled {
            recovery_codes: codes,
            tokens: self.open_session(&account, true).await?,
        })
    }

    /// Changes the caller's password; every session ends but a new one.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
    ) -> Result<Tokens, IdentityError> {
        let account = self.own_account(who).await?;
        if !password::verify(current, &account.password_hash).await {
            self.failed(&account).await?;
            return Err(IdentityError::InvalidCredentials);
        }
        password::check_policy(new, &account.email)?;
        self.set_password(account.id, new).await?;
        self.open_session(&account, who.mfa).await
    }

    async fn set_password(&self, id: Uuid, new: &str) -> Result<(), IdentityError> {
        let hash = password::hash(new).await;
        exec_pool(
            self.store(),
            "UPDATE identity_accounts SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE id = ?",
            &[hash.into(), id.to_string().into()],
        )
        .await?;
        self.revoke_all(id, "password_changed").await
    }

    async fn own_account(&self, who: &Principal) -> Result<AccountRow, IdentityError> {
        if who.issuer == Issuer::Oidc {
            return Err(IdentityError::Forbidden {
                code: "external_account",
                message: "this account is managed by the identity provider",
            });
        }
        self.account_row(who.subject)
            .await?
            .ok_or(IdentityError::NotFound)
    }

    async fn issue_one_time(
        &self,
        account: Uuid,
        purpose: &str,
        token: &str,
        ttl: chrono::Duration,
    ) -> Result<(), IdentityError> {
        exec_pool(
            self.store(),
            "INSERT INTO identity_one_time_tokens (hash, account_id, purpose, expires_at, used_at) VALUES (?, ?, ?, ?, NULL)",
            &[
                digest(token).into(),
                account.to_string().into(),
                purpose.into(),
                (Utc::now() + ttl).to_rfc3339().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Uses up a single-use token; `true` for the one caller that did.
    async fn use_one_time(&self, hash: &str, purpose: &str) -> Result<bool, IdentityError> {
        let now = Utc::now().to_rfc3339();
        Ok(exec_pool(
            self.store(),
            "UPDATE identity_one_time_tokens SET used_at = ? WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
            &[now.clone().into(), hash.into(), purpose.into(), now.into()],
        )
        .await?
            == 1)
    }

    /// The account of a single-use token, used up by this call.
    async fn redeem(&self, token: &str, purpose: &str) -> Result<Uuid, IdentityError> {
        let hash = digest(token);
        let id = self
            .one_time_account(&hash, purpose)
            .await?
            .ok_or(BAD_LINK)?;
        if !self.use_one_time(&hash, purpose).await? {
            return Err(BAD_LINK);
        }
        Ok(id)
    }

    /// The account a single-use token (by its hash) was issued to.
    async fn one_time_account(
        &self,
        hash: &str,
        purpose: &str,
    ) -> Result<Option<Uuid>, IdentityError> {
        Ok(fetch(
            self.store(),
            "SELECT account_id FROM identity_one_time_tokens WHERE hash = ? AND purpose = ?",
            &[hash.into(), purpose.into()],
        )
        .await?
        .pop()
        .and_then(|r| r["account_id"].as_str().and_then(|s| s.parse().ok())))
    }

    async fn send_verification(&self, id: Uuid, email: &str) -> Result<(), IdentityError> {
        let token = secret_token();
        self.issue_one_time(id, VERIFY_EMAIL, &token, chrono::Duration::hours(24))
            .await?;
        self.0
            .mailer
            .send(
                email,
                "Confirm your email address",
                &format!("Welcome to Freshledger.\r\n\r\nConfirm your address with this token (valid 24 hours):\r\n\r\nverification-token: {token}\r\n\r\nPOST /api/v1/auth/email-verification {{\"token\": \"{token}\"}}"),
            )
            .await;
        Ok(())
    }

    /// Confirms an email address with the token its message carried.
    pub async fn verify_email(&self, token: &str) -> Result<AccountView, IdentityError> {
        let id = self.redeem(token, VERIFY_EMAIL).await?;
        exec_pool(
            self.store(),
            "UPDATE identity_accounts SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
            &[Utc::now().to_rfc3339().into(), id.to_string().into()],
        )
        .await?;
        self.view(id).await
    }

    /// Sends a reset message if the address has an account; says nothing
    /// either way (no account discovery).
    pub async fn request_password_reset(&self, email: &str) -> Result<(), IdentityError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(());
        };
        let Some(account) = self.account_by_email(&email).await? else {
            return Ok(());
        };
        let token = secret_token();
        self.issue_one_time(
            account.id,
            RESET_PASSWORD,
            &token,
            chrono::Duration::hours(1),
        )
        .await?;
        self.0
            .mailer
            .send(
                &email,
                "Reset your password",
                &format!("Someone asked to reset your Freshledger password. If it was not you, ignore this message.\r\n\r\nreset-token: {token}\r\n\r\nPOST /api/v1/auth/password-reset/confirmation {{\"token\": \"{token}\", \"new_password\": \"…\"}} within an hour."),
            )
            .await;
        Ok(())
    }

    /// Sets a new password with a reset token; every session ends.
    pub async fn reset_password(&self, token: &str, new: &str) -> Result<(), IdentityError> {
        let hash = digest(token);
        let account = match self.one_time_account(&hash, RESET_PASSWORD).await? {
            Some(id) => self.account_row(id).await?.ok_or(BAD_LINK)?,
            None => return Err(BAD_LINK),
        };
        // The policy is checked before the token is used up.
        password::check_policy(new, &account.email)?;
        if !self.use_one_time(&hash, RESET_PASSWORD).await? {
            return Err(BAD_LINK);
        }
        let id = account.id;
        self.set_password(id, new).await?;
        // Proving the address by its mailbox verifies it too.
        exec_pool(
            self.store(),
            "UPDATE identity_accounts SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
            &[Utc::now().to_rfc3339().into(), id.to_string().into()],
        )
        .await?;
        Ok(())
    }
}
