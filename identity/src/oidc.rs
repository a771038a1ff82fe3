//! Tokens of an external OpenID Connect issuer (Keycloak, Auth0, …),
//! checked against its published keys: the JWKS is fetched on first use,
//! cached, and fetched again when a token names a `kid` it does not hold
//! (at most once per cool-down, so a flood of made-up `kid`s cannot turn
//! into a flood of fetches).

use std::time::{Duration, Instant};

use event_schemas::ActorRole;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::error::AuthError;
use crate::principal::{Issuer, Principal};

/// How an external issuer is trusted.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The `iss` its tokens carry (e.g. `https://sso.example.com/realms/shop`).
    pub issuer: String,
    /// The `aud` our API requires.
    pub audience: String,
    /// Where its keys are; when `None`, read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// The claim holding roles, dot-separated into nested objects
    /// (`realm_access.roles` for Keycloak); a string or a list of strings.
    pub role_claim: String,
    /// Issuer role → our role; the first that the token holds wins.
    pub roles: Vec<(String, ActorRole)>,
    /// The claim listing a seller's warehouses.
    pub warehouses_claim: String,
    /// The least time between two fetches of the keys.
    pub refresh_cooldown: Duration,
}

/// The algorithms an external token may be signed with (never `none`, never
/// a shared secret).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub(crate) struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

impl Oidc {
    pub(crate) fn new(config: OidcConfig) -> Oidc {
        Oidc {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client builds"),
            keys: Mutex::new(Cache::default()),
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let url = match &self.config.jwks_url {
            Some(u) => u.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&discovery).await?;
                doc["jwks_uri"]
                    .as_str()
                    .ok_or("the discovery document names no jwks_uri")?
                    .to_string()
            }
        };
        self.get_json(&url).await
    }

    /// A JSON document of the provider's (a 2xx answer only).
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// The key of `kid`: from the cache, or from a new fetch when the cache
    /// lacks it and the cool-down has passed.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut cache = self.keys.lock().await;
        if let Some(jwk) = cache.set.as_ref().and_then(|s| s.find(kid)) {
            return DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string()));
        }
        let may_fetch = cache
            .fetched
            .is_none_or(|t| t.elapsed() >= self.config.refresh_cooldown);
        if !may_fetch {
            return Err(AuthError::Invalid(format!("unknown key id {kid:?}")));
        }
        cache.fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => cache.set = Some(set),
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.config.issuer, "the identity provider's keys could not be fetched");
                if cache.set.is_none() {
                    return Err(AuthError::Unavailable);
                }
            }
        }
        match cache.set.as_ref().and_then(|s| s.find(kid)) {
            Some(jwk) => DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string())),
            None => Err(AuthError::Invalid(format!("unknown key id {kid:?}"))),
        }
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (alg, kid) = crate::session::algorithm_and_kid(token, ALGORITHMS)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims: Value = jsonwebtoken::decode(token, &key, &validation)
            .map_err(crate::session::auth_error)?
            .claims;
        let sub = claims["sub"]
            .as_str()
            .ok_or_else(|| AuthError::Invalid("sub is not a string".into()))?;
        let subject = Uuid::parse_str(sub).unwrap_or_else(|_| {
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!("{}#{sub}", self.config.issuer).as_bytes(),
            )
        });
        let held = strings_at(&claims, &self.config.role_claim);
        let role = self
            .config
            .roles
            .iter()
            .find(|(theirs, _)| held.iter().any(|h| h == theirs))
            .map(|(_, ours)| *ours)
            .ok_or(AuthError::NoRole)?;
        Ok(Principal {
            subject,
            role,
            warehouses: strings_at(&claims, &self.config.warehouses_claim),
            // The issuer owns its sign-in policy, second factors included.
            mfa: true,
            email_verified: claims["email_verified"].as_bool().unwrap_or(false),
            issuer: Issuer::Oidc,
        })
    }
}

/// The strings at a dot-separated claim path (a string or a list of them).
fn strings_at(claims: &Value, path: &str) -> Vec<String> {
    let mut v = claims;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn role_claims_are_found_at_nested_paths() {
        let c = serde_json::json!({"realm_access": {"roles": ["a", "b"]}, "role": "c"});
        assert_eq!(super::strings_at(&c, "realm_access.roles"), ["a", "b"]);
        assert_eq!(super::strings_at(&c, "role"), ["c"]);
        assert!(super::strings_at(&c, "missing.path").is_empty());
    }
}
