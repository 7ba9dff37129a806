//! `Cache-Control` (RFC 9111 §5.2), request and response directives.
//!
//! Parsing is lenient about spelling (names are case-insensitive, values
//! may be quoted) and strict about meaning: whenever a directive could be
//! read two ways, it is read the way that caches less.

/// Largest delta-seconds kept (RFC 9111 §1.2.2: 2^31 when larger).
pub const MAX_DELTA_SECS: u64 = 1 << 31;

/// The directives a shared cache acts on. Unknown ones are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// Also set by `no-cache="field"`: stored, but never used unvalidated.
    pub no_cache: bool,
    /// Also set by `private="field"`: a shared cache does not store it.
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Request only: answer from cache or not at all.
    pub only_if_cached: bool,
    /// The content must reach the client as the server sent it: no
    /// content coding added (RFC 9111 §5.2.2.6).
    pub no_transform: bool,
}

impl CacheControl {
    /// Reads every `Cache-Control` field line of a message.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for line in lines {
            for (name, value) in directives(line) {
                cc.apply(&name, value.as_deref());
            }
        }
        cc
    }

    fn apply(&mut self, name: &str, value: Option<&str>) {
        match name {
            // A duplicate or unreadable lifetime counts as the shortest:
            // RFC 9111 §4.2.1 allows treating such a response as stale.
            "max-age" => self.max_age = Some(min_delta(self.max_age, value)),
            "s-maxage" => self.s_maxage = Some(min_delta(self.s_maxage, value)),
            // Unreadable stale allowances allow nothing.
            "stale-while-revalidate" => {
                self.stale_while_revalidate =
                    delta(value).map(|d| self.stale_while_revalidate.map_or(d, |prev| prev.min(d)))
            }
            "stale-if-error" => {
                self.stale_if_error =
                    delta(value).map(|d| self.stale_if_error.map_or(d, |prev| prev.min(d)))
            }
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "only-if-cached" => self.only_if_cached = true,
            "no-transform" => self.no_transform = true,
            _ => {}
        }
    }

    /// Whether a stale copy may never be used without revalidation
    /// (`must-revalidate`, `proxy-revalidate`, or `s-maxage`, which implies
    /// `proxy-revalidate` for shared caches, §5.2.2.10).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

/// A delta-seconds value: digits only; too large means [`MAX_DELTA_SECS`].
fn delta(value: Option<&str>) -> Option<u64> {
    let v = value?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(MAX_DELTA_SECS, |d| d.min(MAX_DELTA_SECS)),
    )
}

fn min_delta(previous: Option<u64>, value: Option<&str>) -> u64 {
    let d = delta(value).unwrap_or(0);
    previous.map_or(d, |p| p.min(d))
}

/// The directives of one field line: lower-cased names, unquoted values.
fn directives(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return out;
        }
        let end = rest.find([',', '=']).unwrap_or(rest.len());
        let name = rest[..end].trim().to_ascii_lowercase();
        rest = &rest[end..];
        let mut value = None;
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if let Some(quoted) = after.strip_prefix('"') {
                let (text, remaining) = unquote(quoted);
                value = Some(text);
                rest = remaining;
            } else {
                let end = after.find(',').unwrap_or(after.len());
                value = Some(after[..end].trim().to_string());
                rest = &after[end..];
            }
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
}

/// The text of a quoted string whose opening quote is already consumed,
/// and what follows its closing quote.
fn unquote(s: &str) -> (String, &str) {
    let mut text = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (text, &s[i + 1..]),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    text.push(escaped);
                }
            }
            c => text.push(c),
        }
    }
    (text, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> CacheControl {
        CacheControl::parse([s])
    }

    #[test]
    fn reads_the_directives_a_shared_cache_needs() {
        let c =
            cc("public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400");
        assert_eq!(c.max_age, Some(60));
        assert_eq!(c.s_maxage, Some(300));
        assert!(c.public && !c.private && !c.no_store);
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert_eq!(c.stale_if_error, Some(86400));
        assert!(c.forbids_stale(), "s-maxage implies proxy-revalidate");
        let c = cc("No-Store, PRIVATE, must-revalidate, no-cache, only-if-cached");
        assert!(c.no_store && c.private && c.must_revalidate && c.no_cache && c.only_if_cached);
        assert_eq!(cc(""), CacheControl::default());
        assert_eq!(cc("x-custom=\"a, b\", max-age=5").max_age, Some(5));
    }

    #[test]
    fn field_lines_combine_and_quoted_values_are_read() {
        let c = CacheControl::parse(["max-age=10", "private=\"set-cookie, x-a\""]);
        assert_eq!(c.max_age, Some(10));
        assert!(c.private, "a qualified private is treated as private");
        assert_eq!(cc("max-age=\"30\"").max_age, Some(30));
        assert!(cc("no-cache=\"set-cookie\"").no_cache);
        assert_eq!(cc("max-age = 7 , public").max_age, Some(7));
    }

    #[test]
    fn doubtful_values_cache_less() {
        assert_eq!(cc("max-age=60, max-age=5").max_age, Some(5));
        assert_eq!(cc("max-age=5, max-age=60").max_age, Some(5));
        assert_eq!(cc("max-age=abc").max_age, Some(0));
        assert_eq!(cc("max-age=-1").max_age, Some(0));
        assert_eq!(cc("max-age").max_age, Some(0));
        assert_eq!(cc("max-age=1.5").max_age, Some(0));
        assert_eq!(cc("stale-if-error=soon").stale_if_error, None);
        assert_eq!(
            cc("max-age=99999999999999999999999").max_age,
            Some(MAX_DELTA_SECS)
        );
        // An unterminated quote ends the line; nothing panics.
        assert_eq!(cc("max-age=\"12").max_age, Some(12));
        assert_eq!(cc("=,=,,\"").max_age, None);
    }
}
