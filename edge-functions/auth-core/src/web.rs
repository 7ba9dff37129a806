//! The browser session's side of sign-in: the cookies that carry it and
//! the checks a request made with them passes. The storefront's account
//! pages set the cookies; the auth middleware takes the access cookie on
//! page routes `cdn-config/auth.toml` marks `session = "cookie"`.

/// The access token: `Path=/; Secure; HttpOnly; SameSite=Lax`.
pub const ACCESS_COOKIE: &str = "__Host-edgeshop-access";
/// The refresh token: `Path=/account/; Secure; HttpOnly; SameSite=Strict`.
pub const REFRESH_COOKIE: &str = "__Secure-edgeshop-refresh";
/// The browser's CSRF value, repeated by every form.
pub const CSRF_COOKIE: &str = "__Host-edgeshop-csrf";

/// The value of cookie `name` in a `Cookie` field, matched by exact name.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// Whether a request comes from a page of this site: `Sec-Fetch-Site`
/// says so (or the person typed the URL: `none`), or, from a browser
/// that does not send it, `Origin` names this `Host`. A request with
/// neither is not from a browser, which is all cookies guard against.
pub fn same_origin(fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    match (fetch_site, origin) {
        (Some(site), _) => matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
            host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
        }
        (None, None) => true,
    }
}

/// Whether `method` changes something (RFC 9110 section 9.2.1).
pub fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Where a page that needs a session sends a browser without one: the
/// refresh step, which comes back here or goes on to the sign-in form.
pub fn renew_then(path: &str, query: &str) -> String {
    let back = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    format!("/account/refresh?next={next}")
}

/// The credential a request to a cookie page carries: the access cookie
/// as a bearer value (`None` without one). A state change made with the
/// cookie must come from this site's pages and be JSON, which a form on
/// another site cannot send without the browser asking first (CORS), so a
/// forged cross-site request stops here with a 403.
pub fn cookie_credential(
    method: &str,
    cookie_header: Option<&str>,
    fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
    content_type: Option<&str>,
) -> Result<Option<String>, problem::Problem> {
    let Some(token) = cookie_header.and_then(|h| cookie(h, ACCESS_COOKIE)) else {
        return Ok(None);
    };
    if changes_state(method) {
        let json = content_type
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
        if !json || !same_origin(fetch_site, origin, host) {
            return Err(problem::Problem::new(
                403,
                "cross-site",
                "Not from this site",
                "a change made with the browser session must come from the shop's own pages; \
                 reload the page and try again",
            ));
        }
    }
    Ok(Some(format!("Bearer {token}")))
}

/// Whether a browser is asking for a page (so a missing session is a
/// redirect to sign in, not a 401 problem).
pub fn wants_page(method: &str, accept: Option<&str>) -> bool {
    matches!(method, "GET" | "HEAD")
        && accept.is_some_and(|a| {
            a.split(',')
                .any(|r| r.split(';').next().is_some_and(|t| t.trim() == "text/html"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = "x__Host-edgeshop-csrf=no; __Host-edgeshop-csrf=yes;other=1; empty=";
        assert_eq!(cookie(h, CSRF_COOKIE), Some("yes"));
        assert_eq!(cookie(h, ACCESS_COOKIE), None);
        assert_eq!(cookie(h, "empty"), None);
    }

    #[test]
    fn only_this_sites_pages_count_as_same_origin() {
        let host = Some("shop.example");
        assert!(same_origin(Some("same-origin"), None, host));
        assert!(same_origin(Some("none"), None, host));
        for site in ["cross-site", "same-site", ""] {
            assert!(
                !same_origin(Some(site), Some("http://shop.example"), host),
                "{site}"
            );
        }
        assert!(same_origin(None, Some("https://shop.example"), host));
        assert!(!same_origin(None, Some("https://evil.example"), host));
        assert!(!same_origin(None, Some("null"), host));
        assert!(same_origin(None, None, host));
    }

    #[test]
    fn a_change_with_the_cookie_must_be_json_from_this_site() {
        let c = Some("a=1; __Host-edgeshop-access=tok");
        let host = Some("shop.example");
        let json = Some("application/json");
        let ok = cookie_credential("POST", c, Some("same-origin"), None, host, json);
        assert_eq!(ok.unwrap().as_deref(), Some("Bearer tok"));
        assert_eq!(
            cookie_credential("GET", c, Some("cross-site"), None, host, None)
                .unwrap()
                .as_deref(),
            Some("Bearer tok"),
            "a link from elsewhere may read"
        );
        for (site, ctype) in [
            (Some("cross-site"), json),
            (Some("same-site"), json),
            (
                Some("same-origin"),
                Some("application/x-www-form-urlencoded"),
            ),
            (Some("same-origin"), Some("text/plain")),
        ] {
            let r = cookie_credential("POST", c, site, None, host, ctype);
            assert_eq!(r.unwrap_err().status, 403, "{site:?} {ctype:?}");
        }
        assert_eq!(
            cookie_credential(
                "POST",
                Some("other=1"),
                Some("cross-site"),
                None,
                host,
                None
            ),
            Ok(None),
            "no cookie, nothing to guard"
        );
        assert!(wants_page(
            "GET",
            Some("text/html,application/xhtml+xml,*/*;q=0.8")
        ));
        assert!(
            !wants_page("GET", Some("application/json")) && !wants_page("POST", Some("text/html"))
        );
    }

    #[test]
    fn a_page_without_a_session_renews_it_and_comes_back() {
        assert_eq!(renew_then("/orders", ""), "/account/refresh?next=%2Forders");
        assert_eq!(
            renew_then("/orders", "page=2"),
            "/account/refresh?next=%2Forders%3Fpage%3D2"
        );
        assert!(changes_state("POST") && !changes_state("GET") && !changes_state("HEAD"));
    }
}
