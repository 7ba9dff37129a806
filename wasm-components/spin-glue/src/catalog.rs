//! The catalog's keyset-cursor signer, for every component that hands out
//! the catalog's pages (the catalog API and the storefront): one key, so a
//! cursor from either is good for both.

use catalog_core::CursorSigner;
use problem::Problem;
use std::cell::RefCell;
use std::rc::Rc;

// Made once per instance: WASI 0.3 instances serve many requests.
thread_local! {
    static SIGNER: RefCell<Option<Rc<CursorSigner>>> = const { RefCell::new(None) };
}

/// The signer keyed by the `cursor_secret` variable, or a 500 the
/// operator can act on when it is missing or too short.
pub async fn signer() -> Result<Rc<CursorSigner>, Problem> {
    if let Some(s) = SIGNER.with_borrow(|s| s.clone()) {
        return Ok(s);
    }
    match spin_sdk::variables::get("cursor_secret").await {
        Ok(secret) if secret.len() >= 16 => {
            let signer = Rc::new(CursorSigner::new(secret.as_bytes()));
            SIGNER.with_borrow_mut(|s| *s = Some(signer.clone()));
            Ok(signer)
        }
        _ => Err(Problem::internal(
            "the cursor_secret variable is not set (or shorter than 16 bytes); \
             the operator must configure it",
        )),
    }
}

/// The `sqlite_databases` label of the catalog replica.
const DATABASE: &str = "catalog";

/// Answers a catalog API request against the local replica: the plan and
/// the rendering are `catalog-core`'s, only the query runs here. A failed
/// query is logged (stderr reaches the host's log) and answered with
/// `catalog-core`'s generic 503.
pub async fn answer(
    req: &catalog_core::Request<'_>,
    signer: &CursorSigner,
) -> catalog_core::Response {
    use edge_sql::Database as _;
    let planned = match catalog_core::plan(req, signer) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let rows = crate::SpinDb::new(DATABASE)
        .query(&planned.sql, planned.params.clone())
        .await
        .map_err(|e| e.0);
    if let Err(e) = &rows {
        eprintln!("catalog query failed: {e}");
    }
    catalog_core::render(&planned, rows, req, signer)
}
