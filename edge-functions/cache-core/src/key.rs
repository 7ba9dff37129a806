//! Cache keys: the method and normalised URL (the primary key), and the
//! values of the request headers a response's `Vary` names (the secondary
//! key, RFC 9111 §4.1).
//!
//! Store keys are digests, so any URL fits a store's key limit; the entry
//! keeps the full key it was stored under and a lookup compares it, so two
//! URLs can never share an entry.

use sha2::{Digest, Sha256};

/// The primary key of a request: HEAD shares GET's entries (a cache
/// answers HEAD from a stored GET), and the URL is normalised so that
/// spellings of the same resource share one entry.
pub fn primary(method: &str, path_and_query: &str) -> String {
    let method = if method == "HEAD" { "GET" } else { method };
    format!("{method} {}", normalise(path_and_query))
}

/// Percent-escapes with upper-case hex, unreserved characters decoded
/// (RFC 3986 §6.2.2), the fragment dropped, and query parameters sorted by
/// name (stable, so repeated names keep their order). An empty query is
/// no query.
pub fn normalise(path_and_query: &str) -> String {
    let without_fragment = path_and_query.split('#').next().unwrap_or("");
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    };
    let mut out = escapes(path);
    if let Some(q) = query {
        let mut params: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(escapes)
            .collect();
        params.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        if !params.is_empty() {
            out.push('?');
            out.push_str(&params.join("&"));
        }
    }
    out
}

fn name_of(param: &str) -> &str {
    param.split('=').next().unwrap_or(param)
}

fn escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let v = hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]);
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v);
            } else {
                out.extend([
                    b'%',
                    bytes[i + 1].to_ascii_uppercase(),
                    bytes[i + 2].to_ascii_uppercase(),
                ]);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII was replaced, by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The secondary key: each header `vary` names (lower-cased, sorted,
/// once) with its field lines as the request sent them, joined and
/// trimmed. A header the request lacks keys as absent, not as empty.
pub fn secondary<'a>(vary: &[String], mut field_lines: impl FnMut(&str) -> Vec<&'a str>) -> String {
    let mut out = String::new();
    for name in vary {
        let lines = field_lines(name);
        out.push_str(name);
        if lines.is_empty() {
            out.push_str("\u{0}absent");
        } else {
            let joined: Vec<&str> = lines
                .iter()
                .flat_map(|l| l.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            out.push('=');
            out.push_str(&joined.join(","));
        }
        out.push('\n');
    }
    out
}

/// The header names of `Vary` field lines: lower-cased, sorted, each once.
/// `None` for `Vary: *` (no request matches it).
pub fn vary_names<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in lines {
        for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// The store key of the variant list for a primary key.
pub fn variants_key(primary: &str) -> String {
    format!("cv:{}", digest(&[primary]))
}

/// The store key of one stored response.
pub fn entry_key(primary: &str, secondary: &str) -> String {
    format!("ce:{}", digest(&[primary, secondary]))
}

/// The store key of the fill lock for a primary key: the one request
/// fetching it while others wait (request coalescing).
pub fn lock_key(primary: &str) -> String {
    format!("cl:{}", digest(&[primary]))
}

/// The store key of the mark that a primary key's last fetch was not
/// storable: requests for it go forward at once instead of queueing
/// behind each other's fetches.
pub fn pass_key(primary: &str) -> String {
    format!("cp:{}", digest(&[primary]))
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    // A `format!` per byte was a percent of a cache hit (three keys each).
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_resource_share_a_key() {
        assert_eq!(primary("HEAD", "/p/1"), primary("GET", "/p/1"));
        assert_ne!(primary("GET", "/p/1"), primary("GET", "/p/2"));
        assert_eq!(normalise("/p/%7e%41?b=2&a=1#frag"), "/p/~A?a=1&b=2");
        assert_eq!(
            normalise("/p/%2f"),
            "/p/%2F",
            "a reserved escape stays escaped"
        );
        assert_eq!(normalise("/p?"), "/p");
        assert_eq!(normalise("/p?&&"), "/p");
        assert_eq!(normalise("/p?tag=b&x=1&tag=a"), "/p?tag=b&tag=a&x=1");
        assert_ne!(normalise("/p?tag=a&tag=b"), normalise("/p?tag=b&tag=a"));
        // Broken escapes are kept as they are, never panic.
        assert_eq!(normalise("/p/%zz%4"), "/p/%zz%4");
        assert_eq!(normalise("/p/%"), "/p/%");
        assert_eq!(normalise("/é"), "/é");
    }

    #[test]
    fn secondary_keys_distinguish_what_vary_names() {
        let vary = vary_names(["Accept-Language, accept", "ACCEPT"]).unwrap();
        assert_eq!(vary, ["accept", "accept-language"]);
        let key = |accept: Vec<&'static str>, lang: Vec<&'static str>| {
            secondary(&vary, |name| match name {
                "accept" => accept.clone(),
                "accept-language" => lang.clone(),
                _ => vec![],
            })
        };
        let a = key(vec!["application/json"], vec!["en"]);
        assert_eq!(a, key(vec![" application/json "], vec!["en"]));
        assert_ne!(a, key(vec!["text/html"], vec!["en"]));
        assert_ne!(key(vec![], vec!["en"]), key(vec![""], vec!["en"]));
        assert_eq!(key(vec!["a", "b"], vec![]), key(vec!["a, b"], vec![]));
        assert_eq!(vary_names(["accept, *"]), None);
        assert_eq!(vary_names([]), Some(vec![]));
        assert_eq!(secondary(&[], |_| vec!["x"]), "");
    }

    #[test]
    fn store_keys_are_short_and_distinct() {
        let long = format!("/p?q={}", "x".repeat(10_000));
        let k = entry_key(&primary("GET", &long), "");
        assert!(k.len() < 80, "{}", k.len());
        // Length-prefixed parts: moving a boundary changes the digest.
        assert_ne!(entry_key("ab", "c"), entry_key("a", "bc"));
        assert_ne!(variants_key("GET /a"), entry_key("GET /a", ""));
        let all = [
            variants_key("GET /a"),
            lock_key("GET /a"),
            pass_key("GET /a"),
        ];
        assert!(all.iter().all(|k| k.len() < 80));
        assert!(all[0] != all[1] && all[1] != all[2] && all[0] != all[2]);
    }

    #[test]
    fn normalising_is_idempotent_and_total() {
        // A fixed xorshift sequence over the characters that matter.
        let alphabet: Vec<char> = "%%%aF09zZ~-./?&=#éx".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut url = String::from("/");
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                url.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let once = normalise(&url);
            assert_eq!(normalise(&once), once, "{url:?}");
        }
    }
}
