-- Identity's own tables, owned by the `identity` crate. Portable SQL:
-- TEXT and BIGINT only, timestamps as RFC 3339 UTC text).
CREATE TABLE IF NOT EXISTS identity_accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    warehouses TEXT NOT NULL,
    email_verified_at TEXT,
    disabled_at TEXT,
    failed_logins BIGINT NOT NULL,
    locked_until TEXT,
    totp_secret TEXT,
    totp_confirmed_at TEXT,
    totp_last_step BIGINT NOT NULL,
    recovery_codes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    mfa BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS identity_sessions_account ON identity_sessions (account_id);
CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS identity_one_time_tokens (
    hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS identity_signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_x TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
)
