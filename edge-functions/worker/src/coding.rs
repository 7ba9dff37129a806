//! The content coding a client gets from a Worker.
//!
//! A Worker never sees the client's `Accept-Encoding`: the runtime shows
//! it `br, gzip`, keeps the client's in `request.cf.clientAcceptEncoding`,
//! and compresses what the Worker marks with `Content-Encoding` as the
//! answer leaves, re-encoding it when the client prefers the other of
//! gzip and br. So the Worker marks the coding the runtime will send
//! anyway, and its entity tag can name that coding as the PoP's does.
//! The runtime's choice (as workerd's local front line makes it): among
//! the client's codings by weight, ties in the client's order, the first
//! that is gzip or br, unless identity comes first.

use cache_core::encoding::Coding;

/// The coding the runtime sends a client whose `Accept-Encoding` is
/// `field` (`None`: it sent none, and gets identity, as from a PoP).
pub fn front_line(field: Option<&str>) -> Coding {
    let Some(field) = field else {
        return Coding::Identity;
    };
    let mut codings: Vec<(String, u16)> = field
        .split(',')
        .filter_map(|element| {
            let mut parts = element.split(';');
            let token = parts.next()?.trim().to_ascii_lowercase();
            if token.is_empty() {
                return None;
            }
            let weight = parts
                .filter_map(|p| p.split_once('='))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("q"))
                .map_or(1000, |(_, v)| {
                    v.trim()
                        .parse::<f32>()
                        .map_or(0, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                });
            Some((token, weight))
        })
        .collect();
    // Stable: equal weights keep the client's order.
    codings.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (token, weight) in codings {
        if weight == 0 {
            continue;
        }
        match token.as_str() {
            "br" => return Coding::Br,
            "gzip" => return Coding::Gzip,
            "identity" => return Coding::Identity,
            _ => {}
        }
    }
    Coding::Identity
}

#[cfg(test)]
mod tests {
    use super::front_line;
    use cache_core::encoding::Coding;

    #[test]
    fn the_first_of_gzip_and_br_by_weight_then_order() {
        assert_eq!(front_line(Some("gzip, deflate, br, zstd")), Coding::Gzip);
        assert_eq!(front_line(Some("br, gzip")), Coding::Br);
        assert_eq!(front_line(Some("gzip;q=0.5, br")), Coding::Br);
        assert_eq!(front_line(Some("deflate, zstd, br;q=0.1")), Coding::Br);
        assert_eq!(front_line(Some("BR")), Coding::Br);
    }

    #[test]
    fn identity_when_asked_first_refused_codings_or_no_field() {
        assert_eq!(front_line(None), Coding::Identity);
        assert_eq!(front_line(Some("")), Coding::Identity);
        assert_eq!(front_line(Some("identity")), Coding::Identity);
        assert_eq!(front_line(Some("identity, gzip")), Coding::Identity);
        assert_eq!(front_line(Some("gzip;q=0, br;q=0")), Coding::Identity);
        assert_eq!(front_line(Some("deflate, *")), Coding::Identity);
        assert_eq!(front_line(Some("gzip;q=nonsense")), Coding::Identity);
    }
}
