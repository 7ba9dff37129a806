//! Whose budget a request spends.
//!
//! The client address is the one the host saw (`spin-client-addr`), never
//! a header the client wrote, unless that address is a proxy the
//! deployment trusts (its own front door or CDN): then the client is the
//! nearest untrusted address in `X-Forwarded-For`, read from the right,
//! since only the entries the trusted proxies appended are theirs. IPv6
//! clients are grouped by their /64: one subscriber usually holds a whole
//! /64, and keying single addresses would give each of them 2^64 budgets.

use std::net::IpAddr;

/// Most `X-Forwarded-For` entries looked at, from the right: a chain of
/// trusted proxies is short, and a client can write any number.
pub const MAX_FORWARDED_HOPS: usize = 16;

/// The budget key for a client address such as `203.0.113.7:51234` or
/// `[2001:db8::1]:443` (the port, if any, is dropped). `None` if it is not
/// an address.
pub fn client_key(addr: &str) -> Option<String> {
    parse_addr(addr).map(ip_key)
}

/// The budget key of an address.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// An address with or without a port, IPv6 with or without brackets.
fn parse_addr(addr: &str) -> Option<IpAddr> {
    let addr = addr.trim();
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sock) => Some(sock.ip()),
        Err(_) => addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok(),
    }
}

/// An IPv4 address as itself even when a dual-stack socket mapped it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies allowed to say who the client is, as address ranges
/// (`ratelimit_trusted_proxies`: `127.0.0.1/32, 10.0.0.0/8, ::1`). Empty by
/// default: then no header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Ranges separated by commas or white space; a bare address is one
    /// host.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut ranges = Vec::new();
        for item in list.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an address or address/prefix"))?;
            let ip = canonical(ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length is 0 to {max}"))?,
            };
            ranges.push((ip, bits));
        }
        Ok(TrustedProxies(ranges))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        })
    }

    /// The client of a request the host saw from `peer` carrying
    /// `forwarded_for` (every `X-Forwarded-For` line, joined by commas).
    /// `None` when `peer` is not an address.
    ///
    /// From a trusted peer, entries are read from the right, skipping
    /// trusted proxies; the first other address is the client. An entry
    /// that is not an address ends the walk at the last trusted hop, since
    /// everything left of it was written by someone untrusted.
    pub fn client(&self, peer: &str, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let mut client = canonical(parse_addr(peer)?);
        if !self.contains(client) {
            return Some(client);
        }
        let Some(chain) = forwarded_for else {
            return Some(client);
        };
        for entry in chain.rsplit(',').take(MAX_FORWARDED_HOPS) {
            let Some(ip) = parse_addr(entry) else {
                break;
            };
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        Some(client)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_groups_by_64_and_ports_do_not_matter() {
        assert_eq!(
            client_key("203.0.113.7:51234").as_deref(),
            Some("ip:203.0.113.7")
        );
        assert_eq!(client_key("203.0.113.7").as_deref(), Some("ip:203.0.113.7"));
        let a = client_key("[2001:db8:1:2:aaaa::1]:443");
        let b = client_key("2001:db8:1:2:ffff:ffff:ffff:ffff");
        assert_eq!(a, b);
        assert_eq!(a.as_deref(), Some("ip6:2001:db8:1:2::/64"));
        assert_ne!(a, client_key("2001:db8:1:3::1"));
        // An IPv4 client seen through a dual-stack socket is the same client.
        assert_eq!(
            client_key("[::ffff:203.0.113.7]:80"),
            client_key("203.0.113.7")
        );
        assert_eq!(client_key("not an address"), None);
        assert_eq!(client_key(""), None);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxy_ranges() {
        let t = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8 2001:db8::/32,\n::1").unwrap();
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("10.255.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(t.contains(ip("::1")));
        assert!(
            t.contains(ip("::ffff:10.1.2.3")),
            "a mapped IPv4 address is IPv4"
        );
        let odd = TrustedProxies::parse("192.168.0.0/23").unwrap();
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.2.0")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }

    #[test]
    fn only_a_trusted_peer_can_name_the_client() {
        let none = TrustedProxies::default();
        let door = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = "10.0.0.5:4000";
        // Untrusted: the header is ignored, whatever it says.
        assert_eq!(
            none.client(peer, Some("198.51.100.7")),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(
            door.client("203.0.113.9:1", Some("198.51.100.7")),
            Some(ip("203.0.113.9"))
        );
        // Trusted: the entry the proxy appended.
        assert_eq!(
            door.client(peer, Some("198.51.100.7")),
            Some(ip("198.51.100.7"))
        );
        // A client's own entries to the left are not believed.
        assert_eq!(
            door.client(peer, Some("1.2.3.4, 198.51.100.7")),
            Some(ip("198.51.100.7"))
        );
        // Trusted hops are skipped; garbage stops the walk at the last one.
        assert_eq!(
            door.client(peer, Some("198.51.100.7 , 10.1.1.1")),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            door.client(peer, Some("1.2.3.4, not-an-ip, 10.1.1.1")),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(door.client(peer, None), Some(ip("10.0.0.5")));
        assert_eq!(door.client(peer, Some("")), Some(ip("10.0.0.5")));
        assert_eq!(
            door.client(peer, Some("[2001:db8::1]:443")),
            Some(ip("2001:db8::1"))
        );
        // Only so many hops: past them, the last trusted one is the client.
        let long = vec!["10.0.0.1"; MAX_FORWARDED_HOPS + 1].join(",");
        let long = format!("198.51.100.7, {long}");
        assert_eq!(door.client(peer, Some(&long)), Some(ip("10.0.0.1")));
        assert_eq!(door.client("nonsense", Some("198.51.100.7")), None);
    }
}
