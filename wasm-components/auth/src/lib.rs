//! The auth component: `/api/v1/auth/{signup,login,refresh,logout,me}`,
//! `/.well-known/jwks.json` and the storefront's `/account/` pages
//! (`storefront_core::account`: browser sessions in cookies), over the PoP's `identity` replica (and
//! `catalog`, for a new vendor's row).
//!
//! The flows live in `auth-core`; this file adapts them to Spin. Keys and
//! settings are read from variables on every request and parsed again only
//! when they change, so a rotated key is used as soon as the host has it.

use auth_core::flows::{self, Env, Request as AuthRequest};
use auth_core::{Identity, Response, Settings, settings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use problem::Problem;
use spin_glue::vars::Parsed;
use spin_glue::{SpinDb, vars};
use spin_sdk::http::Request;
use std::cell::RefCell;
use tokens::{KeySet, Signer};

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<Full<Bytes>> {
    spin_glue::spanned(env!("CARGO_PKG_NAME"), req, answer).await
}

async fn answer(req: Request) -> http::Response<Full<Bytes>> {
    into_http(serve(req).await)
}

thread_local! {
    static SIGNER: Parsed<Signer> = const { RefCell::new(None) };
    static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
}

async fn serve(req: Request) -> Response {
    let values = vars::read(&[
        settings::ISSUER,
        settings::AUDIENCE,
        settings::ACCESS_TTL,
        settings::SESSION_TTL,
        settings::LEEWAY,
    ])
    .await;
    let settings = match Settings::from_variables(|n| values.get(n).cloned()) {
        Ok(s) => s,
        Err(p) => return Response::problem(p),
    };
    let signer = vars::parsed(&SIGNER, settings::SIGNING_KEY, |s| {
        Signer::from_secret(s).ok()
    })
    .await;
    let keys = vars::parsed(&KEYS, settings::JWKS, |s| KeySet::from_jwks(s).ok()).await;
    let Some(keys) = keys else {
        return Response::problem(Problem::internal(
            "the token_jwks variable is missing or not a JWKS of Ed25519 public keys; \
             the operator must set it (cargo xtask keys)",
        ));
    };

    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Response::problem(Problem::bad_request("the request body could not be read"));
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let request = AuthRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        content_type: header("content-type"),
        body: &body,
        identity: Identity::from_headers(header),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let random = |buf: &mut [u8]| getrandom::fill(buf).expect("the host provides randomness");
    let log = |line: &str| eprintln!("{line}");
    let env = Env {
        now,
        settings: &settings,
        signer: signer.as_deref(),
        keys: &keys,
        random: &random,
        log: &log,
    };
    if request.path == "/account" || request.path.starts_with("/account/") {
        let page = storefront_core::account::AccountRequest {
            method: request.method,
            path: request.path,
            query: parts.uri.query().unwrap_or(""),
            content_type: request.content_type,
            body: request.body,
            cookie: header("cookie"),
            origin: header("origin"),
            host: header("host"),
            fetch_site: header("sec-fetch-site"),
            accept: header("accept"),
        };
        return storefront_core::account::handle(
            &page,
            &SpinDb::new("identity"),
            &SpinDb::new("catalog"),
            &env,
            |ms| spin_sdk::wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000),
        )
        .await;
    }
    flows::handle(
        request,
        &SpinDb::new("identity"),
        &SpinDb::new("catalog"),
        &env,
    )
    .await
}

fn into_http(resp: Response) -> http::Response<Full<Bytes>> {
    spin_glue::http_response(resp.status, &resp.headers, resp.body)
}
