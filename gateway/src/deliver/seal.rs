//! Signing secrets of API-created subscriptions, encrypted before they go into the
//! subscriptions topic, so that reading the topic does not give away the keys subscribers
//! verify webhooks with.
//!
//! With `[delivery] secrets_keys`, each secret is stored as `sealed:v1:` + base64 of a random
//! 96-bit nonce and its AES-256-GCM ciphertext, authenticated with the subscription's name (a
//! sealed secret copied to another subscription does not open). The first key seals; every key
//! opens, and a replica seals again whatever is not sealed with the first key (plain secrets
//! stored before there were keys, or ones sealed before a rotation), so keys rotate by putting a
//! new one first and dropping the old one once that has happened. Without keys, secrets are
//! stored as given (the topic must then be protected by Kafka ACLs alone).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

const PREFIX: &str = "sealed:v1:";

/// The configured keys; no keys, no sealing.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

impl Sealer {
    /// Keys as base64 of 32 bytes each (checked when the config was loaded).
    pub fn new(keys: &[String]) -> Result<Self, String> {
        let keys = crate::config::decode_secrets_keys(keys)?
            .iter()
            .map(|bytes| {
                UnboundKey::new(&AES_256_GCM, bytes)
                    .map(LessSafeKey::new)
                    .map_err(|_| "a key is not 32 bytes".to_owned())
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { keys, random: SystemRandom::new() })
    }

    /// The secrets as they are stored for subscription `name`.
    pub fn seal(&self, name: &str, secrets: &[String]) -> Result<Vec<String>, String> {
        let Some(key) = self.keys.first() else { return Ok(secrets.to_vec()) };
        secrets
            .iter()
            .map(|secret| {
                let mut nonce = [0u8; NONCE_LEN];
                self.random.fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_owned())?;
                let mut sealed = secret.as_bytes().to_vec();
                key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut sealed)
                    .map_err(|_| "cannot encrypt a secret".to_owned())?;
                let mut stored = nonce.to_vec();
                stored.extend_from_slice(&sealed);
                Ok(format!("{PREFIX}{}", STANDARD.encode(stored)))
            })
            .collect()
    }

    /// The secrets of subscription `name` as stored, opened; plain ones pass through.
    pub fn open(&self, name: &str, stored: &[String]) -> Result<Vec<String>, String> {
        stored
            .iter()
            .map(|text| {
                let Some(encoded) = text.strip_prefix(PREFIX) else { return Ok(text.clone()) };
                let (nonce, sealed) = split(encoded)?;
                for key in &self.keys {
                    if let Some(plain) = open_with(key, name, nonce, &sealed) {
                        return String::from_utf8(plain).map_err(|_| "a sealed secret is not text".to_owned());
                    }
                }
                Err(if self.keys.is_empty() {
                    "its secrets are sealed, and [delivery] secrets_keys is empty".to_owned()
                } else {
                    "no key in [delivery] secrets_keys opens its secrets".to_owned()
                })
            })
            .collect()
    }

    /// Whether secrets stored for `name` are as they would be written now: sealed with the
    /// first key (any form when there are no keys). Plain secrets, and secrets sealed with a key
    /// that is no longer first, are sealed again by the replica that notices (see
    /// `Deliveries::reseal`), which is what lets keys be added and rotated.
    pub fn is_current(&self, name: &str, stored: &[String]) -> bool {
        let Some(first) = self.keys.first() else { return true };
        stored.iter().all(|text| {
            text.strip_prefix(PREFIX)
                .and_then(|encoded| split(encoded).ok())
                .is_some_and(|(nonce, sealed)| open_with(first, name, nonce, &sealed).is_some())
        })
    }
}

/// A stored secret's nonce and ciphertext.
fn split(encoded: &str) -> Result<([u8; NONCE_LEN], Vec<u8>), String> {
    let bytes = STANDARD.decode(encoded).map_err(|_| "a sealed secret is not base64".to_owned())?;
    if bytes.len() < NONCE_LEN {
        return Err("a sealed secret is truncated".to_owned());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let mut fixed = [0u8; NONCE_LEN];
    fixed.copy_from_slice(nonce);
    Ok((fixed, sealed.to_vec()))
}

fn open_with(key: &LessSafeKey, name: &str, nonce: [u8; NONCE_LEN], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut buffer = sealed.to_vec();
    let plain = key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut buffer).ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_secrets_open_with_any_configured_key_and_only_for_their_subscription() {
        let old = Sealer::new(&[key(1)]).unwrap();
        let sealed = old.seal("orders", &[SECRET.to_owned()]).unwrap();
        assert!(sealed[0].starts_with(PREFIX) && !sealed[0].contains("MfKQ9r8"), "{sealed:?}");
        assert_ne!(sealed, old.seal("orders", &[SECRET.to_owned()]).unwrap(), "a fresh nonce each time");
        // After a rotation (new key first, old kept), old records still open.
        let rotated = Sealer::new(&[key(2), key(1)]).unwrap();
        assert_eq!(rotated.open("orders", &sealed).unwrap(), [SECRET]);
        assert!(rotated.open("payments", &sealed).is_err(), "bound to the subscription's name");
        assert!(
            old.is_current("orders", &sealed) && !rotated.is_current("orders", &sealed),
            "re-sealed after a rotation"
        );
        assert!(rotated.is_current("orders", &rotated.seal("orders", &[SECRET.to_owned()]).unwrap()));
        let error = Sealer::new(&[key(2)]).unwrap().open("orders", &sealed).unwrap_err();
        assert!(error.contains("no key"), "{error}");
        assert!(Sealer::new(&[]).unwrap().open("orders", &sealed).unwrap_err().contains("empty"));
    }

    #[test]
    fn without_keys_secrets_are_stored_as_given_and_plain_ones_always_open() {
        let none = Sealer::new(&[]).unwrap();
        assert_eq!(none.seal("s", &[SECRET.to_owned()]).unwrap(), [SECRET]);
        assert_eq!(Sealer::new(&[key(1)]).unwrap().open("s", &[SECRET.to_owned()]).unwrap(), [SECRET]);
        assert!(none.is_current("s", &[SECRET.to_owned()]), "nothing to seal with");
        assert!(!Sealer::new(&[key(1)]).unwrap().is_current("s", &[SECRET.to_owned()]), "plain, and a key now exists");
        assert!(Sealer::new(&["c2hvcnQ=".to_owned()]).unwrap_err().contains("32 bytes"));
    }
}
