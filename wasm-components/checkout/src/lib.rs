//! The checkout gateway at the edge: `POST /api/v1/checkout`,
//! `GET /api/v1/orders` and `GET /api/v1/orders/{id}`.
//!
//! Orders live only at the origin, so this component validates what it can
//! (the body, the `Idempotency-Key`, the order id) to spare the origin bad
//! requests, then forwards over outbound HTTP to `origin_url` with the
//! shopper's own bearer token, which the origin verifies again. Answers
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
    let route = checkout_core::Route::parse(&path)?;
    let (allowed, wait) = match route {
        checkout_core::Route::Checkout => (route.method(), CHECKOUT_WAIT),
        _ => (route.method(), READ_WAIT),
    };
    if req.method().as_str() != allowed {
        return Err(Problem::method_not_allowed(
            req.method().as_str(),
            &[allowed],
        ));
    }
    if req.headers().get("edgeshop-auth-account").is_none() {
        return Err(Problem::new(
            401,
            "unauthenticated",
            "Sign-in required",
            "sign in and send your access token as `Authorization: Bearer <token>`",
        ));
    }
    let mut forward = http::Request::builder().method(allowed).uri(format!(
        "{}{}",
        gateway::origin_url("checkout").await?,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(&path)
    ));
    for name in ["authorization", "idempotency-key", "content-type"] {
        if let Some(v) = req.headers().get(name) {
            forward = forward.header(name, v);
        }
    }
    let body = if allowed == "POST" {
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
