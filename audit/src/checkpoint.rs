//! Signed checkpoints: the chain's head at a position, signed with an
//! Ed25519 key, so that a verifier holding only the public key can tell the
//! chain it recomputes from one rewritten by someone without the key.
//!
//! The signature covers the RFC 8785 form of
//! `{"chain":"freshledger-audit/1","hash":…,"position":N,"signed_at":…}`.
//! A checkpoint is one JSON line wherever it lives: the database, a file
//! the server appends to, an export, `audit checkpoints` on stdout.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::canonical::{canonical_json, stamp, Hash};

/// What the signed message names as its chain (and its version).
pub const CHAIN: &str = "freshledger-audit/1";

/// The chain's head at `position`, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    pub position: u64,
    pub hash: Hash,
    pub signed_at: DateTime<Utc>,
    /// The signer's public key (32 bytes, base64url); absent when no key
    /// was configured (then the checkpoint proves consistency, not origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Ed25519 signature of [`Checkpoint::message`] (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Checkpoint {
    /// The bytes that are signed.
    pub fn message(position: u64, hash: &Hash, signed_at: DateTime<Utc>) -> Vec<u8> {
        canonical_json(&json!({
            "chain": CHAIN,
            "position": position,
            "hash": hash.hex(),
            "signed_at": stamp(signed_at),
        }))
        .expect("a flat object is canonical")
    }

    /// A checkpoint of `hash` at `position`, signed if a key is given.
    pub fn new(position: u64, hash: Hash, at: DateTime<Utc>, key: Option<&AuditKey>) -> Self {
        // Signed at microsecond precision: what every store keeps.
        let at = DateTime::parse_from_rfc3339(&stamp(at))
            .expect("our own stamp")
            .with_timezone(&Utc);
        let (public_key, signature) = match key {
            Some(k) => {
                let sig = k.0.sign(&Self::message(position, &hash, at));
                (
                    Some(k.public().encoded()),
                    Some(URL_SAFE_NO_PAD.encode(sig.to_bytes())),
                )
            }
            None => (None, None),
        };
        Checkpoint {
            position,
            hash,
            signed_at: at,
            public_key,
            signature,
        }
    }

    /// Checks the signature against `trusted` (or, without one, against the
    /// key the checkpoint names). `Err` says why, for a person.
    pub fn check_signature(&self, trusted: Option<&PublicKey>) -> Result<(), String> {
        let (Some(signature), Some(named)) = (&self.signature, &self.public_key) else {
            return Err("it is not signed (no signing key was configured when it was made)".into());
        };
        let named = PublicKey::decode(named).map_err(|e| format!("its public key: {e}"))?;
        let key = match trusted {
            Some(t) if *t != named => {
                return Err(format!(
                    "it was signed by key {}, not by the trusted key {}",
                    named.encoded(),
                    t.encoded()
                ))
            }
            Some(t) => t,
            None => &named,
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| format!("its signature is not base64url: {e}"))?;
        let sig = ed25519_dalek::Signature::from_slice(&bytes)
            .map_err(|_| "its signature is not 64 bytes".to_string())?;
        key.0
            .verify(
                &Self::message(self.position, &self.hash, self.signed_at),
                &sig,
            )
            .map_err(|_| {
                "its signature does not verify: the checkpoint was altered or forged".into()
            })
    }

    /// One JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serialises")
    }
}

/// The key that signs checkpoints.
pub struct AuditKey(SigningKey);

/// A key that verifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl AuditKey {
    pub fn generate() -> AuditKey {
        AuditKey(SigningKey::from_bytes(&rand::random()))
    }

    pub fn from_seed(seed: [u8; 32]) -> AuditKey {
        AuditKey(SigningKey::from_bytes(&seed))
    }

    /// From a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
    /// -algorithm ed25519` writes it).
    pub fn from_pem(pem: &str) -> Result<AuditKey, String> {
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(AuditKey)
            .map_err(|e| format!("not an Ed25519 private key in PKCS#8 PEM: {e}"))
    }

    pub fn to_pem(&self) -> String {
        self.0
            .to_pkcs8_pem(Default::default())
            .expect("an Ed25519 key encodes")
            .to_string()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Reads the key at `path`; when `create` and the file is missing,
    /// generates one there (mode 0600). `Ok((key, created))`.
    pub fn load_or_create(path: &Path, create: bool) -> Result<(AuditKey, bool), String> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Ok((
                Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?,
                false,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Self::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                }
                write_private(path, &key.to_pem())
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                Ok((key, true))
            }
            Err(e) => Err(format!("reading the audit key {}: {e}", path.display())),
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

impl PublicKey {
    /// 32 bytes, base64url (how checkpoints name their key).
    pub fn encoded(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(Default::default())
            .expect("an Ed25519 key encodes")
    }

    /// From an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), 64 hex digits, or
    /// base64url of the 32 bytes.
    pub fn decode(text: &str) -> Result<PublicKey, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text)
                .map(PublicKey)
                .map_err(|e| format!("not an Ed25519 public key in PEM: {e}"));
        }
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            URL_SAFE_NO_PAD.decode(text).map_err(|_| {
                format!("{text:?} is not a PEM, hex or base64url Ed25519 public key")
            })?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| format!("not an Ed25519 public key: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_an_altered_one_does_not() {
        let key = AuditKey::from_seed([3; 32]);
        let other = AuditKey::from_seed([4; 32]);
        let cp = Checkpoint::new(10, Hash([9; 32]), Utc::now(), Some(&key));
        assert_eq!(cp.check_signature(Some(&key.public())), Ok(()));
        assert_eq!(cp.check_signature(None), Ok(()));
        let wrong = cp.check_signature(Some(&other.public())).unwrap_err();
        assert!(wrong.contains("not by the trusted key"), "{wrong}");
        let mut moved = cp.clone();
        moved.position = 11;
        assert!(moved
            .check_signature(None)
            .unwrap_err()
            .contains("does not verify"));
        let mut rehashed = cp.clone();
        rehashed.hash = Hash([8; 32]);
        assert!(rehashed.check_signature(None).is_err());
        let line: Checkpoint = serde_json::from_str(&cp.to_line()).unwrap();
        assert_eq!(line, cp);
        let unsigned = Checkpoint::new(10, Hash([9; 32]), Utc::now(), None);
        assert!(unsigned
            .check_signature(None)
            .unwrap_err()
            .contains("not signed"));
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let key = AuditKey::from_seed([5; 32]);
        let again = AuditKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = key.public();
        assert_eq!(PublicKey::decode(&public.to_pem()).unwrap(), public);
        assert_eq!(PublicKey::decode(&public.encoded()).unwrap(), public);
        assert_eq!(
            PublicKey::decode(&hex::encode(public.0.to_bytes())).unwrap(),
            public
        );
        assert!(PublicKey::decode("nonsense").is_err());
        assert!(
            AuditKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }
}
