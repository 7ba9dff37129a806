//! Conditional requests answered from a stored response (RFC 9110 §13):
//! `If-None-Match` against the stored `ETag`, with the weak comparison
//! GET and HEAD use.

/// Whether a request carrying `if_none_match` (every field line) should
/// get 304 Not Modified for a stored response whose `ETag` is `etag`.
pub fn not_modified<'a>(
    if_none_match: impl IntoIterator<Item = &'a str>,
    etag: Option<&str>,
) -> bool {
    let Some(etag) = etag.and_then(opaque) else {
        return false;
    };
    if_none_match
        .into_iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || opaque(candidate) == Some(etag))
}

/// The opaque part of an entity tag, `W/` dropped (weak comparison);
/// `None` if it is not a quoted tag.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_comparison_lists_and_wildcards() {
        let etag = Some("\"v7\"");
        assert!(not_modified(["\"v7\""], etag));
        assert!(not_modified(["W/\"v7\""], etag));
        assert!(not_modified(["\"v1\", \"v7\""], etag));
        assert!(not_modified(["\"v1\"", "W/\"v7\""], etag));
        assert!(not_modified(["*"], etag));
        assert!(!not_modified(["\"v8\""], etag));
        assert!(
            !not_modified(["v7"], etag),
            "an unquoted tag matches nothing"
        );
        assert!(!not_modified([], etag));
        assert!(not_modified(["\"v7\""], Some("W/\"v7\"")));
        assert!(!not_modified(["*"], None), "nothing stored to match");
        assert!(!not_modified(["\"\""], Some("garbage")));
    }
}
