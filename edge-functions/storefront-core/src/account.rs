//! Browser sessions: sign-up, sign-in, sign-out and the account page as
//! HTML forms under `/account/`, over the account API's own flows
//! (`auth-core`), so every rule of the API (password policy, throttling
//! of guesses, refresh-token rotation, revocation) holds for browsers too.
//!
//! **Where the tokens live, and why.** In `HttpOnly` cookies, never where
//! a script can read them: pages work without JavaScript, so the server
//! must see who is signed in, and a token a script cannot read cannot be
//! stolen by one.
//! - `__Host-edgeshop-access`: the 5-minute access token; `Path=/`,
//!   `Secure`, `HttpOnly`, `SameSite=Lax` (a link from elsewhere still
//!   opens the account signed in). Only `/account` pages and the pages
//!   `cdn-config/auth.toml` marks `session = "cookie"` read it: the API
//!   takes bearer tokens only, so a cookie can never act on the API.
//! - `__Secure-edgeshop-refresh`: the refresh token; `Path=/account/`,
//!   `SameSite=Strict`: sent only to these pages, never on a request
//!   another site starts. Every use rotates it.
//! - `__Host-edgeshop-csrf`: a random value every form repeats in a hidden
//!   field (double submit); a `POST` also has to come from this site
//!   (`Sec-Fetch-Site`, else `Origin` against `Host`).

use crate::{html, security_headers};
use auth_core::flows::{self, Env};
use auth_core::gate::{self, GateError};
use auth_core::{Identity, Response};
use edge_sql::Database;
use problem::Problem;
use serde_json::{Value, json};

pub use auth_core::web::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE};
/// Largest form body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the adapter tells us about a request to `/account/...`.
#[derive(Debug, Clone, Copy)]
pub struct AccountRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub cookie: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
    pub accept: Option<&'a str>,
}

impl AccountRequest<'_> {
    fn cookie(&self, name: &str) -> Option<&str> {
        auth_core::web::cookie(self.cookie?, name)
    }

    /// An error as a page for a browser, else as a problem.
    fn error(&self, p: Problem) -> Response {
        if crate::wants_html(self.accept) {
            page_error(p)
        } else {
            Response::problem(p)
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Serves one request to `/account/...`. `sleep` waits that many
/// milliseconds (for a session still replicating to this PoP).
pub async fn handle<F, Fut>(
    req: &AccountRequest<'_>,
    identity_db: &impl Database,
    catalog_db: &impl Database,
    env: &Env<'_>,
    sleep: F,
) -> Response
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let allowed: &[&str] = match req.path {
        "/account" => &["GET", "HEAD"],
        "/account/signin" | "/account/signup" => &["GET", "HEAD", "POST"],
        "/account/signout" => &["POST"],
        "/account/refresh" => &["GET"],
        _ => {
            return req.error(Problem::not_found(format!(
                "there is no page at {}; your account is at /account",
                req.path
            )));
        }
    };
    if !allowed.contains(&req.method) {
        return req.error(Problem::method_not_allowed(req.method, allowed));
    }
    let next = safe_next(req.param("next").as_deref());
    let head = req.method == "HEAD";
    let mut resp = match (req.path, req.method) {
        ("/account", _) => match signed_in(req, identity_db, env, &sleep).await {
            Ok(Some(who)) => account(req, who, identity_db, env).await,
            Ok(None) => see_other(&format!("/account/refresh?next={}", enc("/account"))),
            Err(r) => r,
        },
        ("/account/signin" | "/account/signup", "GET" | "HEAD") => {
            let shop = req.param("shop").map(|_| ("", ""));
            form_page(req, env, Form::of(req.path), &next, "", None, 200, shop)
        }
        ("/account/signin" | "/account/signup", _) => {
            submit(req, identity_db, catalog_db, env, Form::of(req.path)).await
        }
        ("/account/signout", _) => signout(req, identity_db, env, &sleep).await,
        _ => refresh(req, identity_db, env, &next).await,
    };
    if head {
        resp.body.clear();
    }
    resp
}

/// Where to go after signing in: a path on this site, nothing else (an
/// open redirect would hand a phishing page our sign-in).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) =>
        {
            n.to_string()
        }
        _ => "/account".to_string(),
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    SignIn,
    SignUp,
}

impl Form {
    fn of(path: &str) -> Form {
        if path == "/account/signup" {
            Form::SignUp
        } else {
            Form::SignIn
        }
    }
}

fn cookie(name: &str, value: &str, path: &str, same_site: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite={same_site}"
    )
}

fn clear_session() -> [String; 2] {
    [
        cookie(ACCESS_COOKIE, "", "/", "Lax", 0),
        cookie(REFRESH_COOKIE, "", "/account/", "Strict", 0),
    ]
}

pub(crate) fn html_response(status: u16, body: String) -> Response {
    let mut headers = vec![
        ("content-type".to_string(), html::CONTENT_TYPE.to_string()),
        // Personal, and forms carry a per-browser token.
        ("cache-control".to_string(), "private, no-store".to_string()),
    ];
    headers.extend(security_headers());
    Response {
        status,
        headers,
        body: body.into_bytes(),
    }
}

fn see_other(location: &str) -> Response {
    Response {
        status: 303,
        headers: vec![
            ("location".to_string(), location.to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ],
        body: Vec::new(),
    }
}

fn page_error(p: Problem) -> Response {
    let mut r = html_response(p.status, html::problem_page(&p).into_string());
    for (k, v) in p.header_fields() {
        if k == "allow" || k == "retry-after" {
            r.headers.push((k, v));
        }
    }
    r
}

fn set_cookies(mut r: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    r.headers
        .extend(cookies.into_iter().map(|c| ("set-cookie".to_string(), c)));
    r
}

/// The CSRF value of this browser, and whether it must be set.
fn csrf_token(req: &AccountRequest<'_>, env: &Env<'_>) -> (String, bool) {
    match req.cookie(CSRF_COOKIE) {
        Some(t)
            if t.len() >= 32
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            (t.to_string(), false)
        }
        _ => {
            let mut buf = [0u8; 32];
            (env.random)(&mut buf);
            (buf.iter().map(|b| format!("{b:02x}")).collect(), true)
        }
    }
}

fn with_csrf(r: Response, token: &str, new: bool) -> Response {
    if new {
        set_cookies(r, [cookie(CSRF_COOKIE, token, "/", "Strict", 60 * 60 * 24)])
    } else {
        r
    }
}

#[allow(clippy::too_many_arguments)] // one form's whole state
fn form_page(
    req: &AccountRequest<'_>,
    env: &Env<'_>,
    form: Form,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: u16,
    shop: Option<(&str, &str)>,
) -> Response {
    let (csrf, new) = csrf_token(req, env);
    let body = match form {
        Form::SignIn => html::sign_in(&csrf, next, email, error),
        Form::SignUp => html::sign_up(&csrf, next, email, error, shop),
    };
    with_csrf(html_response(status, body.into_string()), &csrf, new)
}

/// The form's fields, after the checks every state change passes: a form
/// body of bounded size, from this site, repeating this browser's token.
fn checked_form(req: &AccountRequest<'_>) -> Result<Vec<(String, String)>, Problem> {
    let form_type = req
        .content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the form as application/x-www-form-urlencoded, as a browser does",
        ));
    }
    if req.body.len() > MAX_FORM_BYTES {
        return Err(Problem::payload_too_large(MAX_FORM_BYTES as u64));
    }
    let forbidden = || {
        Problem::new(
            403,
            "form-expired",
            "This form could not be accepted",
            "the form has expired or was sent from another site; reload the page and try again",
        )
    };
    let same_site = auth_core::web::same_origin(req.fetch_site, req.origin, req.host);
    if !same_site {
        return Err(forbidden());
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let sent = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_bytes());
    let expected = req.cookie(CSRF_COOKIE).map(str::as_bytes);
    match (sent, expected) {
        (Some(s), Some(e)) if constant_time_eq(s, e) => Ok(fields),
        _ => Err(forbidden()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Runs an account API flow in-process.
async fn flow(
    path: &str,
    body: Option<Value>,
    identity: Option<Identity>,
    identity_db: &impl Database,
    catalog_db: &impl Database,
    env: &Env<'_>,
) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let r = flows::handle(
        flows::Request {
            method: if path.ends_with("/me") { "GET" } else { "POST" },
            path,
            content_type: Some("application/json"),
            body: &bytes,
            identity,
        },
        identity_db,
        catalog_db,
        env,
    )
    .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// A flow for the account `who` is signed in as (`me`, `logout`).
async fn as_account(
    path: &str,
    who: Identity,
    identity_db: &impl Database,
    env: &Env<'_>,
) -> (u16, Value) {
    flow(path, None, Some(who), identity_db, identity_db, env).await
}

/// The refresh flow for `token`: a new pair, the old one rotated out.
async fn renew(token: &str, identity_db: &impl Database, env: &Env<'_>) -> (u16, Value) {
    let body = json!({ "refresh_token": token });
    flow(
        "/api/v1/auth/refresh",
        Some(body),
        None,
        identity_db,
        identity_db,
        env,
    )
    .await
}

/// The cookies that carry a fresh token pair.
fn session_cookies(tokens: &Value) -> [String; 2] {
    [
        cookie(
            ACCESS_COOKIE,
            tokens["access_token"].as_str().unwrap_or_default(),
            "/",
            "Lax",
            tokens["expires_in"].as_i64().unwrap_or(0),
        ),
        cookie(
            REFRESH_COOKIE,
            tokens["refresh_token"].as_str().unwrap_or_default(),
            "/account/",
            "Strict",
            tokens["refresh_token_expires_in"].as_i64().unwrap_or(0),
        ),
    ]
}

async fn submit(
    req: &AccountRequest<'_>,
    identity_db: &impl Database,
    catalog_db: &impl Database,
    env: &Env<'_>,
    form: Form,
) -> Response {
    let fields = match checked_form(req) {
        Ok(f) => f,
        Err(p) => return req.error(p),
    };
    let next = safe_next(Some(field(&fields, "next")));
    let email = field(&fields, "email");
    let (path, ok) = match form {
        Form::SignIn => ("/api/v1/auth/login", 200),
        Form::SignUp => ("/api/v1/auth/signup", 201),
    };
    let mut body = json!({ "email": email, "password": field(&fields, "password") });
    // A vendor's sign-up names the shop; the account API makes both.
    let shop = (form == Form::SignUp && fields.iter().any(|(k, _)| k == "shop_name"))
        .then(|| (field(&fields, "shop_name"), field(&fields, "shop_country")));
    if let Some((name, country)) = shop {
        body["kind"] = json!("vendor");
        body["vendor"] = json!({ "name": name, "country": country.trim().to_ascii_uppercase() });
    }
    let (status, answer) = flow(path, Some(body), None, identity_db, catalog_db, env).await;
    if status == ok {
        return set_cookies(see_other(&next), session_cookies(&answer));
    }
    let detail = answer["detail"]
        .as_str()
        .unwrap_or("that did not work; try again shortly");
    form_page(req, env, form, &next, email, Some(detail), status, shop)
}

/// Who the access cookie names, if it is valid and its session live.
async fn signed_in<F, Fut>(
    req: &AccountRequest<'_>,
    db: &impl Database,
    env: &Env<'_>,
    sleep: &F,
) -> Result<Option<Identity>, Response>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(token) = req.cookie(ACCESS_COOKIE) else {
        return Ok(None);
    };
    let bearer = format!("Bearer {token}");
    let Ok(Some(who)) =
        gate::authenticate(Some(&bearer), env.keys, &env.settings.policy(), env.now)
    else {
        return Ok(None);
    };
    match gate::check_session(db, &who, env.now, sleep).await {
        Ok(()) => Ok(Some(who)),
        Err(GateError::Denied(_)) => Ok(None),
        Err(GateError::Database(e)) => {
            (env.log)(&format!("account: session check failed: {e}"));
            Err(req.error(Problem::unavailable(
                "your session could not be checked; try again shortly",
            )))
        }
    }
}

async fn account(
    req: &AccountRequest<'_>,
    who: Identity,
    identity_db: &impl Database,
    env: &Env<'_>,
) -> Response {
    let (status, me) = as_account("/api/v1/auth/me", who, identity_db, env).await;
    if status != 200 {
        return req.error(Problem::unavailable(
            me["detail"]
                .as_str()
                .unwrap_or("your account could not be read; try again shortly"),
        ));
    }
    let (csrf, new) = csrf_token(req, env);
    with_csrf(
        html_response(200, html::account(&me, &csrf).into_string()),
        &csrf,
        new,
    )
}

async fn refresh(
    req: &AccountRequest<'_>,
    identity_db: &impl Database,
    env: &Env<'_>,
    next: &str,
) -> Response {
    let sign_in = format!("/account/signin?next={}", enc(next));
    // A navigation another site started carries no Strict cookie anyway;
    // say so plainly rather than sign the person out.
    if req.fetch_site == Some("cross-site") {
        return see_other(&sign_in);
    }
    let Some(token) = req.cookie(REFRESH_COOKIE) else {
        return see_other(&sign_in);
    };
    let (status, answer) = renew(token, identity_db, env).await;
    match status {
        200 => set_cookies(see_other(next), session_cookies(&answer)),
        503 => req.error(Problem::unavailable(
            "signing in is unavailable right now (the origin cannot be reached); browsing still works",
        )),
        _ => set_cookies(see_other(&sign_in), clear_session()),
    }
}

async fn signout<F, Fut>(
    req: &AccountRequest<'_>,
    identity_db: &impl Database,
    env: &Env<'_>,
    sleep: &F,
) -> Response
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Err(p) = checked_form(req) {
        return req.error(p);
    }
    let mut who = match signed_in(req, identity_db, env, sleep).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    // An expired access token still names a session the refresh token can
    // reach: end that one too, rather than leave it live.
    if who.is_none()
        && let Some(token) = req.cookie(REFRESH_COOKIE)
    {
        let (status, tokens) = renew(token, identity_db, env).await;
        if status == 200 {
            let bearer = format!(
                "Bearer {}",
                tokens["access_token"].as_str().unwrap_or_default()
            );
            who = gate::authenticate(Some(&bearer), env.keys, &env.settings.policy(), env.now)
                .ok()
                .flatten();
        }
    }
    if let Some(who) = who {
        let (status, answer) = as_account("/api/v1/auth/logout", who, identity_db, env).await;
        if status != 204 {
            return req.error(Problem::unavailable(
                answer["detail"]
                    .as_str()
                    .unwrap_or("signing out failed; try again shortly"),
            ));
        }
    }
    set_cookies(see_other("/"), clear_session())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(body: &'a [u8], cookie: Option<&'a str>) -> AccountRequest<'a> {
        AccountRequest {
            method: "POST",
            path: "/account/signin",
            query: "",
            content_type: Some("application/x-www-form-urlencoded"),
            body,
            cookie,
            origin: Some("http://shop.example"),
            host: Some("shop.example"),
            fetch_site: Some("same-origin"),
            accept: Some("text/html"),
        }
    }

    const TOKEN: &str = "abcdefabcdefabcdefabcdefabcdef0123456789";

    #[test]
    fn only_paths_on_this_site_are_followed_after_signing_in() {
        assert_eq!(safe_next(Some("/p/7?x=1")), "/p/7?x=1");
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/account", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/account");
    }

    #[test]
    fn a_form_passes_with_this_browsers_token_from_this_site_only() {
        let cookie = format!("a=b; {CSRF_COOKIE}={TOKEN}; c=d");
        let body = format!("csrf={TOKEN}&email=x%40y.z");
        let ok = post(body.as_bytes(), Some(&cookie));
        assert_eq!(field(&checked_form(&ok).unwrap(), "email"), "x@y.z");

        let status = |r: &AccountRequest<'_>| checked_form(r).err().map(|p| p.status);
        let wrong = format!("csrf={}&email=x", TOKEN.replace('a', "b"));
        assert_eq!(status(&post(wrong.as_bytes(), Some(&cookie))), Some(403));
        assert_eq!(
            status(&post(b"email=x", Some(&cookie))),
            Some(403),
            "no field"
        );
        assert_eq!(status(&post(body.as_bytes(), None)), Some(403), "no cookie");
        for site in ["cross-site", "same-site"] {
            let r = AccountRequest {
                fetch_site: Some(site),
                ..ok
            };
            assert_eq!(status(&r), Some(403), "{site}");
        }
        // Without Sec-Fetch-Site (an older browser), Origin must be this host.
        let r = AccountRequest {
            fetch_site: None,
            origin: Some("https://evil.example"),
            ..ok
        };
        assert_eq!(status(&r), Some(403));
        let r = AccountRequest {
            fetch_site: None,
            ..ok
        };
        assert_eq!(status(&r), None);
        let r = AccountRequest {
            content_type: Some("application/json"),
            ..ok
        };
        assert_eq!(status(&r), Some(415));
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert_eq!(status(&post(&big, Some(&cookie))), Some(413));
    }

    #[test]
    fn session_cookies_are_secure_http_only_and_named_for_their_reach() {
        let r = post(
            b"",
            Some("x__Host-edgeshop-csrf=no; __Host-edgeshop-csrf=yes;other=1"),
        );
        assert_eq!(r.cookie(CSRF_COOKIE), Some("yes"));
        let set = cookie(ACCESS_COOKIE, "t", "/", "Lax", 300);
        assert_eq!(
            set,
            "__Host-edgeshop-access=t; Path=/; Max-Age=300; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
