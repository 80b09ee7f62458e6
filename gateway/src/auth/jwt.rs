//! JWT bearer tokens checked against an identity provider's published keys (JWKS).
//!
//! Only asymmetric algorithms are accepted (RSA, RSA-PSS, ECDSA, EdDSA): a key published for
//! everyone to read must not double as an HMAC secret. The JWKS is fetched at start, again every
//! `refresh_s`, and when a token names a key id not seen yet (at most every 30 s, so tokens with
//! made-up ids cannot make Sluice hammer the provider).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Principal, Scope};
use crate::config::JwtConfig;

/// The shortest time between two fetches caused by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(30);

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Key {
    decoding: DecodingKey,
    /// The algorithm the JWK says it is for, if it says.
    algorithm: Option<Algorithm>,
}

/// Verifies tokens; keeps the provider's keys fresh.
pub struct Jwt {
    config: JwtConfig,
    keys: RwLock<Arc<HashMap<String, Key>>>,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt").field("issuer", &self.config.issuer).finish_non_exhaustive()
    }
}

impl Jwt {
    /// Loads the keys (a JWKS file must be readable; a provider that does not answer yet is
    /// tried again later) and keeps refreshing them.
    pub async fn start(config: JwtConfig) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        let jwt = Arc::new(Self { config, keys: RwLock::default(), last_fetch: Mutex::new(None), http });
        match jwt.refresh().await {
            Ok(count) => tracing::info!(keys = count, "JWT signing keys loaded"),
            Err(error) if jwt.config.jwks_file.is_some() => return Err(error),
            Err(error) => tracing::warn!(error, "cannot load the JWT signing keys yet; tokens are refused until then"),
        }
        let weak = Arc::downgrade(&jwt);
        let every = Duration::from_secs(jwt.config.refresh_s);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(jwt) = weak.upgrade() else { break };
                if let Err(error) = jwt.refresh().await {
                    tracing::warn!(error, "cannot refresh the JWT signing keys; keeping the known ones");
                }
            }
        });
        Ok(jwt)
    }

    /// Fetches the JWKS and replaces the known keys; returns how many there are.
    async fn refresh(&self) -> Result<usize, String> {
        *self.last_fetch.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let text = match (&self.config.jwks_url, &self.config.jwks_file) {
            (Some(url), _) => {
                let response = self.http.get(url).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("{url} answered {}", response.status()));
                }
                response.text().await.map_err(|e| format!("reading {url}: {e}"))?
            }
            (None, Some(path)) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
                })
                .await
                .map_err(|e| e.to_string())??
            }
            (None, None) => return Err("no JWKS source".into()),
        };
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let algorithm = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(jwk) {
                Ok(decoding) => {
                    keys.insert(kid, Key { decoding, algorithm });
                }
                Err(error) => tracing::warn!(kid, error = %error, "skipping a JWKS key Sluice cannot use"),
            }
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(count)
    }

    /// The principal a valid token stands for.
    pub async fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(format!("tokens signed with {:?} are not accepted", header.alg));
        }
        let kid = header.kid.ok_or("the token names no signing key (kid)")?;
        let mut keys = self.keys.read().unwrap_or_else(PoisonError::into_inner).clone();
        if !keys.contains_key(&kid) && self.may_refetch() {
            let _ = self.refresh().await;
            keys = self.keys.read().unwrap_or_else(PoisonError::into_inner).clone();
        }
        let key = keys.get(&kid).ok_or_else(|| format!("unknown signing key '{kid}'"))?;
        if key.algorithm.is_some_and(|a| a != header.alg) {
            return Err(format!("key '{kid}' is not for {:?}", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        let scopes = match data.claims.get(&self.config.scope_claim) {
            Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        // Scopes Sluice does not know belong to other services: ignored, not an error.
        let scopes: Vec<Scope> = scopes.iter().filter_map(|s: &String| s.parse().ok()).collect();
        let name = data.claims.get("sub").and_then(Value::as_str).unwrap_or("jwt").to_owned();
        Ok(Principal { name, scopes, requests_per_second: None })
    }

    fn may_refetch(&self) -> bool {
        self.last_fetch.lock().unwrap_or_else(PoisonError::into_inner).is_none_or(|at| at.elapsed() >= MIN_REFETCH)
    }
}
