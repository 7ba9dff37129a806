//! The checkout gateway at the edge: `POST /api/v1/checkout`,
//! `GET /api/v1/orders` and `GET /api/v1/orders/{id}`, and the shop's
//! pages over them: `/checkout` (the form, and `POST` of the order its
//! script sends) and `/orders`, `/orders/{id}` (made by `storefront-core`
//! from the origin's answers).
//!
//! Orders live only at the origin, so this component validates what it can
//! (the body, the `Idempotency-Key`, the order id) to spare the origin bad
//! requests, then forwards over outbound HTTP to `origin_url` with the
//! shopper's own bearer token (on pages, the one the auth middleware took
//! from the session cookie), which the origin verifies again. Answers
//! pass through as `private, no-store`. When the origin cannot be reached
//! checkout fails fast with a problem that says nothing was charged and
//! that retrying with the same key is safe; browsing is unaffected.

use bytes::Bytes;
use checkout_core::CheckoutRequest;
use http_body_util::{BodyExt, Full, Limited};
use problem::Problem;
use spin_glue::gateway::{self, Failed};
use spin_sdk::http::Request;
use std::time::Duration;
use storefront_core::OrderRoute;

/// How long a checkout may take at the origin: its saga budget and margin.
const CHECKOUT_WAIT: Duration = Duration::from_secs(15);
/// How long an order read may take.
const READ_WAIT: Duration = Duration::from_secs(5);
/// Largest origin answer passed on.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Headers the origin's answer keeps.
const PASSED_ON: &[&str] = &[
    "content-type",
    "location",
    "retry-after",
    "idempotent-replayed",
];

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
    if let Some(route) = storefront_core::orders::dispatch(req.method().as_str(), &path, &query) {
        return Ok(serve_page(req, route).await);
    }
    let route = checkout_core::Route::parse(&path)?;
    let wait = match route {
        checkout_core::Route::Checkout => CHECKOUT_WAIT,
        _ => READ_WAIT,
    };
    if req.method().as_str() != route.method() {
        return Err(Problem::method_not_allowed(
            req.method().as_str(),
            &[route.method()],
        ));
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.to_string());
    forward(req, route.method(), &target, wait).await
}

/// A page: the checkout form, an order placed from it, or the orders.
async fn serve_page(req: Request, route: OrderRoute) -> http::Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let accept = header(http::header::ACCEPT);
    let (path, query) = (
        req.uri().path().to_string(),
        req.uri().query().unwrap_or("").to_string(),
    );
    let page_req = storefront_core::Request {
        method: &method,
        path: &path,
        query: &query,
        if_none_match: None,
        accept: accept.as_deref(),
    };
    let reply =
        |r: storefront_core::Response| spin_glue::http_response(r.status, &r.headers, r.body);
    let page = match route {
        OrderRoute::Page(page) => page,
        // The script's order goes the API's way; its problems stay JSON.
        OrderRoute::Place => {
            return forward(req, "POST", storefront_core::PLACE_ORDER, CHECKOUT_WAIT)
                .await
                .unwrap_or_else(|p| gateway::problem_response(&p));
        }
        OrderRoute::Refused(problem) => return reply(storefront_core::error(problem, &page_req)),
    };
    let answer = match page.origin_read() {
        None => None,
        Some(target) => match forward(req, "GET", &target, READ_WAIT).await {
            Ok(resp) => Some(storefront_core::Response {
                status: resp.status().as_u16(),
                headers: resp
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
                body: resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default(),
            }),
            Err(p) => return reply(storefront_core::error(p, &page_req)),
        },
    };
    reply(page.render(answer.as_ref(), &page_req))
}

/// Forwards `req` to the origin as `method target`, after the checks
/// the edge can make.
async fn forward(
    req: Request,
    method: &str,
    target: &str,
    wait: Duration,
) -> Result<http::Response<Full<Bytes>>, Problem> {
    if req.headers().get("edgeshop-auth-account").is_none() {
        return Err(Problem::new(
            401,
            "unauthenticated",
            "Sign-in required",
            "sign in and send your access token as `Authorization: Bearer <token>`",
        ));
    }
    let mut forward = http::Request::builder().method(method).uri(format!(
        "{}{target}",
        gateway::origin_url("checkout").await?
    ));
    // The trace context too, so the origin's spans join the PoP's trace.
    for name in [
        "authorization",
        "idempotency-key",
        "content-type",
        "traceparent",
        "tracestate",
    ] {
        if let Some(v) = req.headers().get(name) {
            forward = forward.header(name, v);
        }
    }
    let body = if method == "POST" {
        checkout_core::idempotency_key(req.headers().get("idempotency-key").map(|v| v.as_bytes()))?;
        let body = Limited::new(req.into_body(), checkout_core::MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| Problem::payload_too_large(checkout_core::MAX_BODY_BYTES as u64))?
            .to_bytes();
        CheckoutRequest::parse(&body)?;
        body
    } else {
        Bytes::new()
    };
    let forward = forward
        .body(Full::new(body))
        .map_err(|e| Problem::internal(format!("building the origin request failed: {e}")))?;
    gateway::exchange(forward, wait, MAX_ANSWER_BYTES, PASSED_ON)
        .await
        .map_err(|failed| match failed {
            Failed::CutShort => checkout_core::unreachable("its answer was cut short or too large"),
            Failed::Unreachable => checkout_core::unreachable("it could not be reached"),
            Failed::TimedOut => checkout_core::timed_out(),
        })
}
