//! The auth middleware: runs before the app component on every route
//! (Spin 4.1 `dependencies.middleware`), imports and exports
//! `wasi:http/handler@0.3.0`.
//!
//! For each request it removes every `edgeshop-auth-*` header the client
//! sent, refuses paths with two spellings, verifies a bearer token if one
//! is present (keys from `token_jwks`, session checked against the local
//! `identity` replica's revocations), applies the route rules of
//! `cdn-config/auth.toml`, and hands the verified identity to the next
//! component in `edgeshop-auth-*` headers. All decisions are in
//! `auth-core`.
//!
//! It has only what it inherits from the app component it guards: the
//! `token_*` variables and the `identity` database.

use auth_core::gate::{self, GateError, VerifiedCache};
use auth_core::rules::{self, Rules};
use auth_core::{Response, Settings, identity, settings};
use bytes::Bytes;
use http_body_util::Full;
use problem::Problem;
use spin_glue::SpinDb;
use spin_glue::vars::{self, Parsed};
use spin_sdk::http::{IntoResponse, Request};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use tokens::KeySet;

thread_local! {
    static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
    /// Tokens verified by this instance, and the key set and policy they
    /// were verified under.
    static VERIFIED: RefCell<(Option<Rc<KeySet>>, String, VerifiedCache)> =
        RefCell::new((None, String::new(), VerifiedCache::default()));
}

/// The rules built into this component.
fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    // Checked by auth-core's tests; a broken file cannot ship.
    RULES.get_or_init(|| Rules::parse(rules::SHIPPED).expect("cdn-config/auth.toml is valid"))
}

#[spin_sdk::http_service]
async fn handle(mut req: Request) -> impl IntoResponse {
    let reserved: Vec<_> = req
        .headers()
        .keys()
        .filter(|name| identity::is_reserved(name.as_str()))
        .cloned()
        .collect();
    for name in reserved {
        req.headers_mut().remove(name);
    }
    if !rules::is_normal_path(req.uri().path()) {
        return into_http(Response::problem(Problem::bad_request(
            "the path has empty, `.` or `..` segments or encoded slashes or dots; \
             send it in its plain form",
        )))
        .into_response();
    }
    match admit(&req).await {
        Ok(Some(who)) => {
            for (name, value) in who.headers() {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    req.headers_mut().insert(name, value);
                }
            }
        }
        Ok(None) => {}
        Err(resp) => return into_http(resp).into_response(),
    }
    match spin_glue::chain::next(req).await {
        Ok(resp) => spin_glue::chain::respond(resp),
        Err(e) => {
            eprintln!("auth-middleware: the next component failed: {e:?}");
            into_http(Response::problem(Problem::new(
                502,
                "bad-gateway",
                "Bad gateway",
                "the component behind the auth check failed; try again",
            )))
            .into_response()
        }
    }
}

/// Who is calling, if anyone, and whether they may use this route.
async fn admit(req: &Request) -> Result<Option<auth_core::Identity>, Response> {
    let authorization = match req.headers().get(http::header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| gate_denied("the Authorization header is not valid text"))?,
        ),
    };
    let need = rules().requirement(req.uri().path());
    if authorization.is_none() {
        gate::authorize(need, None).map_err(|d| d.response())?;
        return Ok(None);
    }
    let values = vars::read(&[settings::ISSUER, settings::AUDIENCE, settings::LEEWAY]).await;
    let settings =
        Settings::from_variables(|n| values.get(n).cloned()).map_err(Response::problem)?;
    let keys = vars::parsed(&KEYS, settings::JWKS, |s| KeySet::from_jwks(s).ok())
        .await
        .ok_or_else(|| {
            Response::problem(Problem::internal(
                "tokens cannot be checked: the token_jwks variable is missing or not a JWKS \
                 of Ed25519 public keys; the operator must set it",
            ))
        })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let policy = settings.policy();
    let stamp = format!("{policy:?}");
    let who = VERIFIED
        .with_borrow_mut(|(verified_keys, verified_policy, cache)| {
            // A new key set (a key retired) or policy empties the cache.
            let same_keys = verified_keys.as_ref().is_some_and(|k| Rc::ptr_eq(k, &keys));
            if !same_keys || *verified_policy != stamp {
                cache.clear();
                *verified_keys = Some(keys.clone());
                *verified_policy = stamp;
            }
            gate::authenticate_cached(authorization, &keys, &policy, now, cache)
        })
        .map_err(|d| d.response())?;
    if let Some(who) = &who {
        match gate::check_revoked(&SpinDb("identity"), who).await {
            Ok(()) => {}
            Err(GateError::Denied(d)) => return Err(d.response()),
            Err(GateError::Database(e)) => {
                eprintln!("auth-middleware: revocation check failed: {e}");
                return Err(Response::problem(Problem::unavailable(
                    "the session could not be checked; try again shortly",
                ))
                .with_header("retry-after", "1"));
            }
        }
    }
    gate::authorize(need, who.as_ref()).map_err(|d| d.response())?;
    Ok(who)
}

fn gate_denied(detail: &str) -> Response {
    gate::Denied {
        status: 401,
        error: Some("invalid_request"),
        detail: detail.to_string(),
    }
    .response()
}

fn into_http(resp: Response) -> http::Response<Full<Bytes>> {
    spin_glue::http_response(resp.status, &resp.headers, resp.body)
}
