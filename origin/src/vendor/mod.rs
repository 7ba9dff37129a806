//! The vendor API at the origin, for the signed-in vendor's own products:
//!
//! - `GET /api/v1/vendor/products[?status=&after=&limit=]`: theirs,
//!   drafts included, newest id first;
//! - `POST /api/v1/vendor/products`: create (a draft unless it says
//!   `"status": "published"`);
//! - `GET`, `PATCH` (with `If-Match`) and `DELETE` (with `If-Match`)
//!   `/api/v1/vendor/products/{id}`;
//! - `POST /api/v1/vendor/stock`: many products' stock in one request;
//! - `POST /api/v1/vendor/uploads`: a presigned `PUT` URL for one image,
//!   within the vendor's quota; `GET /api/v1/vendor/uploads[/{id}]`;
//! - `POST /api/v1/vendor/products/{id}/media`: attach an uploaded image,
//!   processed off the request path ([`processing`]).
//!
//! Prices, stock and what shoppers see change here and nowhere else: the
//! origin verifies the vendor's token and live session itself, finds the
//! vendor the account owns at the identity primary, and applies each edit
//! in one transaction on the catalog primary after `vendor_core`'s checks.
//! The edge token cannot write `products` at all (db-permissions), so no
//! credential a PoP holds changes a price. Edits replicate to every PoP,
//! and the catalog's triggers append the `changes` tags that make cached
//! pages showing them stale.

pub mod isolate;
mod processing;
mod products;
mod store;
mod uploads;

use crate::checkout::auth::{self, Verifier};
use crate::checkout::{Answer, now_ms};
use bytes::Bytes;
use problem::Problem;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use vendor_core::upload::UploadRequest;
use vendor_core::{IfMatch, ProductFields, Route};

pub use processing::Processor;
pub use store::ObjectStore;
pub use uploads::Quota;

/// Where vendors' uploads go, and how much each vendor may hold.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub store: ::uploads::Store,
    pub quota: Quota,
    /// How long a signed URL works (at most 15 minutes).
    pub valid_for: Duration,
}

/// Most uploads one listing shows.
const UPLOADS_PAGE: i64 = 50;

/// The vendor API's connections and token checks.
pub struct Vendors {
    catalog: db_writer::Shared,
    identity: db_writer::Shared,
    /// Open orders keep their products from being deleted; without an
    /// orders database there are none.
    /// Holds uploads too; uploads are off without it.
    orders: Option<Mutex<libsql::Connection>>,
    /// Uploads are off without a store.
    uploads: Option<UploadSettings>,
    /// Attaching is off without the processor's key.
    processor: Option<Processor>,
    /// Wakes the processor when an upload is attached.
    wake: tokio::sync::Notify,
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
        catalog: crate::checkout::Primary,
        identity: crate::checkout::Primary,
        orders: Option<&libsql::Database>,
        variables_file: Option<std::path::PathBuf>,
        uploads: Option<UploadSettings>,
        processor: Option<Processor>,
    ) -> anyhow::Result<Vendors> {
        Ok(Vendors {
            catalog: db_writer::Shared::new(
                crate::checkout::open(&catalog.db, catalog.is_file).await?,
                catalog.db,
                !catalog.is_file,
            ),
            identity: db_writer::Shared::new(
                crate::checkout::open(&identity.db, identity.is_file).await?,
                identity.db,
                !identity.is_file,
            ),
            orders: match orders {
                Some(db) => Some(Mutex::new(crate::checkout::open(db, false).await?)),
                None => None,
            },
            uploads: uploads.filter(|_| orders.is_some()),
            processor: processor.filter(|_| orders.is_some()),
            wake: tokio::sync::Notify::new(),
            verifier: Verifier::new(variables_file),
        })
    }

    /// Starts processing attached uploads, when it is on.
    pub fn start(self: &std::sync::Arc<Self>) {
        if self.processor.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let (Some(processor), Some(orders)) = (&me.processor, &me.orders) {
                processing::run(processor, orders, &me.catalog, &me.wake).await;
            }
        });
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
                    (Route::Uploads, "GET") => self.uploads(who).await,
                    (Route::Uploads, _) => self.sign_upload(who, &body).await,
                    (Route::Upload(id), _) => self.upload(who, id).await,
                    (Route::ProductMedia(id), _) => self.attach(who, id, &body).await,
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
        if !auth::session_is_live(&*identity, &who, now_ms() / 1000)
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

impl Vendors {
    /// The store and the database uploads need, or why uploads are off.
    fn uploads_on(&self) -> Result<(&UploadSettings, &Mutex<libsql::Connection>), Answer> {
        match (&self.uploads, &self.orders) {
            (Some(settings), Some(orders)) => Ok((settings, orders)),
            _ => Err(Answer::problem(Problem::unavailable(
                "uploads are off: this origin has no object store configured",
            ))),
        }
    }

    async fn sign_upload(&self, who: Caller, body: &[u8]) -> Answer {
        let (settings, orders) = match self.uploads_on() {
            Ok(on) => on,
            Err(a) => return a,
        };
        let request = match UploadRequest::parse(body) {
            Ok(r) => r,
            Err(p) => return Answer::problem(p),
        };
        let mut random = [0u8; 12];
        if let Err(e) = getrandom::fill(&mut random) {
            tracing::error!("no randomness for an upload key: {e}");
            return Answer::problem(Problem::unavailable("try again shortly"));
        }
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let Some(key) = ::uploads::object_key(who.vendor, &id, &request.content_type) else {
            return Answer::problem(Problem::unavailable("try again shortly"));
        };
        let now = SystemTime::now();
        let signed = match settings.store.presign_put(
            &key,
            &request.content_type,
            request.size,
            now,
            settings.valid_for,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("signing an upload URL failed: {e}");
                return Answer::problem(Problem::unavailable(
                    "the upload could not be signed; nothing was changed, try again shortly",
                ));
            }
        };
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default()
        };
        let conn = orders.lock().await;
        let created = uploads::create(
            &conn,
            who.vendor,
            &request,
            &key,
            settings.quota,
            secs(now),
            secs(signed.expires_at),
        )
        .await;
        match created {
            Ok(Ok((upload, usage))) => {
                let headers: serde_json::Map<String, serde_json::Value> = signed
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone().into()))
                    .collect();
                let mut json = upload.json();
                json["put"] = serde_json::json!({
                    "method": "PUT",
                    "url": signed.url,
                    "headers": headers,
                });
                json["quota"] = usage.json(settings.quota);
                Answer::json(201, &json)
                    .with("location", format!("/api/v1/vendor/uploads/{}", upload.id))
            }
            Ok(Err(used)) => Answer::problem(over_quota(&request, used, settings.quota)),
            Err(e) => internal(e),
        }
    }

    async fn uploads(&self, who: Caller) -> Answer {
        let (settings, orders) = match self.uploads_on() {
            Ok(on) => on,
            Err(a) => return a,
        };
        let conn = orders.lock().await;
        let listed = uploads::list(&conn, who.vendor, UPLOADS_PAGE).await;
        let used = uploads::usage(&conn, who.vendor, now_ms() / 1000).await;
        match (listed, used) {
            (Ok(list), Ok(used)) => Answer::json(
                200,
                &serde_json::json!({
                    "uploads": list.iter().map(uploads::Upload::json).collect::<Vec<_>>(),
                    "quota": used.json(settings.quota),
                }),
            ),
            (Err(e), _) | (_, Err(e)) => internal(e),
        }
    }

    async fn upload(&self, who: Caller, id: i64) -> Answer {
        let (_, orders) = match self.uploads_on() {
            Ok(on) => on,
            Err(a) => return a,
        };
        match uploads::load(&*orders.lock().await, who.vendor, id).await {
            Ok(Some(u)) => Answer::json(200, &u.json()),
            Ok(None) => Answer::problem(vendor_core::no_such_upload()),
            Err(e) => internal(e),
        }
    }
}

impl Vendors {
    /// Attaches an uploaded image to the vendor's product `id`: 202, and
    /// the upload's status tells how processing goes.
    async fn attach(&self, who: Caller, id: i64, body: &[u8]) -> Answer {
        let (_, orders) = match self.uploads_on() {
            Ok(on) => on,
            Err(a) => return a,
        };
        let Some(processor) = &self.processor else {
            return Answer::problem(Problem::unavailable(
                "image processing is off: this origin has no processor key for the object store",
            ));
        };
        let upload = match vendor_core::upload::parse_attach(body) {
            Ok(u) => u,
            Err(p) => return Answer::problem(p),
        };
        match products::load(&*self.catalog.lock().await, who.vendor, id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Answer::problem(vendor_core::not_yours()),
            Err(e) => return internal(e),
        }
        let found = match uploads::load(&*orders.lock().await, who.vendor, upload).await {
            Ok(Some(u)) => u,
            Ok(None) => return Answer::problem(no_such_upload_field()),
            Err(e) => return internal(e),
        };
        if found.status == "signed" {
            // Attaching before the bytes arrived is the likeliest mistake.
            match processor.store.head(&found.object_key).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Answer::problem(Problem::new(
                        409,
                        "nothing-uploaded",
                        "Nothing uploaded yet",
                        "nothing was uploaded to this upload's signed URL; PUT the file there \
                         first, then attach it",
                    ));
                }
                Err(e) => {
                    tracing::warn!("checking an upload failed: {e}");
                    return Answer::problem(
                        Problem::unavailable(
                            "the object store could not be reached; nothing was changed, try \
                             again shortly",
                        )
                        .with("retry_after", 2),
                    );
                }
            }
        }
        let conn = orders.lock().await;
        match uploads::attach(&conn, who.vendor, upload, id, now_ms() / 1000).await {
            Ok(Ok(attached)) => {
                self.wake.notify_one();
                Answer::json(202, &attached.json())
                    .with("location", format!("/api/v1/vendor/uploads/{upload}"))
            }
            Ok(Err(uploads::AttachRefusal::NoSuchUpload)) => {
                Answer::problem(no_such_upload_field())
            }
            Ok(Err(uploads::AttachRefusal::NotSigned(status))) => Answer::problem(
                Problem::new(
                    409,
                    "upload-not-attachable",
                    "The upload cannot be attached",
                    match status.as_str() {
                        "expired" => "its URL expired before anything was attached; ask for a \
                                      new upload URL"
                            .to_string(),
                        other => format!(
                            "it is {other} already; an upload is attached once, to one product"
                        ),
                    },
                )
                .with("upload_status", status),
            ),
            Err(e) => internal(e),
        }
    }
}

/// The upload named in an attach body is not the vendor's.
fn no_such_upload_field() -> Problem {
    let mut p = vendor_core::no_such_upload();
    p.extensions.insert("field".into(), "upload".into());
    p
}

/// 403: the upload would take the vendor past their quota.
fn over_quota(request: &UploadRequest, used: uploads::Usage, quota: Quota) -> Problem {
    Problem::new(
        403,
        "upload-quota-exceeded",
        "Upload quota exceeded",
        format!(
            "this upload of {} bytes would take you past your quota of {} objects and {} bytes \
             (you hold {} objects, {} bytes); uploads you never attach stop counting when \
             their URLs expire",
            request.size, quota.objects, quota.bytes, used.objects, used.bytes
        ),
    )
    .with("bytes_used", used.bytes)
    .with("bytes_limit", quota.bytes)
    .with("objects_used", used.objects)
    .with("objects_limit", quota.objects)
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
