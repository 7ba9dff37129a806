//! The catalog component: `GET /api/v1/products`, `/products/{id}`,
//! `/categories` and `/vendors/{id}`, read from the PoP's local replica
//! through `spin:sqlite`.
//!
//! All rules live in `catalog-core`; this file only adapts them to Spin.

use bytes::Bytes;
use catalog_core::{Request as CatalogRequest, Response as CatalogResponse};
use http_body_util::Full;
use spin_sdk::http::Request;

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    into_http(serve(&req).await)
}

async fn serve(req: &Request) -> CatalogResponse {
    let signer = match spin_glue::catalog::signer().await {
        Ok(s) => s,
        Err(p) => return CatalogResponse::problem(p),
    };
    let creq = CatalogRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        if_none_match: req
            .headers()
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
    };
    spin_glue::catalog::answer(&creq, &signer).await
}

fn into_http(resp: CatalogResponse) -> http::Response<Full<Bytes>> {
    spin_glue::http_response(resp.status, &resp.headers, resp.body)
}
