//! The vendor API at the origin, for the signed-in vendor's own products:
//!
//! - `GET /api/v1/vendor/products[?status=&after=&limit=]`: theirs,
//!   drafts included, newest id first;
//! - `POST /api/v1/vendor/products`: create (a draft unless it says
//!   `"status": "published"`);
//! - `GET`, `PATCH` (with `If-Match`) and `DELETE` (with `If-Match`)
//!   `/api/v1/vendor/products/{id}`;
//! - `POST /api/v1/vendor/stock`: many products' stock in one request.
//!
//! Prices, stock and what shoppers see change here and nowhere else: the
//! origin verifies the vendor's token and live session itself, finds the
//! vendor the account owns at the identity primary, and applies each edit
//! in one transaction on the catalog primary after `vendor_core`'s checks.
//! The edge token cannot write `products` at all (db-permissions), so no
//! credential a PoP holds changes a price. Edits replicate to every PoP,
//! and the catalog's triggers append the `changes` tags that make cached
//! pages showing them stale.

mod products;

use crate::checkout::auth::{self, Verifier};
use crate::checkout::{Answer, now_ms};
use bytes::Bytes;
use problem::Problem;
use tokio::sync::Mutex;
use vendor_core::{IfMatch, ProductFields, Route};

/// The vendor API's connections and token checks.
pub struct Vendors {
    catalog: Mutex<libsql::Connection>,
    identity: Mutex<libsql::Connection>,
    /// Open orders keep their products from being deleted; without an
    /// orders database there are none.
    orders: Option<Mutex<libsql::Connection>>,
    verifier: Verifier,
}

/// A vendor account and the catalog vendor it owns.
#[derive(Debug, Clone, Copy)]
struct Caller {
    vendor: i64,
}

fn internal(e: libsql::Error) -> Answer {
    tracing::error!("vendor API database error: {e}");
    Answer::problem(
        Problem::unavailable(
            "the catalog could not be reached; nothing was changed, try again shortly",
        )
        .with("retry_after", 2),
    )
}

impl Vendors {
    pub async fn open(
        catalog: &libsql::Database,
        identity: &libsql::Database,
        orders: Option<&libsql::Database>,
        variables_file: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Vendors> {
        Ok(Vendors {
            catalog: Mutex::new(crate::checkout::open(catalog, true).await?),
            identity: Mutex::new(crate::checkout::open(identity, true).await?),
            orders: match orders {
                Some(db) => Some(Mutex::new(crate::checkout::open(db, false).await?)),
                None => None,
            },
            verifier: Verifier::new(variables_file),
        })
    }

    /// Answers a request under `/api/v1/vendor/`.
    pub async fn handle(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Answer {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let route = Route::parse(path).and_then(|r| {
            r.check(
                method.as_str(),
                header("content-type"),
                header("if-match"),
                &body,
            )
            .map(|()| r)
        });
        let answer = match route {
            Err(p) => Answer::problem(p),
            Ok(route) => match self.caller(header("authorization")).await {
                Err(a) => a,
                Ok(who) => match (route, method.as_str()) {
                    (Route::Products, "GET") => self.list(who, query).await,
                    (Route::Products, _) => self.create(who, &body).await,
                    (Route::Stock, _) => self.stock(who, &body).await,
                    (Route::Product(id), "GET") => self.show(who, id).await,
                    (Route::Product(id), "PATCH") => {
                        self.update(who, id, header("if-match"), &body).await
                    }
                    (Route::Product(id), _) => self.delete(who, id, header("if-match")).await,
                },
            },
        };
        answer.with("cache-control", "private, no-store")
    }

    /// The vendor behind a bearer token whose session is live.
    async fn caller(&self, authorization: Option<&str>) -> Result<Caller, Answer> {
        let who = self
            .verifier
            .verify(authorization, now_ms() / 1000)
            .map_err(Answer::problem)?;
        let identity = self.identity.lock().await;
        if !auth::session_is_live(&identity, &who, now_ms() / 1000)
            .await
            .map_err(internal)?
        {
            return Err(Answer::problem(auth::session_ended()));
        }
        let mut rows = identity
            .query(
                "SELECT vendor_id FROM accounts WHERE id = ?1 AND kind = 'vendor'",
                libsql::params![who.account],
            )
            .await
            .map_err(internal)?;
        match rows.next().await.map_err(internal)? {
            Some(row) => Ok(Caller {
                vendor: row.get::<i64>(0).map_err(internal)?,
            }),
            None => Err(Answer::problem(Problem::new(
                403,
                "forbidden",
                "Forbidden",
                "only vendor accounts manage products; sign up as a vendor to sell",
            ))),
        }
    }

    async fn list(&self, who: Caller, query: Option<&str>) -> Answer {
        let page = match products::Page::parse(query) {
            Ok(p) => p,
            Err(p) => return Answer::problem(p),
        };
        match products::list(&*self.catalog.lock().await, who.vendor, &page).await {
            Ok(v) => Answer::json(200, &v),
            Err(e) => internal(e),
        }
    }

    async fn show(&self, who: Caller, id: i64) -> Answer {
        match products::load(&*self.catalog.lock().await, who.vendor, id).await {
            Ok(Some(p)) => product_answer(200, &p),
            Ok(None) => Answer::problem(vendor_core::not_yours()),
            Err(e) => internal(e),
        }
    }

    async fn create(&self, who: Caller, body: &[u8]) -> Answer {
        let fields = match ProductFields::parse_new(body) {
            Ok(f) => f,
            Err(p) => return Answer::problem(p),
        };
        let catalog = self.catalog.lock().await;
        match products::create(&catalog, who.vendor, &fields, now_ms() / 1000).await {
            Ok(Ok(p)) => product_answer(201, &p)
                .with("location", format!("/api/v1/vendor/products/{}", p.id)),
            Ok(Err(p)) => Answer::problem(p),
            Err(e) => internal(e),
        }
    }

    async fn update(&self, who: Caller, id: i64, if_match: Option<&str>, body: &[u8]) -> Answer {
        let fields = match ProductFields::parse_patch(body) {
            Ok(f) => f,
            Err(p) => return Answer::problem(p),
        };
        let expected = match vendor_core::if_match(if_match) {
            Ok(m) => m,
            Err(p) => return Answer::problem(p),
        };
        let catalog = self.catalog.lock().await;
        match products::update(
            &catalog,
            who.vendor,
            id,
            &expected,
            &fields,
            now_ms() / 1000,
        )
        .await
        {
            Ok(Ok(p)) => product_answer(200, &p),
            Ok(Err(refusal)) => refusal_answer(refusal),
            Err(e) => internal(e),
        }
    }

    async fn delete(&self, who: Caller, id: i64, if_match: Option<&str>) -> Answer {
        let expected = match vendor_core::if_match(if_match) {
            Ok(m) => m,
            Err(p) => return Answer::problem(p),
        };
        // Open orders are read before the catalog is locked; one that
        // opens after is priced at the primary and finds the product gone.
        let open_order = match &self.orders {
            Some(orders) => match products::in_open_order(&*orders.lock().await, id).await {
                Ok(o) => o,
                Err(e) => return internal(e),
            },
            None => false,
        };
        let catalog = self.catalog.lock().await;
        match products::delete(&catalog, who.vendor, id, &expected, open_order).await {
            Ok(Ok(())) => Answer {
                status: 204,
                content_type: "application/json",
                body: Vec::new(),
                headers: Vec::new(),
            },
            Ok(Err(refusal)) => refusal_answer(refusal),
            Err(e) => internal(e),
        }
    }

    async fn stock(&self, who: Caller, body: &[u8]) -> Answer {
        let changes = match vendor_core::parse_stock_changes(body) {
            Ok(c) => c,
            Err(p) => return Answer::problem(p),
        };
        let catalog = self.catalog.lock().await;
        match products::change_stock(&catalog, who.vendor, &changes, now_ms() / 1000).await {
            Ok(Ok(levels)) => Answer::json(200, &serde_json::json!({ "items": levels })),
            Ok(Err(refusal)) => refusal_answer(refusal),
            Err(e) => internal(e),
        }
    }
}

fn product_answer(status: u16, p: &products::Product) -> Answer {
    Answer::json(status, &p.json()).with("etag", vendor_core::etag(p.version))
}

fn refusal_answer(refusal: products::Refusal) -> Answer {
    match refusal {
        products::Refusal::NotYours => Answer::problem(vendor_core::not_yours()),
        products::Refusal::Stale { current } => {
            Answer::problem(IfMatch::stale(current)).with("etag", vendor_core::etag(current))
        }
        products::Refusal::Problem(p) => Answer::problem(p),
    }
}
