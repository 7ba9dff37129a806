//! The auth middleware: runs before the app component on every route
//! (Spin 4.1 `dependencies.middleware`), imports and exports
//! `wasi:http/handler@0.3.0`.
//!
//! For each request it removes every identity header the client sent
//! (the `edgeshop-auth-*` fields a component behind it reads), refuses
//! paths with two spellings, verifies a bearer token if one is present
//! (keys from `token_jwks`; its session must be live in the local
//! `identity` replica), applies the route rules of
//! `cdn-config/auth.toml`, and hands the verified identity to the next
//! component in `edgeshop-auth-*` headers. All decisions are in
//! `auth-core`.
//!
//! It has only what it inherits from the app component it guards: the
//! `token_*` variables and the `identity` database.

use auth_core::gate::{self, GateError, Verifier};
use auth_core::rules::{self, Rules};
use auth_core::{Response, Settings, identity, settings, web};
use problem::Problem;
use spin_glue::SpinDb;
use spin_glue::layer::{self, Middleware, Request, RequestFields};
use spin_glue::vars::{self, Parsed};
use spin_sdk::http::IntoResponse;
use std::cell::RefCell;
use std::sync::OnceLock;
use tokens::KeySet;

thread_local! {
    static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
    /// Tokens verified by this instance.
    static VERIFIED: RefCell<Verifier> = RefCell::new(Verifier::default());
}

/// The rules built into this component.
fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    // Checked by auth-core's tests; a broken file cannot ship.
    RULES.get_or_init(|| Rules::parse(rules::SHIPPED).expect("cdn-config/auth.toml is valid"))
}

struct Auth;

spin_glue::export_layer!(Auth);

impl Middleware for Auth {
    async fn handle(req: Request, fields: RequestFields) -> Answer {
        handle(req, fields).await
    }
}

type Answer = Result<layer::Response, layer::ErrorCode>;

async fn handle(req: Request, request_fields: RequestFields) -> Answer {
    let path = layer::path(&req);
    if !rules::is_normal_path(&path) {
        return answer(Response::problem(Problem::bad_request(
            "the path has empty, `.` or `..` segments or encoded slashes or dots; \
             send it in its plain form",
        )));
    }
    let fields = request_fields.of(&req);
    let mut authorization = fields.get(AUTHORIZATION).into_iter().next();
    let forged = identity::NAMES.iter().any(|name| fields.has(name));
    // Pages auth.toml marks take the browser session's access cookie when
    // no bearer token is sent (never the API: a cookie cannot act there).
    let cookie_page = authorization.is_none() && rules().takes_session_cookie(&path);
    // Read only where used: this runs before every request.
    let (method, accept) = if cookie_page {
        (method_name(&req), layer::field(fields, "accept"))
    } else {
        (String::new(), None)
    };
    let mut from_cookie = false;
    if cookie_page {
        let get = |name: &str| layer::field(fields, name);
        match web::cookie_credential(
            &method,
            get("cookie").as_deref(),
            get("sec-fetch-site").as_deref(),
            get("origin").as_deref(),
            get("host").as_deref(),
            get("content-type").as_deref(),
        ) {
            Ok(bearer) => {
                from_cookie = bearer.is_some();
                authorization = bearer.map(String::into_bytes);
            }
            Err(p) => return answer(Response::problem(p)),
        }
    }
    drop(request_fields);
    let who = match admit(&path, authorization.as_deref()).await {
        Ok(who) => who,
        // A browser on a page that needs a session it lacks (or whose
        // access token expired) renews it and comes back, or signs in.
        Err(resp)
            if cookie_page && resp.status == 401 && web::wants_page(&method, accept.as_deref()) =>
        {
            let target = req.get_path_with_query().unwrap_or_default();
            let (_, query) = target.split_once('?').unwrap_or((&target, ""));
            return answer(
                Response {
                    status: 303,
                    headers: vec![],
                    body: Vec::new(),
                }
                .with_header("location", web::renew_then(&path, query))
                .with_header("cache-control", "no-store"),
            );
        }
        Err(resp) => return answer(resp),
    };
    // The request is rebuilt only when its identity fields change; an
    // anonymous request without forged ones goes on as it came.
    let req = match &who {
        // The page's component forwards the session as the bearer token
        // it is, so the origin verifies it like any other.
        Some(who) if from_cookie => {
            let mut set = who.headers().to_vec();
            let bearer = String::from_utf8(authorization.unwrap_or_default()).unwrap_or_default();
            set.push((AUTHORIZATION, bearer));
            layer::with_request_fields(req, &identity::NAMES, &set)?
        }
        Some(who) => layer::with_request_fields(req, &identity::NAMES, &who.headers())?,
        None if forged => layer::with_request_fields(req, &identity::NAMES, &[])?,
        None => req,
    };
    match layer::next(req).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            eprintln!("auth-middleware: the next component failed: {e:?}");
            answer(Response::problem(Problem::new(
                502,
                "bad-gateway",
                "Bad gateway",
                "the component behind the auth check failed; try again",
            )))
        }
    }
}

const AUTHORIZATION: &str = "authorization";

fn method_name(req: &Request) -> String {
    use spin_sdk::wasip3::http::types::Method;
    match req.get_method() {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(m) => m,
    }
}

/// Who is calling, if anyone, and whether they may use this route.
async fn admit(
    path: &str,
    authorization: Option<&[u8]>,
) -> Result<Option<auth_core::Identity>, Response> {
    let authorization = match authorization {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .map_err(|_| gate_denied("the Authorization header is not valid text"))?,
        ),
    };
    let need = rules().requirement(path);
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
    let who = VERIFIED
        .with_borrow_mut(|v| v.authenticate(authorization, &keys, &settings.policy(), now))
        .map_err(|d| d.response())?;
    if let Some(who) = &who {
        match gate::check_session(&SpinDb::new("identity"), who, now, |ms| {
            spin_sdk::wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000)
        })
        .await
        {
            Ok(()) => {}
            Err(GateError::Denied(d)) => return Err(d.response()),
            Err(GateError::Database(e)) => {
                eprintln!("auth-middleware: session check failed: {e}");
                return Err(gate::session_unavailable());
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

fn answer(resp: Response) -> Answer {
    spin_glue::http_response(resp.status, &resp.headers, resp.body).into_response()
}
