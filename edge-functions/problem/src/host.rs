//! The `Host` field a server accepts: an RFC 3986 authority without
//! userinfo (`host[:port]`), short enough for a DNS name. Anything else
//! could rewrite the path a component sees when it rebuilds the URL from
//! the authority, or add a cache key per invented spelling.

use crate::Problem;

/// Longest `Host` value accepted: a 253-byte DNS name and a port.
pub const MAX_HOST_BYTES: usize = 253 + 6;

/// `Ok` when `value` is a `Host` field worth serving.
pub fn check_host(value: &[u8]) -> Result<(), Problem> {
    if valid(value) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "the Host header must be a host name or address with an optional port, such as \
             `shop.example.com` or `127.0.0.1:8080`",
        ))
    }
}

fn valid(value: &[u8]) -> bool {
    if value.is_empty() || value.len() > MAX_HOST_BYTES {
        return false;
    }
    let (host, port) = if value[0] == b'[' {
        // An IP literal: `[v6]` or `[v6]:port`.
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &value[1..end];
        let literal = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        match &value[end + 1..] {
            [] => return literal,
            [b':', port @ ..] => (literal, port),
            _ => return false,
        }
    } else {
        let (host, port) = match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &b""[..]),
        };
        // A registered name or IPv4 address: letters, digits, `-`, `.`
        // (the DNS subset of RFC 3986's reg-name; `_` for service names).
        let name = !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if value.contains(&b':') {
            (name, port)
        } else {
            return name;
        }
    };
    host && !port.is_empty()
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(port)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ports_pass() {
        for ok in [
            "localhost",
            "shop.example.com",
            "127.0.0.1:8080",
            "[::1]",
            "[2001:db8::1]:443",
            "spin-miss-7.bench.invalid",
            "xn--bcher-kva.example",
        ] {
            assert!(check_host(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn anything_that_could_rewrite_a_url_is_refused() {
        let long = "a".repeat(MAX_HOST_BYTES + 1);
        for bad in [
            "",
            "evil.example/admin?x=",
            "user@shop.example.com",
            "shop.example.com#frag",
            "shop.example.com:",
            "shop.example.com:99999",
            "shop.example.com:80:80",
            "[::1",
            "[::1]x",
            "[]",
            "a b",
            "shop%2fexample",
            long.as_str(),
        ] {
            let p = check_host(bad.as_bytes()).unwrap_err();
            assert_eq!(p.status, 400, "{bad}");
        }
    }
}
