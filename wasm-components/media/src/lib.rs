//! Media at the edge: `GET` and `HEAD /media/{sha256}.webp`, the product
//! images the origin's processor wrote to the object store.
//!
//! The cache middleware in front keeps each image (content-addressed, so
//! `immutable` for a year) and answers `Range`, `If-None-Match` and
//! `HEAD` from it; this component runs only on a miss. It reads the
//! object over outbound HTTP from `media_origin` (the one host it may
//! call) without any credential, as `media/` is public to read, and
//! serves it with the stored image type, `nosniff`, and the name as its
//! ETag. A PoP that has an image keeps serving it while the store is
//! down.

use bytes::Bytes;
use http_body_util::Full;
use media_core::Name;
use problem::Problem;
use spin_glue::gateway::{self, Failed};
use spin_sdk::http::Request;
use std::time::Duration;

/// How long the store may take over one image.
const WAIT: Duration = Duration::from_secs(10);
/// Largest image passed on; variants are far smaller.
const MAX_IMAGE_BYTES: usize = 8 << 20;

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    match serve(req).await {
        Ok(r) => r,
        Err(p) => {
            let mut resp = gateway::problem_response(&p);
            let cache = if p.status == 404 {
                media_core::MISSING
            } else {
                "no-store"
            };
            resp.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static(cache),
            );
            resp
        }
    }
}

async fn serve(req: Request) -> Result<http::Response<Full<Bytes>>, Problem> {
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        return Err(Problem::method_not_allowed(
            req.method().as_str(),
            &["GET", "HEAD"],
        ));
    }
    let path = req.uri().path().to_string();
    let name = Name::parse(&path)?;
    let Some(origin) = spin_glue::vars::get("media_origin").await else {
        return Err(Problem::unavailable(
            "media are not configured at this edge location (the media_origin variable is not set)",
        ));
    };
    let bucket = spin_glue::vars::get("media_bucket")
        .await
        .unwrap_or_default();
    let fetch = http::Request::get(name.object_url(&origin, &bucket))
        .body(Full::new(Bytes::new()))
        .map_err(|e| Problem::internal(format!("building the store request failed: {e}")))?;
    let stored = gateway::exchange(fetch, WAIT, MAX_IMAGE_BYTES, &["content-type"])
        .await
        .map_err(|failed| {
            let how = match failed {
                Failed::CutShort => "its answer was cut short or too large",
                Failed::Unreachable => "it could not be reached",
                Failed::TimedOut => "it did not answer in time",
            };
            media_core::store_unavailable(how)
        })?;
    media_core::store_answered(stored.status().as_u16(), &path)?;
    let content_type = stored
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let fields = media_core::served_fields(name, content_type.as_deref())?;
    let (_, body) = stored.into_parts();
    let mut resp = http::Response::new(body);
    for (field, value) in fields {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(field, v);
        }
    }
    Ok(resp)
}
