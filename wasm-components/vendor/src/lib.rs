//! The vendor gateway at the edge: `/api/v1/vendor/products[/{id}]` and
//! `/api/v1/vendor/stock`.
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
use vendor_core::Route;

/// How long the origin may take over one edit or read.
const WAIT: Duration = Duration::from_secs(10);
/// Largest origin answer passed on (a listing page of 100 products).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Request fields the origin needs.
const FORWARDED: &[&str] = &["authorization", "content-type", "if-match"];
/// Answer fields a vendor's client needs.
const PASSED_ON: &[&str] = &["content-type", "etag", "location", "retry-after", "allow"];

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
    let route = Route::parse(req.uri().path())?;
    // The auth middleware in front has verified the token and the vendor
    // role; without its identity field this was not routed through it.
    if req.headers().get("edgeshop-auth-account").is_none() {
        return Err(Problem::new(
            401,
            "unauthenticated",
            "Sign-in required",
            "sign in as a vendor and send your access token as `Authorization: Bearer <token>`",
        ));
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
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
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
        .map_err(|failed| {
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
        })
}
