//! One request through the chain a PoP runs for its route: the rate
//! limiter, then the token gate, then (on catalog reads and catalog pages)
//! the cache, then the app: the catalog, the auth flows, the checkout and
//! vendor gateways, or the shop's pages ([`crate::pages`]). The routes are
//! `spin.toml`'s.

use crate::cache::{self, Made};
use crate::forward;
use crate::gate;
use crate::hrana::Hrana;
use crate::limits::{self, Verdict};
use crate::pages;
use crate::reply::{Fields, Reply};
use crate::vars::{self, Parsed};
use auth_core::flows::{self, Request as AuthRequest};
use auth_core::settings;
use catalog_core::CursorSigner;
use futures_util::StreamExt;
use problem::Problem;
use std::cell::RefCell;
use storefront_core::account::AccountRequest;
use tokens::Signer;
use worker::{Env, Request};

/// The health path front doors check, as on Spin.
const HEALTH: &str = "/.well-known/spin/health";

/// Largest request body read (the auth and vendor bodies are smaller;
/// each flow applies its own bound too).
const MAX_BODY_BYTES: usize = 256 << 10;

thread_local! {
    static CURSORS: Parsed<CursorSigner> = const { RefCell::new(None) };
    static SIGNER: Parsed<Signer> = const { RefCell::new(None) };
}

/// Which app answers a path, as `spin.toml` routes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Catalog,
    Auth,
    Checkout,
    Vendor,
    Media,
    /// The storefront's catalog pages.
    Pages,
    /// The storefront's static files.
    Assets,
    /// The account pages (the auth component on a PoP).
    Account,
}

fn app_for(path: &str) -> Option<App> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if path == "/.well-known/jwks.json" || under("/api/v1/auth") {
        Some(App::Auth)
    } else if path == "/api/v1/checkout" || under("/api/v1/orders") {
        Some(App::Checkout)
    } else if under("/api/v1/vendor") {
        Some(App::Vendor)
    } else if under("/api/v1") {
        Some(App::Catalog)
    } else if under("/media") {
        Some(App::Media)
    } else if under("/assets") {
        Some(App::Assets)
    } else if under("/account") {
        Some(App::Account)
    } else if path == "/checkout" || under("/orders") {
        Some(App::Checkout)
    } else if under("/sell") {
        Some(App::Vendor)
    } else if matches!(path, "/" | "/search" | "/cart") || under("/c") || under("/p") {
        Some(App::Pages)
    } else {
        None
    }
}

pub async fn serve(mut req: Request, env: &Env) -> Reply {
    let url = match req.url() {
        Ok(u) => u,
        Err(_) => return Reply::problem(Problem::bad_request("the request target is not a URL")),
    };
    let path = url.path().to_string();
    let target = match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let method = req.method().to_string();
    if path == HEALTH {
        // What a front door health-checks on every edge location (a Spin
        // host answers it itself): this Worker is up and configured.
        let configured = vars::origin_url(env).is_some() && vars::get(env, "edge_token").is_some();
        let (status, text) = if configured {
            (200, "ok")
        } else {
            (503, "not configured")
        };
        let headers = vec![
            ("content-type".into(), "text/plain".into()),
            ("cache-control".into(), "no-store".into()),
        ];
        return Reply::new(status, headers, text.into());
    }
    let Some(app) = app_for(&path) else {
        return Reply::problem(pages::nowhere(&path));
    };
    let fields = Fields::of(&req);
    let limited = match limits::check(env, &path, &fields).await {
        Verdict::Admit(extra) => extra,
        Verdict::Refuse(reply) => return reply,
    };
    let mut reply = match chain(&mut req, env, app, &method, &path, &target, &fields).await {
        Ok(r) | Err(r) => r,
    };
    reply.headers.extend(limited);
    reply
}

async fn chain(
    req: &mut Request,
    env: &Env,
    app: App,
    method: &str,
    path: &str,
    target: &str,
    fields: &Fields,
) -> Result<Reply, Reply> {
    let origin = vars::origin_url(env);
    let token = vars::get(env, "edge_token");
    let (Some(origin_url), Some(token)) = (origin.clone(), token) else {
        return Err(Reply::problem(Problem::unavailable(
            "this edge location is not configured: the origin_url variable and the \
             edge_token secret must be set",
        )));
    };
    let identity_db = Hrana::new(&origin_url, "identity", &token);
    let catalog_db = Hrana::new(&origin_url, "catalog", &token);
    let credentials = ["authorization", "cookie"]
        .iter()
        .any(|h| fields.get(h).is_some());
    let query = target.split_once('?').map_or("", |(_, q)| q);
    // Media and static files are public, with no token gate in front, as
    // on a PoP.
    let (who, session) = match app {
        App::Media | App::Assets => (None, None),
        _ => gate::admit_page(env, &identity_db, method, path, query, fields).await?,
    };
    // A page admitted with the session cookie hands it on as the bearer
    // token it is, as the auth middleware does on a PoP.
    let with_session;
    let fields = match session {
        Some(bearer) => {
            with_session = fields.with("authorization", bearer);
            &with_session
        }
        None => fields,
    };
    let asked = pages::Asked {
        method,
        path,
        query,
        fields,
    };
    let reply = match app {
        App::Catalog => {
            cache::serve(&catalog_db, method, target, fields, credentials, || {
                catalog(env, &catalog_db, method, path, query)
            })
            .await
        }
        App::Pages => {
            cache::serve(&catalog_db, method, target, fields, credentials, || {
                pages::catalog_page(method, path, query, fields, |p, q| {
                    let db = &catalog_db;
                    async move { catalog_answer(env, db, "GET", &p, &q).await }
                })
            })
            .await
        }
        App::Assets => pages::asset(method, path, fields),
        App::Account => {
            let body = body(req, fields).await?;
            let call = AuthCall::Pages(AccountRequest {
                method,
                path,
                query,
                content_type: fields.get("content-type"),
                body: &body,
                cookie: fields.get("cookie"),
                origin: fields.get("origin"),
                host: fields.get("host"),
                fetch_site: fields.get("sec-fetch-site"),
                accept: fields.get("accept"),
            });
            auth(env, &identity_db, &catalog_db, call).await
        }
        App::Auth => {
            let body = body(req, fields).await?;
            let call = AuthCall::Api(AuthRequest {
                method,
                path,
                content_type: fields.get("content-type"),
                body: &body,
                identity: who,
            });
            auth(env, &identity_db, &catalog_db, call).await
        }
        App::Checkout => {
            let body = body(req, fields).await?;
            match storefront_core::orders::dispatch(method, path, query) {
                Some(route) => pages::orders(origin, route, &asked, body).await,
                None => forward::checkout(origin, method, target, fields, body)
                    .await
                    .unwrap_or_else(Reply::problem),
            }
        }
        App::Vendor => {
            let body = body(req, fields).await?;
            match storefront_core::sell::dispatch(method, path, query, fields.get("accept")) {
                Some(route) => {
                    let uploads = vars::get(env, "upload_origin");
                    pages::sell(origin, uploads, route, &asked, body).await
                }
                None => forward::vendor(origin, method, target, fields, body)
                    .await
                    .unwrap_or_else(Reply::problem),
            }
        }
        App::Media => {
            let (store, bucket) = (
                vars::get(env, "media_origin"),
                vars::get(env, "media_bucket"),
            );
            cache::serve(&catalog_db, method, path, fields, credentials, || {
                media(store, bucket, method, path)
            })
            .await
        }
    };
    Ok(reply)
}

/// The request body, at most [`MAX_BODY_BYTES`].
async fn body(req: &mut Request, fields: &Fields) -> Result<Vec<u8>, Reply> {
    let too_large = || Reply::problem(Problem::payload_too_large(MAX_BODY_BYTES as u64));
    if fields
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let Ok(mut stream) = req.stream() else {
        // No body at all.
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            Reply::problem(Problem::bad_request("the request body could not be read"))
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The media app: the image from the object store, or the problem; a
/// missing one is kept briefly like a PoP keeps it.
async fn media(store: Option<String>, bucket: Option<String>, method: &str, path: &str) -> Made {
    let reply = forward::media(store, bucket, method, path)
        .await
        .unwrap_or_else(|p| {
            let missing = p.status == 404;
            let mut reply = Reply::problem(p);
            if missing {
                reply.set("cache-control", media_core::MISSING);
            }
            reply
        });
    // Content-addressed: no change makes an image stale.
    Made {
        reply,
        high_water: Some(0),
    }
}

/// The catalog app: `catalog_core` plans the query, the origin runs it
/// with the change-log mark a stored answer needs, in one round trip.
async fn catalog(env: &Env, db: &Hrana, method: &str, path: &str, query: &str) -> Made {
    let (answer, high_water) = catalog_answer(env, db, method, path, query).await;
    Made {
        reply: answer.into(),
        high_water,
    }
}

/// One catalog answer and the change mark it is current as of.
async fn catalog_answer(
    env: &Env,
    db: &Hrana,
    method: &str,
    path: &str,
    query: &str,
) -> (catalog_core::Response, Option<u64>) {
    let signer = vars::parsed(env, &CURSORS, "cursor_secret", |s| {
        (s.len() >= 16).then(|| CursorSigner::new(s.as_bytes()))
    });
    let Some(signer) = signer else {
        let p = Problem::internal(
            "the cursor_secret variable is not set (or shorter than 16 bytes); \
             the operator must configure it",
        );
        return (catalog_core::Response::problem(p), None);
    };
    // HEAD is planned as GET so that its entry serves both; the body is
    // dropped on the way out.
    let creq = catalog_core::Request {
        method: if method == "HEAD" { "GET" } else { method },
        path,
        query,
        if_none_match: None,
    };
    let planned = match catalog_core::plan(&creq, &signer) {
        Ok(p) => p,
        Err(resp) => return (resp, None),
    };
    let ran = db
        .run(vec![
            cache::high_water_statement(),
            (planned.sql.clone(), planned.params.clone()),
        ])
        .await;
    let (rows, high_water) = match ran {
        Ok(mut results) => {
            let rows = results.pop().unwrap_or_default();
            let mark = results
                .pop()
                .and_then(|r| r.first()?.first()?.as_i64())
                .map(|m| m as u64);
            (Ok(rows), mark)
        }
        Err(e) => {
            worker::console_error!("catalog: query failed: {e}");
            (Err(e.0), None)
        }
    };
    (
        catalog_core::render(&planned, rows, &creq, &signer),
        high_water,
    )
}

/// An account request: the API's, or the account pages'.
enum AuthCall<'a> {
    Api(AuthRequest<'a>),
    Pages(AccountRequest<'a>),
}

async fn auth(env: &Env, identity_db: &Hrana, catalog_db: &Hrana, call: AuthCall<'_>) -> Reply {
    let settings = match gate::settings(env) {
        Ok(s) => s,
        Err(p) => return Reply::problem(p),
    };
    let keys = match gate::keys(env) {
        Ok(k) => k,
        Err(p) => return Reply::problem(p),
    };
    let signer = vars::parsed(env, &SIGNER, settings::SIGNING_KEY, |s| {
        Signer::from_secret(s).ok()
    });
    let random = |buf: &mut [u8]| fill_random(buf);
    let log = |line: &str| worker::console_log!("{line}");
    let flow_env = flows::Env {
        now: vars::now_secs(),
        settings: &settings,
        signer: signer.as_deref(),
        keys: &keys,
        random: &random,
        log: &log,
    };
    match call {
        AuthCall::Api(request) => flows::handle(request, identity_db, catalog_db, &flow_env)
            .await
            .into(),
        AuthCall::Pages(request) => {
            let sleep = |ms: u64| worker::Delay::from(std::time::Duration::from_millis(ms));
            storefront_core::account::handle(&request, identity_db, catalog_db, &flow_env, sleep)
                .await
                .into()
        }
    }
}

/// Fills `buf` from the runtime's CSPRNG (`crypto.getRandomValues`).
fn fill_random(buf: &mut [u8]) {
    use worker::wasm_bindgen::JsCast;
    let crypto = worker::js_sys::Reflect::get(&worker::js_sys::global(), &"crypto".into())
        .expect("the Workers runtime has crypto")
        .unchecked_into::<worker::web_sys::Crypto>();
    // At most 65,536 bytes per call.
    for chunk in buf.chunks_mut(65_536) {
        crypto
            .get_random_values_with_u8_array(chunk)
            .expect("crypto.getRandomValues works");
    }
}

#[cfg(test)]
mod tests {
    use super::{App, app_for};

    #[test]
    fn routes_are_spin_tomls() {
        assert_eq!(app_for("/api/v1/products"), Some(App::Catalog));
        assert_eq!(app_for("/api/v1/auth/login"), Some(App::Auth));
        assert_eq!(app_for("/.well-known/jwks.json"), Some(App::Auth));
        assert_eq!(app_for("/api/v1/checkout"), Some(App::Checkout));
        assert_eq!(app_for("/api/v1/orders"), Some(App::Checkout));
        assert_eq!(app_for("/api/v1/orders/abc"), Some(App::Checkout));
        assert_eq!(app_for("/api/v1/vendor/products"), Some(App::Vendor));
        assert_eq!(app_for("/api/v1/authx"), Some(App::Catalog));
        assert_eq!(app_for("/media/x.webp"), Some(App::Media));
        assert_eq!(app_for("/"), Some(App::Pages));
        assert_eq!(app_for("/p/3"), Some(App::Pages));
        assert_eq!(app_for("/cart"), Some(App::Pages));
        assert_eq!(app_for("/assets/app.0123.js"), Some(App::Assets));
        assert_eq!(app_for("/account/signin"), Some(App::Account));
        assert_eq!(app_for("/checkout"), Some(App::Checkout));
        assert_eq!(app_for("/orders/ord_1"), Some(App::Checkout));
        assert_eq!(app_for("/sell/products/1"), Some(App::Vendor));
        assert_eq!(app_for("/pricing"), None);
        assert_eq!(app_for("/cartx"), None);
    }
}
