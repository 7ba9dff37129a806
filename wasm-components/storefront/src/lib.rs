//! The storefront component: the shop's HTML pages (`/`, `/c/{slug}`,
//! `/search`, `/p/{id}`, `/cart`), rendered at the PoP from the local
//! catalog replica.
//!
//! Each page is made of catalog API answers computed here, in-process, by
//! `catalog-core` (the same plan and render as the catalog component),
//! then turned into HTML by `storefront-core`. It reads only `catalog`.

use bytes::Bytes;
use catalog_core::Response;
use http_body_util::Full;
use spin_sdk::http::Request;

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    let resp = serve(&req).await;
    spin_glue::http_response(resp.status, &resp.headers, resp.body)
}

async fn serve(req: &Request) -> Response {
    let header =
        |name: http::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let page_req = storefront_core::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        if_none_match: header(http::header::IF_NONE_MATCH),
        accept: header(http::header::ACCEPT),
    };
    let page = match storefront_core::route(page_req.method, page_req.path, page_req.query) {
        Ok(p) => p,
        Err(p) => return storefront_core::error(p, &page_req),
    };
    let reads = storefront_core::catalog_reads(&page);
    let mut answers = Vec::with_capacity(reads.len());
    if !reads.is_empty() {
        let signer = match spin_glue::catalog::signer().await {
            Ok(s) => s,
            Err(p) => return storefront_core::error(p, &page_req),
        };
        for read in &reads {
            let creq = catalog_core::Request {
                method: "GET",
                path: &read.path,
                query: &read.query,
                if_none_match: None,
            };
            answers.push(spin_glue::catalog::answer(&creq, &signer).await);
        }
    }
    storefront_core::render(&page, &answers, &page_req)
}
