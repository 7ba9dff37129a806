//! Whether a shared cache may look up, store and reuse a response
//! (RFC 9111 §3, §3.5, §4). The reasons double as `Cache-Status` details.

use crate::directives::CacheControl;

/// Statuses this cache stores (with explicit freshness): those RFC 9110
/// §15.1 calls heuristically cacheable, plus 203. Partial content is never
/// stored (no range support); 304 updates a stored response, it is not one.
pub const STORABLE_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Why a request goes past the cache without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Not GET or HEAD.
    Method,
    /// The request said `no-store`.
    NoStore,
}

impl Bypass {
    pub fn detail(self) -> &'static str {
        match self {
            Bypass::Method => "method",
            Bypass::NoStore => "request-no-store",
        }
    }
}

/// Whether `method` with request directives `cc` may be answered from or
/// stored in the cache at all. Unsafe methods also invalidate (the
/// caller's job once the next layer succeeded).
pub fn lookup(method: &str, cc: &CacheControl) -> Result<(), Bypass> {
    if method != "GET" && method != "HEAD" {
        return Err(Bypass::Method);
    }
    if cc.no_store {
        return Err(Bypass::NoStore);
    }
    Ok(())
}

/// Whether `method` changes the target resource, so a success must drop
/// what is stored for its URI (§4.4).
pub fn invalidates(method: &str, status: u16) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") && (200..400).contains(&status)
}

/// What the cache needs to know about a response to decide on storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: u16,
    pub cc: CacheControl,
    /// Freshness lifetime, if the response gave one (see
    /// [`crate::freshness::lifetime`]).
    pub lifetime: Option<u64>,
    pub set_cookie: bool,
    /// `Vary: *`.
    pub vary_any: bool,
    /// The body's size when known.
    pub content_length: Option<u64>,
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Status,
    NoStore,
    Private,
    /// The request had credentials and the response did not allow a
    /// shared cache to reuse it (`public`, `s-maxage`, `must-revalidate`).
    Authorization,
    SetCookie,
    VaryAny,
    /// No explicit freshness; this cache uses no heuristics.
    NoLifetime,
    TooLarge,
}

impl NotStored {
    pub fn detail(self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryAny => "vary-any",
            NotStored::NoLifetime => "no-lifetime",
            NotStored::TooLarge => "too-large",
        }
    }
}

/// Whether a shared cache may store `resp`, given to a request that had
/// `authorization` (credentials of any kind, including our identity).
pub fn storable(
    resp: &ResponseFacts,
    authorization: bool,
    max_entry_bytes: u64,
) -> Result<(), NotStored> {
    if !STORABLE_STATUSES.contains(&resp.status) {
        return Err(NotStored::Status);
    }
    if resp.cc.no_store {
        return Err(NotStored::NoStore);
    }
    if resp.cc.private {
        return Err(NotStored::Private);
    }
    if authorization && !reusable_with_credentials(&resp.cc) {
        return Err(NotStored::Authorization);
    }
    // A cookie is one client's; storing it would hand it to the next.
    if resp.set_cookie {
        return Err(NotStored::SetCookie);
    }
    if resp.vary_any {
        return Err(NotStored::VaryAny);
    }
    if resp.lifetime.is_none() && !resp.cc.no_cache {
        return Err(NotStored::NoLifetime);
    }
    if resp.content_length.is_some_and(|n| n > max_entry_bytes) {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// Whether a stored response may answer a request with credentials
/// (§3.5). The same test decides storing and reusing, so an entry stored
/// for an anonymous request is never handed to a signed-in one unless the
/// response said it may be.
pub fn reusable_with_credentials(cc: &CacheControl) -> bool {
    cc.public || cc.s_maxage.is_some() || cc.must_revalidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, cc: &str) -> ResponseFacts {
        let cc = CacheControl::parse([cc]);
        ResponseFacts {
            status,
            lifetime: crate::freshness::lifetime(&cc, None, None),
            cc,
            set_cookie: false,
            vary_any: false,
            content_length: Some(100),
        }
    }

    #[test]
    fn lookups_are_for_get_and_head() {
        let none = CacheControl::default();
        assert_eq!(lookup("GET", &none), Ok(()));
        assert_eq!(lookup("HEAD", &none), Ok(()));
        for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"] {
            assert_eq!(lookup(m, &none), Err(Bypass::Method), "{m}");
        }
        let no_store = CacheControl::parse(["no-store"]);
        assert_eq!(lookup("GET", &no_store), Err(Bypass::NoStore));
        assert!(invalidates("POST", 201));
        assert!(invalidates("DELETE", 204));
        assert!(invalidates("PATCH", 303));
        assert!(!invalidates("POST", 400), "a failed write changed nothing");
        assert!(!invalidates("POST", 500));
        assert!(!invalidates("GET", 200));
    }

    #[test]
    fn what_is_stored() {
        let max = 1 << 20;
        assert_eq!(storable(&facts(200, "max-age=60"), false, max), Ok(()));
        assert_eq!(storable(&facts(404, "max-age=5"), false, max), Ok(()));
        assert_eq!(
            storable(&facts(200, "no-cache"), false, max),
            Ok(()),
            "stored, always validated"
        );
        for (f, why) in [
            (facts(206, "max-age=60"), NotStored::Status),
            (facts(500, "max-age=60"), NotStored::Status),
            (facts(302, "max-age=60"), NotStored::Status),
            (facts(200, "max-age=60, no-store"), NotStored::NoStore),
            (facts(200, "max-age=60, private"), NotStored::Private),
            (facts(200, "public"), NotStored::NoLifetime),
            (
                ResponseFacts {
                    set_cookie: true,
                    ..facts(200, "public, max-age=60")
                },
                NotStored::SetCookie,
            ),
            (
                ResponseFacts {
                    vary_any: true,
                    ..facts(200, "max-age=60")
                },
                NotStored::VaryAny,
            ),
            (
                ResponseFacts {
                    content_length: Some(max + 1),
                    ..facts(200, "max-age=60")
                },
                NotStored::TooLarge,
            ),
        ] {
            assert_eq!(storable(&f, false, max), Err(why), "{f:?}");
        }
    }

    #[test]
    fn credentials_need_the_responses_permission() {
        let max = 1 << 20;
        assert_eq!(
            storable(&facts(200, "max-age=60"), true, max),
            Err(NotStored::Authorization)
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            assert_eq!(storable(&facts(200, cc), true, max), Ok(()), "{cc}");
        }
        assert!(!reusable_with_credentials(&CacheControl::parse([
            "max-age=60"
        ])));
        assert!(reusable_with_credentials(&CacheControl::parse(["public"])));
    }
}
