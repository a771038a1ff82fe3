//! Passwords: argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1,
//! OWASP's recommendation), hashed off the async workers.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::IdentityError;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

/// The policy: 10 to 128 characters, not the email address.
pub fn check_policy(password: &str, email: &str) -> Result<(), IdentityError> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(IdentityError::invalid(
            "weak_password",
            format!("a password has {MIN_LEN} to {MAX_LEN} characters"),
        ));
    }
    if password.eq_ignore_ascii_case(email) {
        return Err(IdentityError::invalid(
            "weak_password",
            "the password may not be the email address",
        ));
    }
    Ok(())
}

/// The PHC string of `password`'s argon2id hash.
pub async fn hash(password: &str) -> String {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .expect("argon2id hashes any password of at most 128 characters")
            .to_string()
    })
    .await
    .expect("hashing does not panic")
}

/// Does `password` match the PHC string `phc`? (Constant time in the
/// hash; an unknown account is checked against a dummy hash so that both
/// take as long.)
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_string(), phc.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}
