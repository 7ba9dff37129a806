//! The shop on the Worker: the pages a PoP's storefront, asset, auth,
//! checkout and vendor components serve, from the same `storefront-core`
//! and `storefront-assets`. Catalog pages are made from catalog answers
//! computed here (over Hrana) and kept by the cache like the API; the
//! account pages run the account flows; order and dashboard pages are made
//! from the origin's answers through the gateways in [`forward`].

use crate::cache::{self, Made};
use crate::forward;
use crate::reply::{Fields, Reply};
use problem::Problem;
use std::future::Future;
use storefront_core::{OrderRoute, Request as PageRequest, SellRoute};

/// What was asked of a page.
pub struct Asked<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub fields: &'a Fields,
}

impl<'a> Asked<'a> {
    fn request(&self) -> PageRequest<'a> {
        page_request(self.method, self.path, self.query, self.fields)
    }
}

fn page_request<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    fields: &'a Fields,
) -> PageRequest<'a> {
    PageRequest {
        method,
        path,
        query,
        // The cache in front answers conditional requests.
        if_none_match: None,
        accept: fields.get("accept"),
    }
}

fn response(reply: Reply) -> storefront_core::Response {
    storefront_core::Response {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

/// A catalog page (`/`, `/search`, `/c/...`, `/p/...`, `/cart`); `read`
/// answers one catalog read (path, query) with the change mark it is
/// current as of. The page is current as of the oldest of its reads.
pub async fn catalog_page<F, Fut>(
    method: &str,
    path: &str,
    query: &str,
    fields: &Fields,
    read: F,
) -> Made
where
    F: Fn(String, String) -> Fut,
    Fut: Future<Output = (storefront_core::Response, Option<u64>)>,
{
    // HEAD is made as GET so that its entry serves both.
    let method = if method == "HEAD" { "GET" } else { method };
    let req = page_request(method, path, query, fields);
    let page = match storefront_core::route(method, path, query) {
        Ok(p) => p,
        Err(p) => {
            return Made {
                reply: storefront_core::error(p, &req).into(),
                high_water: None,
            };
        }
    };
    let mut answers = Vec::new();
    // A page of no reads (the cart) shows nothing that changes.
    let mut high_water = Some(0);
    let mut oldest = u64::MAX;
    for r in storefront_core::catalog_reads(&page) {
        let (answer, mark) = read(r.path, r.query).await;
        match mark {
            Some(m) => oldest = oldest.min(m),
            None => high_water = None,
        }
        answers.push(answer);
    }
    if high_water.is_some() && oldest != u64::MAX {
        high_water = Some(oldest);
    }
    Made {
        reply: storefront_core::render(&page, &answers, &req).into(),
        high_water,
    }
}

/// `/assets/{name}`: the file in identity, marked for the runtime to
/// compress as the client asked (the Worker never sees the client's
/// `Accept-Encoding` itself, [`crate::coding`]).
pub fn asset(method: &str, path: &str, fields: &Fields) -> Reply {
    let (status, headers, body) = storefront_assets::answer(method, path, &["identity"], &[]);
    let mut reply = Reply::new(status, headers, body);
    reply.headers.retain(|(n, _)| n != "content-length");
    cache::deliver(reply, fields, method == "HEAD")
}

/// `/checkout`, `/orders`, `/orders/{id}` for a signed-in shopper.
pub async fn orders(
    origin: Option<String>,
    route: OrderRoute,
    asked: &Asked<'_>,
    body: Vec<u8>,
) -> Reply {
    let (req, fields) = (asked.request(), asked.fields);
    let page = match route {
        OrderRoute::Page(page) => page,
        // The script's order goes the API's way; its problems stay JSON.
        OrderRoute::Place => {
            return forward::checkout(origin, "POST", storefront_core::PLACE_ORDER, fields, body)
                .await
                .unwrap_or_else(Reply::problem);
        }
        OrderRoute::Refused(p) => return storefront_core::error(p, &req).into(),
    };
    let answer = match page.origin_read() {
        None => None,
        Some(target) => match forward::checkout(origin, "GET", &target, fields, Vec::new()).await {
            Ok(a) => Some(response(a)),
            Err(p) => return personal(storefront_core::error(p, &req).into()),
        },
    };
    personal(page.render(answer.as_ref(), &req).into())
}

/// `/sell/...` for a signed-in vendor: a dashboard page, or the vendor
/// API for the page's script.
pub async fn sell(
    origin: Option<String>,
    upload_origin: Option<String>,
    route: SellRoute,
    asked: &Asked<'_>,
    body: Vec<u8>,
) -> Reply {
    let (req, fields) = (asked.request(), asked.fields);
    let page = match route {
        SellRoute::Page(page) => page,
        SellRoute::Api(target) => {
            return forward::vendor(origin, asked.method, &target, fields, body)
                .await
                .unwrap_or_else(Reply::problem);
        }
        SellRoute::Refused(p) => return personal(storefront_core::error(p, &req).into()),
    };
    let answer = match page.origin_read() {
        None => None,
        Some(target) => match forward::vendor(origin, "GET", &target, fields, Vec::new()).await {
            Ok(a) => Some(response(a)),
            Err(p) => return personal(storefront_core::error(p, &req).into()),
        },
    };
    personal(
        page.render(answer.as_ref(), &req, upload_origin.as_deref())
            .into(),
    )
}

/// A page that is one person's: never stored, as the gateways' answers.
fn personal(mut reply: Reply) -> Reply {
    reply.set("cache-control", "private, no-store");
    reply
}

/// Why nothing is served at `path`.
pub fn nowhere(path: &str) -> Problem {
    Problem::not_found(format!(
        "nothing is served at {path}; the shop starts at / and the API is under /api/v1"
    ))
}
