//! The vendor gateway at the edge: `/api/v1/vendor/products[/{id}]`,
//! `/api/v1/vendor/stock` and the uploads, and the vendor dashboard over
//! them: `/sell` pages for a browser (made by `storefront-core` from the
//! origin's answers), and `/sell/{rest}` as `/api/v1/vendor/{rest}` for
//! the dashboard's script, with the session the auth middleware took from
//! the cookie.
//!
//! Product edits are authorised at the origin, which alone may change
//! prices and stock (the edge token cannot write `products`). This
//! component checks what it can first (the method, the body, `If-Match`)
//! with the same `vendor_core` rules the origin applies, so a bad request
//! never costs a round trip, then forwards over outbound HTTP to
//! `origin_url` with the vendor's own bearer token, which the origin
//! verifies again. Answers pass through as `private, no-store`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use problem::Problem;
use spin_glue::gateway::{self, Failed};
use spin_sdk::http::Request;
use std::time::Duration;
use storefront_core::{SellPage, SellRoute};
use vendor_core::Route;

/// How long the origin may take over one edit or read.
const WAIT: Duration = Duration::from_secs(10);
/// Largest origin answer passed on (a listing page of 100 products).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Request fields the origin needs; the trace context too, so the
/// origin's spans join the PoP's trace.
const FORWARDED: &[&str] = &[
    "authorization",
    "content-type",
    "if-match",
    "traceparent",
    "tracestate",
];
/// Answer fields a vendor's client needs.
const PASSED_ON: &[&str] = &["content-type", "etag", "location", "retry-after", "allow"];

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    let mut resp = match serve(req).await {
        Ok(r) => r,
        Err(p) => gateway::problem_response(&p),
    };
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    resp
}

async fn serve(req: Request) -> Result<http::Response<Full<Bytes>>, Problem> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match storefront_core::sell::dispatch(req.method().as_str(), &path, &query, accept) {
        Some(SellRoute::Page(page)) => Ok(serve_page(&req, page).await),
        Some(SellRoute::Refused(problem)) => {
            let page_req = storefront_core::Request {
                method: req.method().as_str(),
                path: &path,
                query: &query,
                if_none_match: None,
                accept,
            };
            let r = storefront_core::error(problem, &page_req);
            Ok(spin_glue::http_response(r.status, &r.headers, r.body))
        }
        Some(SellRoute::Api(target)) => forward(req, &target).await,
        None => {
            let target = req
                .uri()
                .path_and_query()
                .map_or(path, |p| p.as_str().to_string());
            forward(req, &target).await
        }
    }
}

/// A dashboard page, made from the origin's answer.
async fn serve_page(req: &Request, page: SellPage) -> http::Response<Full<Bytes>> {
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let accept = header(http::header::ACCEPT);
    let (path, query) = (req.uri().path(), req.uri().query().unwrap_or(""));
    let page_req = storefront_core::Request {
        method: req.method().as_str(),
        path,
        query,
        if_none_match: None,
        accept: accept.as_deref(),
    };
    let reply =
        |r: storefront_core::Response| spin_glue::http_response(r.status, &r.headers, r.body);
    let answer = match page.origin_read() {
        None => None,
        Some(target) => match read(req, &target).await {
            Ok(a) => Some(a),
            Err(p) => return reply(storefront_core::error(p, &page_req)),
        },
    };
    let upload_origin = spin_glue::vars::get("upload_origin").await;
    reply(page.render(answer.as_ref(), &page_req, upload_origin.as_deref()))
}

/// `GET target` at the origin, as the caller.
async fn read(req: &Request, target: &str) -> Result<storefront_core::Response, Problem> {
    if req.headers().get("edgeshop-auth-account").is_none() {
        return Err(signed_out());
    }
    let mut get = http::Request::builder().method("GET").uri(format!(
        "{}{target}",
        gateway::origin_url("the vendor API").await?
    ));
    if let Some(v) = req.headers().get(http::header::AUTHORIZATION) {
        get = get.header(http::header::AUTHORIZATION, v);
    }
    let get = get
        .body(Full::new(Bytes::new()))
        .map_err(|e| Problem::internal(format!("building the origin request failed: {e}")))?;
    let resp = gateway::exchange(get, WAIT, MAX_ANSWER_BYTES, PASSED_ON)
        .await
        .map_err(unavailable)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Ok(storefront_core::Response {
        status,
        headers,
        body,
    })
}

fn signed_out() -> Problem {
    Problem::new(
        401,
        "unauthenticated",
        "Sign-in required",
        "sign in as a vendor and send your access token as `Authorization: Bearer <token>`",
    )
}

/// Forwards `req` to the origin's `target` (path and query) after the
/// checks the edge can make.
async fn forward(req: Request, target: &str) -> Result<http::Response<Full<Bytes>>, Problem> {
    let route = Route::parse(target.split('?').next().unwrap_or(target))?;
    // The auth middleware in front has verified the token and the vendor
    // role; without its identity field this was not routed through it.
    if req.headers().get("edgeshop-auth-account").is_none() {
        return Err(signed_out());
    }
    let method = req.method().clone();
    let field = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (if_match, content_type) = (field("if-match"), field("content-type"));
    let mut forward = http::Request::builder().method(method.clone());
    for name in FORWARDED {
        if let Some(v) = req.headers().get(*name) {
            forward = forward.header(*name, v);
        }
    }
    let body = Limited::new(req.into_body(), vendor_core::MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| Problem::payload_too_large(vendor_core::MAX_BODY_BYTES as u64))?
        .to_bytes();
    route.check(
        method.as_str(),
        content_type.as_deref(),
        if_match.as_deref(),
        &body,
    )?;
    let forward = forward.uri(format!(
        "{}{target}",
        gateway::origin_url("the vendor API").await?
    ));
    let forward = forward
        .body(Full::new(body))
        .map_err(|e| Problem::internal(format!("building the origin request failed: {e}")))?;
    gateway::exchange(forward, WAIT, MAX_ANSWER_BYTES, PASSED_ON)
        .await
        .map_err(unavailable)
}

fn unavailable(failed: Failed) -> Problem {
    let how = match failed {
        Failed::CutShort => "its answer was cut short or too large",
        Failed::Unreachable => "it could not be reached",
        Failed::TimedOut => "it did not answer in time",
    };
    // A timed-out change may still have been applied: the vendor
    // re-reads (GET) before retrying, and If-Match keeps a retry
    // from applying twice.
    Problem::unavailable(format!(
        "the vendor API is unavailable from here right now: the origin {how}. \
         Read the product again before retrying a change; shoppers can still browse."
    ))
    .with("retry_after", 5)
}
