//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew either
//! way, as authenticator apps expect) and single-use recovery codes.

use totp_rs::{Algorithm, Secret, TOTP};

pub(crate) const RECOVERY_CODES: usize = 10;

fn totp(secret_base32: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_base32.to_string()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Freshledger".to_string()),
        account.to_string(),
    )
    .ok()
}

/// A new secret (160 random bits, base32) and its `otpauth://` URL.
pub(crate) fn new_secret(account: &str) -> (String, String) {
    let raw: [u8; 20] = rand::random();
    let encoded = Secret::Raw(raw.to_vec()).to_encoded().to_string();
    let url = totp(&encoded, account)
        .expect("a 160-bit secret makes a TOTP")
        .get_url();
    (encoded, url)
}

/// The time step `code` is valid for now (within the skew), if any.
pub(crate) fn check(secret_base32: &str, code: &str, now: u64) -> Option<u64> {
    let t = totp(secret_base32, "x")?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now / 30;
    [step.saturating_sub(1), step, step + 1]
        .into_iter()
        .find(|s| t.generate(s * 30) == code)
}

/// Ten recovery codes, `xxxxx-xxxxx` of lower-case base32.
pub(crate) fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes: [u8; 10] = rand::random();
            let s: String = bytes
                .iter()
                .map(|b| ALPHABET[(*b & 31) as usize] as char)
                .collect();
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect()
}

/// A recovery code as typed (spaces, case and a missing dash forgiven).
pub(crate) fn normalise_recovery(code: &str) -> String {
    let s: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.len() == 10 {
        format!("{}-{}", &s[..5], &s[5..])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_accepted_in_its_step_and_the_next_only() {
        let (secret, url) = new_secret("a@example.com");
        assert!(url.starts_with("otpauth://totp/Freshledger:a%40example.com?secret="));
        let t = totp(&secret, "x").unwrap();
        let now = 1_800_000_000u64;
        let code = t.generate(now);
        assert_eq!(check(&secret, &code, now), Some(now / 30));
        assert_eq!(check(&secret, &code, now + 30), Some(now / 30));
        assert_eq!(check(&secret, &code, now + 90), None);
        assert_eq!(check(&secret, "12345", now), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(normalise_recovery(&c.to_uppercase().replace('-', " ")), *c);
    }
}
