//! The vendor dashboard: `/sell` (the vendor's products, drafts included),
//! `/sell/products/new` and `/sell/products/{id}` (the product form, its
//! photos and the upload), served by the vendor component, the one
//! component that reaches the origin's vendor API.
//!
//! Pages are for a browser's `GET` (`Accept: text/html`). Everything else
//! under `/sell/` is the vendor API itself for the page's script, with the
//! browser session as the credential: `/sell/{rest}` is
//! `/api/v1/vendor/{rest}`, the same checks and answers (see
//! [`api_target`]). The auth middleware takes the session cookie here
//! (`cdn-config/auth.toml` marks `/sell/...` `session = "cookie"`) and a
//! change made with it must be JSON from the shop's own pages.
//!
//! Photos go from the browser straight to object storage through the URL
//! the origin signs, so these pages' policy lets scripts connect there too
//! (`upload_origin`), and nowhere else.

use crate::{Request, html};
use catalog_core::Response;
use problem::Problem;
use serde_json::Value;

/// Products on one page of `/sell`.
pub const PRODUCTS_PER_PAGE: u32 = 50;

/// A dashboard page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SellPage {
    /// `/sell`, optionally only `status` (`draft`, `published`), after an id.
    Products {
        status: Option<String>,
        after: Option<i64>,
    },
    /// `/sell/products/new`.
    New,
    /// `/sell/products/{id}`.
    Edit(i64),
}

/// The vendor API path (with query) that `/sell{rest}?{query}` stands
/// for, when `path` is under `/sell/`.
pub fn api_target(path: &str, query: &str) -> Option<String> {
    let rest = path.strip_prefix("/sell")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Some(format!("/api/v1/vendor{rest}{q}"))
}

/// What a request under `/sell` is.
#[derive(Debug, Clone, PartialEq)]
pub enum SellRoute {
    /// A page, for a browser.
    Page(SellPage),
    /// A method a page-only path does not take (405).
    Refused(Problem),
    /// The vendor API, for the page's script: the origin path and query.
    Api(String),
}

/// What `method path?query` asks for, or `None` outside `/sell`.
/// `/sell` and `/sell/products/new` are pages only; `/sell/products/{id}`
/// is the page for a browser's `GET` (`Accept: text/html`) and the
/// vendor API's product otherwise.
pub fn dispatch(method: &str, path: &str, query: &str, accept: Option<&str>) -> Option<SellRoute> {
    let api = api_target(path, query)?;
    let read = matches!(method, "GET" | "HEAD");
    Some(match SellPage::route(path, query) {
        Some(page) if page.only_a_page() && !read => {
            SellRoute::Refused(Problem::method_not_allowed(method, &["GET", "HEAD"]))
        }
        Some(page) if read && (page.only_a_page() || crate::wants_html(accept)) => {
            SellRoute::Page(page)
        }
        _ => SellRoute::Api(api),
    })
}

impl SellPage {
    /// The page a browser's `GET` of `path` asks for, if it is one.
    pub fn route(path: &str, query: &str) -> Option<SellPage> {
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.into_owned())
        };
        match path.trim_end_matches('/') {
            "/sell" => Some(SellPage::Products {
                status: param("status").filter(|s| s == "draft" || s == "published"),
                after: param("after").and_then(|a| a.parse().ok()),
            }),
            "/sell/products/new" => Some(SellPage::New),
            other => {
                let id = other.strip_prefix("/sell/products/")?;
                id.parse().ok().filter(|&n: &i64| n > 0).map(SellPage::Edit)
            }
        }
    }

    /// Whether the path is a page and nothing else (`/sell/products/{id}`
    /// is also the vendor API's product, for the script).
    pub fn only_a_page(&self) -> bool {
        !matches!(self, SellPage::Edit(_))
    }

    /// The vendor API read (path and query) the page is made from.
    pub fn origin_read(&self) -> Option<String> {
        match self {
            SellPage::Products { status, after } => {
                let mut q = format!("/api/v1/vendor/products?limit={PRODUCTS_PER_PAGE}");
                if let Some(s) = status {
                    q.push_str(&format!("&status={s}"));
                }
                if let Some(a) = after {
                    q.push_str(&format!("&after={a}"));
                }
                Some(q)
            }
            SellPage::New => None,
            SellPage::Edit(id) => Some(format!("/api/v1/vendor/products/{id}")),
        }
    }

    /// The page from the answer to `origin_read`; `upload_origin` is where
    /// the browser sends photos (scheme, host and port).
    pub fn render(
        &self,
        answer: Option<&Response>,
        req: &Request<'_>,
        upload_origin: Option<&str>,
    ) -> Response {
        let read = match answer {
            Some(a) if a.status != 200 => return crate::error(crate::orders::problem_of(a), req),
            Some(a) => match serde_json::from_slice::<Value>(&a.body) {
                Ok(v) => Some((v, a)),
                Err(_) => return crate::error(crate::orders::unreadable(), req),
            },
            None => None,
        };
        let body = match (self, &read) {
            (SellPage::Products { status, .. }, Some((v, _))) => {
                let next = v["next"]
                    .as_str()
                    .and_then(|n| n.split("after=").nth(1))
                    .map(|a| a.split('&').next().unwrap_or(a))
                    .and_then(|a| a.parse::<i64>().ok())
                    .map(|a| match status {
                        Some(s) => format!("/sell?status={s}&after={a}"),
                        None => format!("/sell?after={a}"),
                    });
                html::sell_products(v, status.as_deref(), next.as_deref())
            }
            (SellPage::Edit(_), Some((v, a))) => {
                let etag = a
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
                    .map(|(_, v)| v.as_str());
                html::sell_product(Some(v), etag)
            }
            (SellPage::New, _) => html::sell_product(None, None),
            _ => return crate::error(Problem::internal("no answer from the origin"), req),
        };
        let mut resp = crate::orders::page(body, req);
        let policy = content_security_policy(upload_origin);
        for (k, v) in &mut resp.headers {
            if k == "content-security-policy" {
                v.clone_from(&policy);
            }
        }
        resp
    }
}

/// The storefront's policy, with `connect-src` also naming where photos
/// are uploaded. A value that is not a plain origin is left out.
pub fn content_security_policy(upload_origin: Option<&str>) -> String {
    let origin = upload_origin
        .map(|o| o.trim_end_matches('/'))
        .filter(|o| is_plain_origin(o));
    match origin {
        Some(o) => crate::CONTENT_SECURITY_POLICY
            .replace("connect-src 'self'", &format!("connect-src 'self' {o}")),
        None => crate::CONTENT_SECURITY_POLICY.to_string(),
    }
}

/// `http(s)://host[:port]` and nothing else (no path, no spaces or `;`
/// that would change the policy).
fn is_plain_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}
