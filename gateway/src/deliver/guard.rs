//! Keeps webhooks from reaching inside the network: subscriber URLs must not resolve to
//! loopback, private, link-local (cloud metadata), shared-address, unspecified or multicast
//! addresses, unless `[delivery] allow_networks` lists them.
//!
//! The check runs when a subscription is created and again at every connection (a resolver
//! that drops such addresses), so a name that later resolves inside (DNS rebinding) is refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Arc<Vec<IpNet>>,
}

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !restricted(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Resolves a URL's host and refuses it if any address is not permitted.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host =
            url.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        match addresses.iter().find(|a| !self.permits(a.ip())) {
            Some(address) => Err(format!(
                "{host} resolves to {}, a loopback, private, link-local or otherwise internal address; \
                 allow it with [delivery] allow_networks",
                address.ip()
            )),
            None => Ok(()),
        }
    }
}

/// Addresses a webhook must not reach by default.
fn restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => restricted(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
            }
        },
    }
}

/// A resolver for the delivery HTTP client that drops addresses the guard does not permit.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Guard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found.into_iter().filter(|a| guard.permits(a.ip())).collect();
            if permitted.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses deliveries may not reach").into();
                return Err(refused);
            }
            let addresses: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_addresses_are_refused_unless_allowed() {
        let guard = Guard::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:10.0.0.1]/",
            "http://0.0.0.0/",
            "http://localhost:9/",
        ] {
            let error = guard.check_url(url).await.unwrap_err();
            assert!(error.contains("allow_networks"), "{url}: {error}");
        }
        assert!(guard.check_url("http://93.184.215.14/").await.is_ok(), "a public address");
        let allowed = Guard::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(allowed.check_url("http://127.0.0.1:8080/hook").await.is_ok());
        assert!(allowed.check_url("http://10.0.0.1/").await.is_err());
    }
}
