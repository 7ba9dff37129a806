//! The asset component: `GET`/`HEAD /assets/{name}.{hash}.{ext}`, the
//! storefront's CSS, script and icon, from memory.
//!
//! Every path names its content hash, so each answer is `immutable` for a
//! year. Files were compressed at build time, and `storefront_assets::answer`
//! (the same on the Workers twin) picks brotli, gzip or identity by the
//! client's `Accept-Encoding` (RFC 9110 section 12.5.3), with
//! `Vary: Accept-Encoding` for caches in between. It needs no capability
//! at all.

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    let values = |name: http::header::HeaderName| -> Vec<&str> {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let (status, headers, body) = storefront_assets::answer(
        req.method().as_str(),
        req.uri().path(),
        &values(http::header::ACCEPT_ENCODING),
        &values(http::header::IF_NONE_MATCH),
    );
    spin_glue::http_response(status, &headers, body)
}
