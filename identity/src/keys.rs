//! Signing keys for access tokens: Ed25519 (EdDSA), each with a `kid`,
//! kept in `identity_signing_keys` so that every server process signs and
//! verifies with the same set. Rotation adds a key and retires the active
//! one; a retired key stays published (and accepted) until every token it
//! signed has expired.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use store::sql::{exec_pool, fetch};
use store::{Store, StoreError};
use tokio::sync::RwLock;

/// How long a loaded key set is used before it is read again (a rotation
/// made by another process is seen within this).
const RELOAD_AFTER: Duration = Duration::from_secs(30);
/// An unknown `kid` reloads the set at most this often.
const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(5);

const TABLE: &str = "identity_signing_keys";

fn corrupt(kid: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::CorruptRow {
        table: TABLE,
        key: kid.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) struct KeyRing {
    store: Store,
    /// How long a retired key stays published: the access tokens' lifetime
    /// and a margin.
    grace: chrono::Duration,
    state: RwLock<Option<Loaded>>,
}

struct Loaded {
    at: Instant,
    signing: (String, EncodingKey),
    verifying: HashMap<String, DecodingKey>,
    jwks: JwkSet,
}

#[derive(Deserialize)]
struct KeyRow {
    kid: String,
    private_key: String,
    public_x: String,
    retired_at: Option<DateTime<Utc>>,
}

/// A new Ed25519 key: (kid, PKCS#8 DER in base64, public key in base64url).
fn generate() -> (String, String, String) {
    let seed: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key
        .to_pkcs8_der()
        .expect("an Ed25519 key encodes as PKCS#8");
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(x.as_bytes())[..12]);
    (kid, STANDARD.encode(der.as_bytes()), x)
}

fn jwk(kid: &str, x: &str) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_string()),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: x.to_string(),
        }),
    }
}

impl KeyRing {
    pub(crate) fn new(store: &Store, grace: chrono::Duration) -> KeyRing {
        KeyRing {
            store: store.clone(),
            grace,
            state: RwLock::new(None),
        }
    }

    /// Makes sure a signing key exists (the first start creates one).
    pub(crate) async fn ensure(&self) -> Result<(), StoreError> {
        let active = fetch(
            &self.store,
            "SELECT kid FROM identity_signing_keys WHERE retired_at IS NULL",
            &[],
        )
        .await?;
        if active.is_empty() {
            self.insert_new().await?;
        }
        self.reload().await
    }

    async fn insert_new(&self) -> Result<String, StoreError> {
        let (kid, private, x) = generate();
        exec_pool(
            &self.store,
            "INSERT INTO identity_signing_keys (kid, algorithm, private_key, public_x, created_at, retired_at) VALUES (?, 'EdDSA', ?, ?, ?, NULL)",
            &[
                kid.clone().into(),
                private.into(),
                x.into(),
                Utc::now().to_rfc3339().into(),
            ],
        )
        .await?;
        Ok(kid)
    }

    /// Retires the active key(s) and signs with a new one from now on.
    pub(crate) async fn rotate(&self) -> Result<String, StoreError> {
        exec_pool(
            &self.store,
            "UPDATE identity_signing_keys SET retired_at = ? WHERE retired_at IS NULL",
            &[Utc::now().to_rfc3339().into()],
        )
        .await?;
        let kid = self.insert_new().await?;
        self.reload().await?;
        Ok(kid)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let rows = fetch(
            &self.store,
            "SELECT kid, private_key, public_x, retired_at FROM identity_signing_keys ORDER BY created_at, kid",
            &[],
        )
        .await?;
        let cutoff = Utc::now() - self.grace;
        let mut signing = None;
        let mut verifying = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for row in rows {
            let k: KeyRow = crate::row(TABLE, row)?;
            if k.retired_at.is_some_and(|t| t < cutoff) {
                continue;
            }
            let decoding =
                DecodingKey::from_ed_components(&k.x_checked()?).map_err(|e| corrupt(&k.kid, e))?;
            verifying.insert(k.kid.clone(), decoding);
            jwks.keys.push(jwk(&k.kid, &k.public_x));
            if k.retired_at.is_none() {
                let der = STANDARD
                    .decode(&k.private_key)
                    .map_err(|e| corrupt(&k.kid, e))?;
                // The newest active key signs.
                signing = Some((k.kid.clone(), EncodingKey::from_ed_der(&der)));
            }
        }
        let signing = signing.ok_or_else(|| corrupt("", "no active key"))?;
        *self.state.write().await = Some(Loaded {
            at: Instant::now(),
            signing,
            verifying,
            jwks,
        });
        Ok(())
    }

    async fn fresh(&self) -> Result<(), StoreError> {
        let stale = match &*self.state.read().await {
            Some(l) => l.at.elapsed() > RELOAD_AFTER,
            None => true,
        };
        if stale {
            self.reload().await?;
        }
        Ok(())
    }

    /// Signs `claims` with the active key (header: EdDSA, its `kid`).
    pub(crate) async fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, StoreError> {
        self.fresh().await?;
        let state = self.state.read().await;
        let loaded = state.as_ref().expect("loaded by fresh");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(loaded.signing.0.clone());
        Ok(jsonwebtoken::encode(&header, claims, &loaded.signing.1)
            .expect("an Ed25519 key signs any claims"))
    }

    /// The key that verifies tokens of `kid`; an unknown `kid` reloads the
    /// set (at most every few seconds) in case another process rotated.
    pub(crate) async fn verifying(&self, kid: &str) -> Result<Option<DecodingKey>, StoreError> {
        self.fresh().await?;
        let (found, loaded_at) = {
            let state = self.state.read().await;
            let loaded = state.as_ref().expect("loaded by fresh");
            (loaded.verifying.get(kid).cloned(), loaded.at)
        };
        if found.is_some() || loaded_at.elapsed() < UNKNOWN_KID_COOLDOWN {
            return Ok(found);
        }
        self.reload().await?;
        let state = self.state.read().await;
        Ok(state.as_ref().and_then(|l| l.verifying.get(kid).cloned()))
    }

    /// The published keys (`/.well-known/jwks.json`).
    pub(crate) async fn jwks(&self) -> Result<JwkSet, StoreError> {
        self.fresh().await?;
        let state = self.state.read().await;
        Ok(state.as_ref().expect("loaded by fresh").jwks.clone())
    }
}

impl KeyRow {
    fn x_checked(&self) -> Result<String, StoreError> {
        match URL_SAFE_NO_PAD.decode(&self.public_x) {
            Ok(b) if b.len() == 32 => Ok(self.public_x.clone()),
            _ => Err(corrupt(
                &self.kid,
                "the public key is not 32 bytes of base64url",
            )),
        }
    }
}
