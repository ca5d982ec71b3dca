//! The client's address behind reverse proxies.
//!
//! `X-Forwarded-For` is believed only when the connection comes from a configured proxy;
//! otherwise anybody could pick their own rate-limit bucket by sending the header. Behind a
//! trusted proxy the client is the right-most address in the header that is not itself a
//! trusted proxy (proxies append what they saw, so entries further left are the client's word).

use std::net::IpAddr;

use crate::config::IpRange;

/// Configured proxies: single addresses or CIDR ranges (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// The proxies of the configuration.
    pub fn new(ranges: &[IpRange]) -> Self {
        Self {
            nets: ranges.iter().map(|r| (r.addr, r.prefix)).collect(),
        }
    }

    /// Whether `ip` is one of the proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|(net, bits)| in_net(ip, canonical(*net), *bits))
    }

    /// The client of a request that arrived from `peer` with these `X-Forwarded-For` values.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(xff) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for entry in xff.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                // A malformed hop: trust stops at the last good one.
                Err(_) => break,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let ranges: Vec<IpRange> = ["127.0.0.1", "10.0.0.0/8"]
            .iter()
            .map(|r| r.parse().expect("range"))
            .collect();
        let t = TrustedProxies::new(&ranges);
        // Not a proxy: the header is ignored.
        assert_eq!(
            t.client(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // From the proxy: the right-most untrusted hop.
        assert_eq!(
            t.client(ip("127.0.0.1"), Some("1.2.3.4, 198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), Some("198.51.100.7, 10.1.2.3")),
            ip("198.51.100.7")
        );
        assert_eq!(t.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(t.client(ip("127.0.0.1"), Some("junk")), ip("127.0.0.1"));
        assert!(t.contains(ip("::ffff:10.9.8.7")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nginx".parse::<IpRange>().is_err());
        assert!("fd00::/8".parse::<IpRange>().is_ok());
    }
}
