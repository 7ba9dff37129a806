//! The catalog API as pure logic: plan a request into one SQL query, then
//! render the rows into a response.
//!
//! No I/O and no platform types, so the Spin component, the Workers adapter
//! and the native benchmark server share every rule here:
//!
//! ```text
//! Request --plan()--> Planned { sql, params } --(adapter runs it)--> rows --render()--> Response
//! ```

mod cursor;
mod http;
mod model;
mod params;
mod query;
mod routes;

pub use cursor::{CursorKey, CursorSigner};
pub use http::{ITEM_CACHE_CONTROL, LIST_CACHE_CONTROL, Response, etag_for};
pub use model::rfc3339;
pub use params::{ListParams, Sort};
pub use query::SqlValue;
pub use routes::Route;

use problem::Problem;

/// What the adapter tells us about the request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub if_none_match: Option<&'a str>,
}

/// A request turned into the one query that answers it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub sql: String,
    pub params: Vec<SqlValue>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    List { params: ListParams, head: bool },
    Product { id: i64, head: bool },
    Categories { head: bool, counts: bool },
    Vendor { id: i64, head: bool },
}

/// Plans a request. `Err` is a finished response (bad input, unknown route).
pub fn plan(req: &Request<'_>, signer: &CursorSigner) -> Result<Planned, Response> {
    let route = routes::route(req.method, req.path).map_err(Response::problem)?;
    let head = req.method == "HEAD";
    let planned = match route {
        Route::Products => {
            let params = ListParams::parse(req.query).map_err(Response::problem)?;
            let key = match &params.cursor {
                Some(token) => Some(
                    signer
                        .verify(token, params.sort, &params.filter_digest())
                        .map_err(Response::problem)?,
                ),
                None => None,
            };
            let (sql, sql_params) = query::list(&params, key.as_ref());
            Planned {
                sql,
                params: sql_params,
                kind: Kind::List { params, head },
            }
        }
        Route::Product(id) => Planned {
            sql: query::product(),
            params: vec![SqlValue::Integer(id)],
            kind: Kind::Product { id, head },
        },
        Route::Categories => {
            let counts = params::counts(req.query).map_err(Response::problem)?;
            Planned {
                sql: query::categories(counts),
                params: vec![],
                kind: Kind::Categories { head, counts },
            }
        }
        Route::Vendor(id) => Planned {
            sql: query::vendor(),
            params: vec![SqlValue::Integer(id)],
            kind: Kind::Vendor { id, head },
        },
    };
    Ok(planned)
}

/// Renders the rows of a planned query. A database error becomes a 503: the
/// local replica is the only thing that can fail here, and a retry may help.
pub fn render(
    planned: &Planned,
    rows: Result<Vec<Vec<SqlValue>>, String>,
    req: &Request<'_>,
    signer: &CursorSigner,
) -> Response {
    let rows = match rows {
        Ok(rows) => rows,
        Err(_) => {
            return Response::problem(Problem::unavailable(
                "the catalog database could not be read; try again shortly",
            ));
        }
    };
    let (body, tags, cache_control, head) = match &planned.kind {
        Kind::List { params, head } => {
            let page = model::list_page(rows, params, signer);
            let mut tags = vec!["catalog".to_string()];
            if let Some(c) = &params.category {
                tags.push(format!("category:{}", c.tag_value()));
            }
            if let Some(v) = &params.vendor {
                tags.push(format!("vendor:{}", v.tag_value()));
            }
            (page, tags, http::LIST_CACHE_CONTROL, *head)
        }
        Kind::Product { id, head } => match rows.first() {
            Some(row) => {
                let product = model::product(row);
                let mut tags = vec![
                    format!("product:{id}"),
                    format!("vendor:{}", product.vendor_id),
                ];
                tags.extend(product.category_ids.iter().map(|c| format!("category:{c}")));
                (product.json, tags, http::ITEM_CACHE_CONTROL, *head)
            }
            None => {
                return Response::problem(Problem::not_found(format!(
                    "there is no product with id {id}"
                )));
            }
        },
        Kind::Categories { head, counts } => (
            model::categories(&rows, *counts),
            vec!["categories".to_string()],
            http::LIST_CACHE_CONTROL,
            *head,
        ),
        Kind::Vendor { id, head } => match rows.first() {
            Some(row) => (
                model::vendor(row),
                vec![format!("vendor:{id}")],
                http::ITEM_CACHE_CONTROL,
                *head,
            ),
            None => {
                return Response::problem(Problem::not_found(format!(
                    "there is no vendor with id {id}"
                )));
            }
        },
    };
    let body = serde_json::to_vec(&body).expect("catalog JSON serialises");
    Response::json_cacheable(body, &tags, cache_control, req.if_none_match, head)
}

#[cfg(test)]
mod tests;
