//! The token gate in front of every route, as the auth middleware is on a
//! PoP: paths with two spellings are refused, a bearer token is verified
//! (keys from `token_jwks`, its session live in `identity` at the origin),
//! and the route rules of `cdn-config/auth.toml` are applied. The
//! decisions are `auth_core::gate`'s.

use crate::hrana::Hrana;
use crate::reply::{Fields, Reply};
use crate::vars::{self, Parsed};
use auth_core::gate::{self, GateError, Verifier};
use auth_core::rules::{self, Rules};
use auth_core::{Identity, Settings, settings, web};
use problem::Problem;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;
use tokens::KeySet;
use worker::Env;

thread_local! {
    pub static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
    /// Tokens this isolate verified.
    static VERIFIED: RefCell<Verifier> = RefCell::new(Verifier::default());
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    // Checked by auth-core's tests; a broken file cannot ship.
    RULES.get_or_init(|| Rules::parse(rules::SHIPPED).expect("cdn-config/auth.toml is valid"))
}

/// The settings the token rules use.
pub fn settings(env: &Env) -> Result<Settings, Problem> {
    Settings::from_variables(|n| vars::get(env, n))
}

/// The verification keys, or the problem an operator must fix.
pub fn keys(env: &Env) -> Result<Rc<KeySet>, Problem> {
    vars::parsed(env, &KEYS, settings::JWKS, |s| KeySet::from_jwks(s).ok()).ok_or_else(|| {
        Problem::internal(
            "tokens cannot be checked: the token_jwks variable is missing or not a JWKS \
             of Ed25519 public keys; the operator must set it",
        )
    })
}

/// Who is calling, if anyone, and whether they may use `path`.
pub async fn admit(
    env: &Env,
    identity_db: &Hrana,
    path: &str,
    authorization: Option<&str>,
) -> Result<Option<Identity>, Reply> {
    if !rules::is_normal_path(path) {
        return Err(Reply::problem(Problem::bad_request(
            "the path has empty, `.` or `..` segments or encoded slashes or dots; \
             send it in its plain form",
        )));
    }
    let need = rules().requirement(path);
    let Some(authorization) = authorization else {
        gate::authorize(need, None).map_err(|d| Reply::from(d.response()))?;
        return Ok(None);
    };
    let settings = settings(env).map_err(Reply::problem)?;
    let keys = keys(env).map_err(Reply::problem)?;
    let now = vars::now_secs();
    let who = VERIFIED
        .with_borrow_mut(|v| v.authenticate(Some(authorization), &keys, &settings.policy(), now))
        .map_err(|d| Reply::from(d.response()))?;
    if let Some(who) = &who {
        let sleep = |ms: u64| worker::Delay::from(Duration::from_millis(ms));
        match gate::check_session(identity_db, who, now, sleep).await {
            Ok(()) => {}
            Err(GateError::Denied(d)) => return Err(Reply::from(d.response())),
            Err(GateError::Database(e)) => {
                worker::console_error!("gate: the session could not be checked: {e}");
                return Err(gate::session_unavailable().into());
            }
        }
    }
    gate::authorize(need, who.as_ref()).map_err(|d| Reply::from(d.response()))?;
    Ok(who)
}

/// [`admit`], with the browser session's access cookie taken on the pages
/// `cdn-config/auth.toml` marks `session = "cookie"` when no bearer token
/// is sent, as the auth middleware does on a PoP: a change made with it
/// must be JSON from this site (403), and a browser without a live
/// session is sent to renew it and come back (303). Also answers the
/// bearer value taken from the cookie, for the app to hand on.
pub async fn admit_page(
    env: &Env,
    identity_db: &Hrana,
    method: &str,
    path: &str,
    query: &str,
    fields: &Fields,
) -> Result<(Option<Identity>, Option<String>), Reply> {
    let mut authorization = fields.get("authorization").map(str::to_string);
    let cookie_page = authorization.is_none() && rules().takes_session_cookie(path);
    let mut session = None;
    if cookie_page {
        let bearer = web::cookie_credential(
            method,
            fields.get("cookie"),
            fields.get("sec-fetch-site"),
            fields.get("origin"),
            fields.get("host"),
            fields.get("content-type"),
        )
        .map_err(Reply::problem)?;
        session.clone_from(&bearer);
        authorization = bearer;
    }
    match admit(env, identity_db, path, authorization.as_deref()).await {
        Ok(who) => Ok((who, session)),
        Err(r)
            if cookie_page && r.status == 401 && web::wants_page(method, fields.get("accept")) =>
        {
            let headers = vec![
                ("location".to_string(), web::renew_then(path, query)),
                ("cache-control".to_string(), "no-store".to_string()),
            ];
            Err(Reply::new(303, headers, Vec::new()))
        }
        Err(r) => Err(r),
    }
}
