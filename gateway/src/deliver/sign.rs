//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature`, `v1,` + base64 of HMAC-SHA256 over
//! `{id}.{timestamp}.{body}` keyed with the secret's bytes. Several secrets (during a rotation)
//! give several space-separated signatures; receivers accept any that verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// A signing secret: `whsec_` followed by base64 of the key bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        crate::config::subscription::secret_key(text).map(Secret)
    }
}

impl Secret {
    /// The secrets that parse (a spec's were checked when it was accepted).
    pub fn parse_all(secrets: &[String]) -> Vec<Secret> {
        secrets.iter().filter_map(|s| s.parse().ok()).collect()
    }
}

/// The `webhook-signature` header value for a message.
///
/// # Examples
/// ```
/// use sluice::deliver::sign::{Secret, signature};
/// let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
/// let header = signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// ```
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            // HMAC takes keys of any length.
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked() {
        assert!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<Secret>().is_err());
        assert!("whsec_!!!".parse::<Secret>().is_err());
        assert!("whsec_c2hvcnQ=".parse::<Secret>().is_err(), "5 bytes");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let a: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let b: Secret = "whsec_c2Vjb25kLXNlY3JldC0xMjM0NTY3OA==".parse().unwrap();
        let header = signature(&[a, b], "id", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }
}
