//! Keeps webhooks from reaching inside the network: subscriber URLs must not resolve to any
//! special-purpose address (loopback, private, link-local and cloud metadata, shared, reserved,
//! documentation, multicast, tunnelling and translation prefixes that carry one of those),
//! unless `[delivery] allow_networks` lists them. Proxies are not used for deliveries (a proxy
//! would resolve the name itself, past this guard).
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
        restricted(ip).is_none() || self.allowed.iter().any(|net| net.contains(&ip))
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
                "{host} resolves to {}, a {} address, not a public one; allow it with [delivery] allow_networks",
                address.ip(),
                restricted(address.ip()).unwrap_or("restricted")
            )),
            None => Ok(()),
        }
    }
}

/// Networks a webhook must not reach by default: every block of IANA's IPv4 and IPv6
/// Special-Purpose Address Registries that is not globally reachable (plus deprecated and
/// tunnelling blocks), with why.
const RESTRICTED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID, …)"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// Why `ip` is not a public address, if it is not. IPv4-mapped addresses (`::ffff:a.b.c.d`) and
/// NAT64's well-known prefix (`64:ff9b::a.b.c.d`, which DNS64 gives IPv6-only clusters for
/// public IPv4 hosts) are judged by the IPv4 address they carry.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    static NETWORKS: std::sync::LazyLock<Vec<(IpNet, &'static str)>> = std::sync::LazyLock::new(|| {
        RESTRICTED.iter().filter_map(|(net, why)| net.parse().ok().map(|net| (net, *why))).collect()
    });
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return restricted(IpAddr::V4(v4));
        }
        if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let [.., a, b, c, d] = v6.octets();
            return restricted(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
                .map(|_| "NAT64 translation of a non-public IPv4 address");
        }
    }
    NETWORKS.iter().find(|(net, _)| net.contains(&ip)).map(|(_, why)| *why)
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

    /// One address inside each restricted block, and public neighbours that stay reachable.
    #[test]
    fn every_special_purpose_range_is_refused() {
        let inside = [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.2",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "2002:808:808::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ];
        for address in inside {
            let ip: IpAddr = address.parse().unwrap();
            assert!(restricted(ip).is_some(), "{address} must be refused");
            assert!(!Guard::default().permits(ip), "{address}");
        }
        for address in [
            "93.184.215.14",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert_eq!(restricted(address.parse().unwrap()), None, "{address} is public");
        }
    }

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
            "http://[64:ff9b::a9fe:a9fe]/",
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
