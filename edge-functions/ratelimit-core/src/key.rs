//! Whose budget a request spends.
//!
//! The client address is the one the host saw (`spin-client-addr`), never
//! a header the client wrote. IPv6 clients are grouped by their /64: one
//! subscriber usually holds a whole /64, and keying single addresses would
//! give each of them 2^64 budgets.

use std::net::IpAddr;

/// The budget key for a client address such as `203.0.113.7:51234` or
/// `[2001:db8::1]:443` (the port, if any, is dropped). `None` if it is not
/// an address.
pub fn client_key(addr: &str) -> Option<String> {
    let ip: IpAddr = match addr.parse::<std::net::SocketAddr>() {
        Ok(sock) => sock.ip(),
        Err(_) => addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    Some(match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    })
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
}
