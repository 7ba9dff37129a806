//! The checkout and order pages: `/checkout`, `/orders` and
//! `/orders/{id}`, served by the checkout component, the one component
//! that reaches the origin's order API. This module says which origin
//! read a page needs and makes the page from the answer.
//!
//! The pages are personal: the auth middleware admits them with the
//! browser session's access cookie (`cdn-config/auth.toml` marks them
//! `session = "cookie"`) and hands the component a bearer token, which the
//! origin verifies again. The checkout page is a form the script completes
//! from the cart, kept in the browser; it sends the order as JSON to
//! `POST /checkout` with a fresh `Idempotency-Key` per attempt.

use crate::{Request, html};
use catalog_core::Response;
use problem::Problem;
use serde_json::Value;

/// Orders on one page of `/orders`.
pub const ORDERS_PER_PAGE: u32 = 20;

/// A page under `/checkout` or `/orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderPage {
    /// `/checkout`: the form (`GET`), or an order placed (`POST`).
    Checkout,
    /// `/orders`, newest first; `before` is the last order id seen.
    List { before: Option<String> },
    /// `/orders/{id}`.
    Detail(String),
}

/// What a request to a checkout or order page is.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderRoute {
    /// A page, for a browser.
    Page(OrderPage),
    /// The checkout page's script placing the order: the API's
    /// `POST /api/v1/checkout`, answered as the API answers it.
    Place,
    /// A method the page does not take (405).
    Refused(Problem),
}

/// What `method path?query` asks for, or `None` for no page here.
pub fn dispatch(method: &str, path: &str, query: &str) -> Option<OrderRoute> {
    let page = OrderPage::route(path, query)?;
    let allowed: &[&str] = if page == OrderPage::Checkout {
        &["GET", "HEAD", "POST"]
    } else {
        &["GET", "HEAD"]
    };
    Some(match method {
        "POST" if page == OrderPage::Checkout => OrderRoute::Place,
        "GET" | "HEAD" => OrderRoute::Page(page),
        _ => OrderRoute::Refused(Problem::method_not_allowed(method, allowed)),
    })
}

/// The API path an order is placed at.
pub const PLACE_ORDER: &str = "/api/v1/checkout";

impl OrderPage {
    /// The page `path` names, or `None` for a path that is no page here.
    pub fn route(path: &str, query: &str) -> Option<OrderPage> {
        match path {
            "/checkout" => Some(OrderPage::Checkout),
            "/orders" => Some(OrderPage::List {
                before: form_urlencoded::parse(query.as_bytes())
                    .find(|(k, v)| k == "before" && !v.is_empty())
                    .map(|(_, v)| v.into_owned()),
            }),
            _ => {
                let id = path.strip_prefix("/orders/")?;
                (!id.is_empty() && !id.contains('/')).then(|| OrderPage::Detail(id.to_string()))
            }
        }
    }

    /// The origin API path (with query) a `GET` of this page is made from.
    pub fn origin_read(&self) -> Option<String> {
        match self {
            OrderPage::Checkout => None,
            OrderPage::List { before } => Some(match before {
                None => format!("/api/v1/orders?limit={ORDERS_PER_PAGE}"),
                Some(b) => format!("/api/v1/orders?limit={ORDERS_PER_PAGE}&before={}", enc(b)),
            }),
            OrderPage::Detail(id) => Some(format!("/api/v1/orders/{}", enc(id))),
        }
    }

    /// The page, made from the answer to `origin_read` (none for the
    /// checkout form). An answer that is not a 200 becomes an error page.
    pub fn render(&self, answer: Option<&Response>, req: &Request<'_>) -> Response {
        let body = match (self, answer) {
            (OrderPage::Checkout, _) => html::checkout(),
            (_, None) => return crate::error(Problem::internal("no answer from the origin"), req),
            (_, Some(a)) if a.status != 200 => return crate::error(problem_of(a), req),
            (page, Some(a)) => {
                let Ok(v) = serde_json::from_slice::<Value>(&a.body) else {
                    return crate::error(unreadable(), req);
                };
                match page {
                    OrderPage::List { .. } => {
                        let next = v["orders"]
                            .as_array()
                            .filter(|o| o.len() as u32 == ORDERS_PER_PAGE)
                            .and_then(|o| o.last()?["id"].as_str())
                            .map(|last| format!("/orders?before={}", enc(last)));
                        html::orders(&v, next.as_deref())
                    }
                    _ => html::order(&v),
                }
            }
        };
        page(body, req)
    }
}

/// A personal page: `private, no-store`, the policy headers.
pub(crate) fn page(body: maud::Markup, req: &Request<'_>) -> Response {
    // The same page headers as the account pages (auth-core's type).
    let page = crate::account::html_response(200, body.into_string());
    Response {
        status: page.status,
        headers: page.headers,
        body: if req.method == "HEAD" {
            Vec::new()
        } else {
            page.body
        },
    }
}

/// An origin answer a page cannot be made from.
pub(crate) fn unreadable() -> Problem {
    Problem::new(
        502,
        "bad-gateway",
        "Bad gateway",
        "the shop's origin sent an answer this page cannot read; try again",
    )
}

/// The problem an origin answer carries, so its page can say it.
pub(crate) fn problem_of(a: &Response) -> Problem {
    let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let text = |k: &str| v[k].as_str().filter(|t| !t.is_empty());
    let mut p = Problem::new(
        a.status,
        "origin-error",
        text("title").unwrap_or("The order service refused"),
        text("detail").unwrap_or("try again in a moment"),
    );
    if let Some(t) = text("type") {
        p.type_uri = t.to_string();
    }
    let retry_after = a
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(secs) = retry_after {
        p = p.with("retry_after", secs);
    }
    p
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
