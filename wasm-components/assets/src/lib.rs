//! The asset component: `GET`/`HEAD /assets/{name}.{hash}.{ext}`, the
//! storefront's CSS, script and icon, from memory.
//!
//! Every path names its content hash, so each answer is `immutable` for a
//! year. Files were compressed at build time (`storefront-assets`); this
//! only picks brotli, gzip or identity by the client's `Accept-Encoding`
//! (RFC 9110 section 12.5.3), with `Vary: Accept-Encoding` for caches in
//! between. It needs no capability at all.

use bytes::Bytes;
use cache_core::encoding::Coding;
use http_body_util::Full;
use problem::Problem;
use spin_sdk::http::Request;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    let (status, headers, body) = answer(&req);
    spin_glue::http_response(status, &headers, body)
}

fn answer(req: &Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let problem = |p: Problem| {
        let mut headers = p.header_fields();
        headers.push(("x-content-type-options".into(), "nosniff".into()));
        (p.status, headers, p.to_json())
    };
    let head = *req.method() == http::Method::HEAD;
    if !head && *req.method() != http::Method::GET {
        return problem(Problem::method_not_allowed(
            req.method().as_str(),
            &["GET", "HEAD"],
        ));
    }
    let Some(asset) = storefront_assets::find(req.uri().path()) else {
        return problem(Problem::not_found(format!(
            "there is no asset at {}; asset paths change with every build, so reload the page",
            req.uri().path()
        )));
    };
    let coding = cache_core::encoding::negotiate(
        req.headers()
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let Some(coding) = coding else {
        return problem(Problem::new(
            406,
            "not-acceptable",
            "Not acceptable",
            "this asset is available as br, gzip or identity, and the request refuses all three",
        ));
    };
    let body = match coding {
        Coding::Br => asset.brotli,
        Coding::Gzip => asset.gzip,
        Coding::Identity => asset.identity,
    };
    let etag = cache_core::encoding::variant_etag(asset.etag, coding)
        .unwrap_or_else(|| asset.etag.to_string());
    let mut headers = vec![
        ("content-type".to_string(), asset.content_type.to_string()),
        ("cache-control".to_string(), IMMUTABLE.to_string()),
        ("vary".to_string(), "accept-encoding".to_string()),
        ("x-content-type-options".to_string(), "nosniff".to_string()),
        ("etag".to_string(), etag.clone()),
    ];
    if coding != Coding::Identity {
        headers.push(("content-encoding".to_string(), coding.token().to_string()));
    }
    let inm = req
        .headers()
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok());
    if cache_core::conditional::not_modified(inm, Some(&etag)) {
        return (304, headers, Vec::new());
    }
    headers.push(("content-length".to_string(), body.len().to_string()));
    (200, headers, if head { Vec::new() } else { body.to_vec() })
}
