//! The catalog component: `GET /api/v1/products`, `/products/{id}`,
//! `/categories` and `/vendors/{id}`, read from the PoP's local replica
//! through `spin:sqlite`.
//!
//! All rules live in `catalog-core`; this file only adapts them to Spin.

use bytes::Bytes;
use catalog_core::{CursorSigner, Request as CatalogRequest, Response as CatalogResponse};
use edge_sql::Database as _;
use http_body_util::Full;
use problem::Problem;
use spin_glue::SpinDb;
use spin_sdk::http::Request;
use std::cell::RefCell;
use std::rc::Rc;

/// The `sqlite_databases` label this component reads.
const DATABASE: &str = "catalog";

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    into_http(serve(&req).await)
}

// WASI 0.3 instances serve many requests (Spin: up to 128), so what does not
// change between requests is set up once per instance, not per request.
thread_local! {
    static SIGNER: RefCell<Option<Rc<CursorSigner>>> = const { RefCell::new(None) };
}

async fn signer() -> Result<Rc<CursorSigner>, CatalogResponse> {
    if let Some(s) = SIGNER.with_borrow(|s| s.clone()) {
        return Ok(s);
    }
    match spin_sdk::variables::get("cursor_secret").await {
        Ok(secret) if secret.len() >= 16 => {
            let signer = Rc::new(CursorSigner::new(secret.as_bytes()));
            SIGNER.with_borrow_mut(|s| *s = Some(signer.clone()));
            Ok(signer)
        }
        _ => Err(CatalogResponse::problem(Problem::internal(
            "the cursor_secret variable is not set (or shorter than 16 bytes); \
             the operator must configure it",
        ))),
    }
}

async fn serve(req: &Request) -> CatalogResponse {
    let signer = match signer().await {
        Ok(s) => s,
        Err(resp) => return resp,
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
    let planned = match catalog_core::plan(&creq, &signer) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let rows = SpinDb::new(DATABASE)
        .query(&planned.sql, planned.params.clone())
        .await
        .map_err(|e| e.0);
    if let Err(e) = &rows {
        // stderr reaches the host's log; the client gets a generic 503.
        eprintln!("catalog: query failed: {e}");
    }
    catalog_core::render(&planned, rows, &creq, &signer)
}

fn into_http(resp: CatalogResponse) -> http::Response<Full<Bytes>> {
    spin_glue::http_response(resp.status, &resp.headers, resp.body)
}
