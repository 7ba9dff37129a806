//! The storefront as pure logic: which page a URL names, which catalog
//! reads it needs, and the HTML made from their answers.
//!
//! ```text
//! URL --route()--> Page --catalog_reads()--> API requests --(adapter runs
//!   them through catalog-core, on the local replica)--> answers --render()--> HTML
//! ```
//!
//! Pages are made from the catalog API's own answers, so every rule of the
//! API (filters, keyset cursors, what is published) holds for pages too,
//! and a page carries the union of its answers' cache tags: the cache in
//! front purges a page when any product on it changes. Pages are the same
//! for every visitor (no account state in the HTML), so a PoP caches them
//! like the API. No I/O here; the component adapts it to Spin.

pub mod account;
mod filters;
mod html;
mod money;
pub mod orders;
mod page;
pub mod sell;
#[cfg(test)]
mod tests;

pub use catalog_core::Response;
pub use filters::{Filters, PAGE_SIZE};
pub use orders::{ORDERS_PER_PAGE, OrderPage, OrderRoute, PLACE_ORDER};
pub use page::{Page, route};
pub use sell::{PRODUCTS_PER_PAGE, SellPage, SellRoute, api_target, content_security_policy};

use problem::Problem;

/// What the adapter tells us about the request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub if_none_match: Option<&'a str>,
    pub accept: Option<&'a str>,
}

/// One read from the catalog API, by path and query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRead {
    pub path: String,
    pub query: String,
}

/// The policy every page is sent with: scripts and styles only from this
/// origin's `/assets/`, no inline script, never framed (clickjacking), and
/// forms post only back here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Headers every HTML answer carries, errors included.
pub fn security_headers() -> [(String, String); 3] {
    [
        (
            "content-security-policy".into(),
            CONTENT_SECURITY_POLICY.into(),
        ),
        ("x-content-type-options".into(), "nosniff".into()),
        (
            "referrer-policy".into(),
            "strict-origin-when-cross-origin".into(),
        ),
    ]
}

/// The catalog reads a page is made from, in the order `render` expects
/// their answers.
pub fn catalog_reads(page: &Page) -> Vec<CatalogRead> {
    page.catalog_reads()
}

/// Renders a page from the answers to its `catalog_reads`. An answer that is
/// not a 200 becomes the page's error, shown as a page to a browser.
pub fn render(page: &Page, answers: &[Response], req: &Request<'_>) -> Response {
    match page.render(answers) {
        Ok(rendered) => rendered.into_response(req),
        Err(problem) => error(problem, req),
    }
}

/// An error, as a page for browsers (`Accept: text/html`) and as
/// `application/problem+json` for everything else.
pub fn error(problem: Problem, req: &Request<'_>) -> Response {
    if !wants_html(req.accept) {
        return Response::problem(problem);
    }
    let body = html::problem_page(&problem).into_string().into_bytes();
    let mut headers: Vec<(String, String)> = problem
        .header_fields()
        .into_iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("cache-control")
        })
        .collect();
    headers.push(("content-type".into(), html::CONTENT_TYPE.into()));
    headers.push(("cache-control".into(), "no-store".into()));
    headers.push(("vary".into(), "accept".into()));
    headers.extend(security_headers());
    headers.push(("content-length".into(), body.len().to_string()));
    Response {
        status: problem.status,
        headers,
        body: if req.method == "HEAD" {
            Vec::new()
        } else {
            body
        },
    }
}

/// Whether the client asked for HTML (a browser navigating).
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
        })
    })
}

/// A finished page before conditional-request handling.
pub(crate) struct Rendered {
    pub body: String,
    pub cache_control: &'static str,
    pub tags: Vec<String>,
}

impl Rendered {
    fn into_response(self, req: &Request<'_>) -> Response {
        let body = self.body.into_bytes();
        let etag = catalog_core::etag_for(&body);
        let mut headers = vec![
            ("etag".to_string(), etag.clone()),
            ("cache-control".to_string(), self.cache_control.to_string()),
        ];
        if !self.tags.is_empty() {
            headers.push(("cache-tag".to_string(), self.tags.join(",")));
        }
        headers.extend(security_headers());
        if req
            .if_none_match
            .is_some_and(|inm| cache_core::conditional::not_modified([inm], Some(&etag)))
        {
            return Response {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
        headers.push(("content-type".into(), html::CONTENT_TYPE.into()));
        headers.push(("content-length".into(), body.len().to_string()));
        Response {
            status: 200,
            headers,
            body: if req.method == "HEAD" {
                Vec::new()
            } else {
                body
            },
        }
    }
}
