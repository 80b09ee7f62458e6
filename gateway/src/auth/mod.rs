//! Who may do what: API keys (known only by their SHA-256) and JWT bearer tokens, each with
//! scopes, turned into the [`Principal`] a request acts as.
//!
//! Credentials come in `Authorization: Bearer <key or token>` or `X-API-Key: <key>`. A bearer
//! value with two dots is taken for a JWT when `[auth.jwt]` is configured; anything else is
//! looked up as an API key. Without `[auth]`, every request acts as an anonymous admin.

mod jwt;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
pub use crate::config::scope::{Pattern, Permission, Scope};

/// Who a request acts as.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The API key's name or the token's subject.
    pub name: String,
    scopes: Vec<Scope>,
    /// This principal's own rate limit, if it has one.
    pub requests_per_second: Option<u32>,
}

impl Principal {
    fn anonymous() -> Self {
        Self { name: "anonymous".into(), scopes: vec![Scope::Admin], requests_per_second: None }
    }

    pub fn allows(&self, permission: Permission<'_>) -> bool {
        self.scopes.iter().any(|scope| scope.grants(permission))
    }

    /// `Err` names the scope that would have allowed it.
    pub fn require(&self, permission: Permission<'_>) -> Result<(), AuthError> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden { principal: self.name.clone(), needed: permission.to_string() })
        }
    }
}

/// Why a request may not go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs credentials: Authorization: Bearer <API key or token>")]
    Missing,
    #[error("the credentials are not valid: {0}")]
    Invalid(String),
    #[error("'{principal}' may not do this; it needs the scope '{needed}'")]
    Forbidden { principal: String, needed: String },
}

/// The configured credentials.
#[derive(Debug)]
pub struct Auth {
    enabled: bool,
    keys: HashMap<[u8; 32], Arc<Principal>>,
    jwt: Option<Arc<jwt::Jwt>>,
}

impl Auth {
    /// From `[auth]` (checked when the config was loaded); `None` lets everyone in.
    pub async fn new(config: Option<&AuthConfig>) -> Result<Self, String> {
        let Some(config) = config else {
            return Ok(Self { enabled: false, keys: HashMap::new(), jwt: None });
        };
        let mut keys = HashMap::new();
        for key in &config.api_keys {
            let mut hash = [0u8; 32];
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&key.sha256[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("auth.api_keys '{}': sha256 is not hex", key.name))?;
            }
            let scopes = key.scopes.iter().map(|s| s.parse()).collect::<Result<Vec<Scope>, String>>()?;
            let principal = Principal { name: key.name.clone(), scopes, requests_per_second: key.requests_per_second };
            keys.insert(hash, Arc::new(principal));
        }
        let jwt = match &config.jwt {
            Some(jwt) => Some(jwt::Jwt::start(jwt.clone()).await?),
            None => None,
        };
        Ok(Self { enabled: true, keys, jwt })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The principal the request's credentials stand for.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        if !self.enabled {
            static ANONYMOUS: std::sync::LazyLock<Arc<Principal>> =
                std::sync::LazyLock::new(|| Arc::new(Principal::anonymous()));
            return Ok(ANONYMOUS.clone());
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let credential = bearer.or(api_key).map(str::trim).filter(|c| !c.is_empty()).ok_or(AuthError::Missing)?;
        if let Some(jwt) = &self.jwt
            && credential.matches('.').count() == 2
        {
            return jwt.verify(credential).await.map(Arc::new).map_err(AuthError::Invalid);
        }
        let hash: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        self.keys.get(&hash).cloned().ok_or_else(|| AuthError::Invalid("unknown API key".into()))
    }
}

/// A new random API key and the hex SHA-256 to put in `[[auth.api_keys]]`.
pub fn new_key() -> Result<(String, String), String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let key = format!("sk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Ok((key, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn api_keys_are_found_by_their_hash_and_carry_their_scopes() {
        let (key, sha256) = new_key().unwrap();
        assert!(key.starts_with("sk_") && key.len() > 40);
        let config = AuthConfig {
            api_keys: vec![ApiKeyConfig {
                name: "checkout".into(),
                sha256,
                scopes: vec!["produce:orders.*".into()],
                requests_per_second: Some(5),
            }],
            jwt: None,
        };
        let auth = Auth::new(Some(&config)).await.unwrap();
        for (name, value) in [("authorization", format!("Bearer {key}")), ("x-api-key", key.clone())] {
            let principal = auth.authenticate(&headers(name, &value)).await.unwrap();
            assert_eq!((principal.name.as_str(), principal.requests_per_second), ("checkout", Some(5)));
            assert!(principal.allows(Permission::Produce("orders.placed")));
            let refused = principal.require(Permission::Produce("payments.confirmed")).unwrap_err();
            assert!(refused.to_string().contains("produce:payments.confirmed"), "{refused}");
        }
        assert!(matches!(auth.authenticate(&HeaderMap::new()).await, Err(AuthError::Missing)));
        let wrong = auth.authenticate(&headers("authorization", "Bearer sk_wrong")).await;
        assert!(matches!(wrong, Err(AuthError::Invalid(_))));
    }

    #[tokio::test]
    async fn without_auth_everyone_is_an_anonymous_admin() {
        let auth = Auth::new(None).await.unwrap();
        let principal = auth.authenticate(&HeaderMap::new()).await.unwrap();
        assert!(principal.allows(Permission::RegistryWrite) && principal.allows(Permission::Produce("any")));
    }
}
