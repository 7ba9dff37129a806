//! The account API: sign-up, sign-in, refresh, sign-out, `me`, and the
//! public key set.
//!
//! Each step is one statement (`spin:sqlite` has no transactions), ordered
//! so a failure part-way leaves nothing a user can trip over. Writes go to
//! the primary through the PoP's replica, which then reads them back; reads
//! are local. Where a stale replica could let something through, the write
//! itself is conditional, so the primary decides (a refresh token is
//! rotated only if it was not rotated already).

use crate::identity::Identity;
use crate::response::Response;
use crate::settings::Settings;
use crate::throttle;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use edge_sql::{Database, DbError, Row, SqlValue};
use problem::Problem;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokens::{Claims, KeySet, Signer};

/// Largest request body an auth route reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long after a rotation the same refresh token may be presented once
/// more, by a client retrying a refresh whose answer it never got (a
/// broken connection after the rotation committed).
pub const REFRESH_RETRY_GRACE_SECS: i64 = 60;

/// One request, as the component saw it.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Set by the auth middleware after it verified a token.
    pub identity: Option<Identity>,
}

/// What a flow needs from outside: the time, randomness, keys, a log.
pub struct Env<'a> {
    /// Unix seconds.
    pub now: i64,
    pub settings: &'a Settings,
    /// `None` when the signing key is not configured: sign-in is then
    /// unavailable, everything else works.
    pub signer: Option<&'a Signer>,
    pub keys: &'a KeySet,
    pub random: &'a dyn Fn(&mut [u8]),
    pub log: &'a dyn Fn(&str),
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Env<'_> {
    fn token(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        (self.random)(&mut buf);
        B64.encode(buf)
    }
}

/// Why a flow stopped: a problem for the client, or a database failure
/// (logged; the client gets a 503 that says what still works).
enum Fail {
    Problem(Problem),
    Database(DbError),
}

impl From<Problem> for Fail {
    fn from(p: Problem) -> Fail {
        Fail::Problem(p)
    }
}

impl From<DbError> for Fail {
    fn from(e: DbError) -> Fail {
        Fail::Database(e)
    }
}

type Flow = Result<Response, Fail>;

/// Serves one request to `/api/v1/auth/...` or `/.well-known/jwks.json`.
pub async fn handle(
    req: Request<'_>,
    identity_db: &impl Database,
    catalog_db: &impl Database,
    env: &Env<'_>,
) -> Response {
    let head = req.method == "HEAD";
    let mut response = route(req, identity_db, catalog_db, env).await;
    if head {
        // The same headers as GET, without the body.
        response.body.clear();
    }
    response
}

async fn route(
    req: Request<'_>,
    identity_db: &impl Database,
    catalog_db: &impl Database,
    env: &Env<'_>,
) -> Response {
    let result = match (req.path, req.method) {
        ("/.well-known/jwks.json", "GET" | "HEAD") => Ok(jwks(env)),
        ("/api/v1/auth/signup", "POST") => signup(&req, identity_db, catalog_db, env).await,
        ("/api/v1/auth/login", "POST") => login(&req, identity_db, env).await,
        ("/api/v1/auth/refresh", "POST") => refresh(&req, identity_db, env).await,
        ("/api/v1/auth/logout", "POST") => logout(&req, identity_db, env).await,
        ("/api/v1/auth/me", "GET" | "HEAD") => me(&req, identity_db).await,
        ("/.well-known/jwks.json" | "/api/v1/auth/me", _) => {
            Err(Problem::method_not_allowed(req.method, &["GET", "HEAD"]).into())
        }
        (
            "/api/v1/auth/signup"
            | "/api/v1/auth/login"
            | "/api/v1/auth/refresh"
            | "/api/v1/auth/logout",
            _,
        ) => Err(Problem::method_not_allowed(req.method, &["POST"]).into()),
        _ => Err(Problem::not_found(format!(
            "{} is not an auth route; see /api/v1/auth/{{signup,login,refresh,logout,me}}",
            req.path
        ))
        .into()),
    };
    match result {
        Ok(r) => r,
        Err(Fail::Problem(p)) => Response::problem(p),
        Err(Fail::Database(e)) => {
            (env.log)(&format!("auth: identity database: {e}"));
            Response::problem(Problem::unavailable(
                "accounts are unavailable right now (the origin cannot be reached); \
                 browsing still works, try signing in again shortly",
            ))
            .with_header("retry-after", "5")
        }
    }
}

fn jwks(env: &Env<'_>) -> Response {
    // Public and shared; a minute keeps rotation quick for anyone caching.
    Response::json(200, &env.keys.to_jwks())
        .with_header("cache-control", "public, max-age=60")
        .with_header("content-type", "application/jwk-set+json")
}

/// Parses a JSON body of type `T`, with errors a person can act on.
fn body<'de, T: Deserialize<'de>>(req: &'de Request<'_>) -> Result<T, Problem> {
    let json = req
        .content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with `content-type: application/json`",
        ));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(Problem::payload_too_large(MAX_BODY_BYTES as u64));
    }
    serde_json::from_slice(req.body)
        .map_err(|e| Problem::bad_request(format!("the body is not the expected JSON: {e}")))
}

fn invalid(parameter: &str, detail: impl Into<String>) -> Problem {
    Problem::invalid_parameter(parameter, detail)
}

fn email(input: &str) -> Result<String, Problem> {
    passwords::normalize_email(input).map_err(|e| invalid("email", e.to_string()))
}

fn column(row: &Row, i: usize) -> &SqlValue {
    row.get(i).unwrap_or(&SqlValue::Null)
}

fn roles_of(kind: &str, extra: &SqlValue) -> Vec<String> {
    let mut roles = vec![kind.to_string()];
    if let Some(list) = extra.as_str() {
        roles.extend(
            list.split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        );
    }
    roles
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    vendor: Option<VendorBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorBody {
    name: String,
    country: String,
}

async fn signup(
    req: &Request<'_>,
    db: &impl Database,
    catalog: &impl Database,
    env: &Env<'_>,
) -> Flow {
    let b: SignupBody = body(req)?;
    let email = email(&b.email)?;
    passwords::check_policy(&b.password).map_err(|e| invalid("password", e.to_string()))?;
    let kind = b.kind.as_deref().unwrap_or("shopper");
    let vendor = match (kind, &b.vendor) {
        ("shopper", None) => None,
        ("vendor", Some(v)) => Some(vendor_fields(v)?),
        ("shopper", Some(_)) => {
            return Err(invalid("vendor", "only a vendor account has a `vendor`").into());
        }
        ("vendor", None) => {
            return Err(invalid(
                "vendor",
                "a vendor account needs `vendor`: {\"name\": ..., \"country\": \"DE\"}",
            )
            .into());
        }
        _ => return Err(invalid("kind", "kind is `shopper` or `vendor`").into()),
    };
    let signer = signer(env)?;
    let taken = || {
        Problem::new(
            409,
            "email-taken",
            "Email taken",
            "an account with this email already exists; sign in instead \
             (a sign-up that seemed to fail may have created it)",
        )
        .with("parameter", "email")
    };
    let exists = db
        .query(
            "SELECT 1 FROM accounts WHERE email = ?1",
            vec![email.as_str().into()],
        )
        .await?;
    if !exists.is_empty() {
        return Err(taken().into());
    }
    let mut salt = [0u8; passwords::SALT_BYTES];
    (env.random)(&mut salt);
    let hash =
        passwords::hash(&b.password, salt).map_err(|e| invalid("password", e.to_string()))?;

    let vendor_id = match &vendor {
        None => None,
        Some((name, country)) => {
            let mut suffix = [0u8; 3];
            (env.random)(&mut suffix);
            let slug = format!(
                "{}-{}",
                slugify(name),
                suffix
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let rows = catalog
                .query(
                    "INSERT INTO vendors (slug, name, country, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
                    vec![
                        slug.into(),
                        name.as_str().into(),
                        country.as_str().into(),
                        env.now.into(),
                    ],
                )
                .await?;
            let id = rows.first().and_then(|r| column(r, 0).as_i64());
            Some(id.ok_or_else(|| DbError("creating the vendor returned no id".into()))?)
        }
    };
    // The account and its first session in one statement (one round trip
    // from a far PoP): the `accounts_first_session` trigger opens it.
    let sid = env.token(16);
    let expires = env.now + env.settings.session_ttl_secs;
    let refresh = env.token(32);
    let rows = db
        .query(
            "INSERT INTO accounts (email, password_hash, kind, vendor_id, created_at, updated_at, \
               first_session_id, first_session_expires_at, first_refresh_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8) ON CONFLICT (email) DO NOTHING RETURNING id",
            vec![
                email.as_str().into(),
                hash.into(),
                kind.into(),
                vendor_id.into(),
                env.now.into(),
                sid.as_str().into(),
                expires.into(),
                refresh_hash(&refresh).into(),
            ],
        )
        .await;
    let account = match rows {
        Ok(rows) => rows.first().and_then(|r| column(r, 0).as_i64()),
        Err(e) => {
            forget_vendor(catalog, vendor_id, env).await;
            return Err(e.into());
        }
    };
    let Some(account) = account else {
        // Someone signed up with this address since the check above.
        forget_vendor(catalog, vendor_id, env).await;
        return Err(taken().into());
    };
    let mut r = tokens_response(
        account,
        &sid,
        vec![kind.to_string()],
        &refresh,
        expires,
        signer,
        env,
    );
    r.status = 201;
    Ok(r.with_header("location", "/api/v1/auth/me"))
}

/// Removes a vendor row created for a sign-up that did not complete.
async fn forget_vendor(catalog: &impl Database, vendor_id: Option<i64>, env: &Env<'_>) {
    let Some(id) = vendor_id else { return };
    let r = catalog
        .query(
            "DELETE FROM vendors WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM products WHERE vendor_id = ?1)",
            vec![id.into()],
        )
        .await;
    if let Err(e) = r {
        (env.log)(&format!("auth: vendor {id} left without an account: {e}"));
    }
}

fn vendor_fields(v: &VendorBody) -> Result<(String, String), Problem> {
    let name = v.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "vendor.name",
            "the vendor name is 1 to 100 characters, without control characters",
        ));
    }
    let country = v.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "vendor.country",
            "the country is a two-letter ISO 3166-1 code, such as DE",
        ));
    }
    if slugify(name).is_empty() {
        return Err(invalid(
            "vendor.name",
            "the vendor name needs at least one letter or digit",
        ));
    }
    Ok((name.to_string(), country))
}

/// Lower-case ASCII letters and digits, other runs turned into one `-`.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 48 {
            break;
        }
    }
    slug.trim_end_matches('-').to_string()
}

fn signer<'a>(env: &Env<'a>) -> Result<&'a Signer, Problem> {
    env.signer.ok_or_else(|| {
        Problem::unavailable(
            "signing in is not configured at this PoP (no token_signing_key); \
             the operator must set it",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

fn wrong_credentials() -> Problem {
    Problem::new(
        401,
        "invalid-credentials",
        "Invalid credentials",
        "the email or password is wrong",
    )
}

async fn login(req: &Request<'_>, db: &impl Database, env: &Env<'_>) -> Flow {
    let b: LoginBody = body(req)?;
    let email = email(&b.email)?;
    if b.password.len() > passwords::MAX_PASSWORD_BYTES {
        return Err(invalid("password", "the password is longer than 256 bytes").into());
    }
    let signer = signer(env)?;
    let key = throttle::email_key(&email);
    // A lock this PoP's replica already has is refused without a round trip.
    let known = db
        .query(throttle::LOCKED_SQL, vec![key.clone().into()])
        .await?;
    if let Some(wait) = known
        .first()
        .and_then(|r| column(r, 0).as_i64())
        .and_then(|until| throttle::retry_after(until, env.now))
    {
        return Err(too_many(wait).into());
    }
    let rows = db
        .query(
            "SELECT a.id, a.password_hash, a.kind, \
               (SELECT group_concat(role) FROM account_roles r WHERE r.account_id = a.id) \
             FROM accounts a WHERE a.email = ?1",
            vec![email.as_str().into()],
        )
        .await?;
    // Unknown addresses cost the same hash as known ones.
    let account = rows.first().and_then(|row| {
        Some((
            column(row, 0).as_i64()?,
            column(row, 1).as_str()?.to_string(),
            column(row, 2).as_str()?.to_string(),
            column(row, 3).clone(),
        ))
    });
    let ok = match &account {
        Some((_, phc, _, _)) => passwords::verify(&b.password, phc).unwrap_or(false),
        None => passwords::verify_nobody(&b.password),
    };
    // The outcome is settled at the primary in one statement, and told
    // only if the address was not locked there: a failure is counted
    // (and may set the lock), a success opens the session.
    let Some((id, phc, kind, extra)) = account.filter(|_| ok) else {
        let counted = db
            .query(
                &throttle::count_failure_sql(),
                vec![key.clone().into(), env.now.into()],
            )
            .await?;
        if counted.is_empty() {
            // Locked at the primary by an attempt not replicated here yet.
            return Err(too_many(throttle::UNKNOWN_LOCK_WAIT_SECS).into());
        }
        return Err(wrong_credentials().into());
    };
    let roles = roles_of(&kind, &extra);
    let sid = env.token(16);
    let expires = env.now + env.settings.session_ttl_secs;
    let refresh = env.token(32);
    let opened = db
        .query(
            throttle::open_session_sql(),
            vec![
                sid.as_str().into(),
                id.into(),
                env.now.into(),
                expires.into(),
                refresh_hash(&refresh).into(),
                key.into(),
            ],
        )
        .await?;
    if opened.is_empty() {
        return Err(too_many(throttle::UNKNOWN_LOCK_WAIT_SECS).into());
    }
    // An old hash is upgraded only once the sign-in is known to stand.
    if passwords::needs_rehash(&phc) {
        let mut salt = [0u8; passwords::SALT_BYTES];
        (env.random)(&mut salt);
        if let Ok(new) = passwords::hash(&b.password, salt) {
            db.query(
                "UPDATE accounts SET password_hash = ?1, updated_at = ?2 WHERE id = ?3",
                vec![new.into(), env.now.into(), id.into()],
            )
            .await?;
        }
    }
    Ok(tokens_response(
        id, &sid, roles, &refresh, expires, signer, env,
    ))
}

fn too_many(wait: i64) -> Problem {
    Problem::new(
        429,
        "too-many-attempts",
        "Too many attempts",
        format!("too many failed sign-ins for this email; try again in {wait} s"),
    )
    .with("retry_after", wait)
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn tokens_response(
    account: i64,
    sid: &str,
    roles: Vec<String>,
    refresh: &str,
    session_expires: i64,
    signer: &Signer,
    env: &Env<'_>,
) -> Response {
    let ttl = env.settings.access_ttl_secs;
    let claims = Claims {
        iss: env.settings.issuer.clone(),
        aud: env.settings.audience.clone(),
        sub: account.to_string(),
        iat: env.now,
        exp: env.now + ttl,
        nbf: None,
        jti: env.token(16),
        sid: sid.to_string(),
        roles: roles.clone(),
    };
    Response::json(
        200,
        &serde_json::json!({
            "token_type": "Bearer",
            "access_token": tokens::sign(signer, &claims),
            "expires_in": ttl,
            "refresh_token": refresh,
            "refresh_token_expires_in": session_expires - env.now,
            "account_id": account,
            "roles": roles,
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

fn bad_refresh(detail: &str) -> Problem {
    Problem::new(
        401,
        "invalid-refresh-token",
        "Invalid refresh token",
        detail,
    )
}

async fn refresh(req: &Request<'_>, db: &impl Database, env: &Env<'_>) -> Flow {
    let b: RefreshBody = body(req)?;
    if b.refresh_token.is_empty() || b.refresh_token.len() > 128 {
        return Err(bad_refresh("the refresh token is not one we issued; sign in again").into());
    }
    let signer = signer(env)?;
    let hash = refresh_hash(&b.refresh_token);
    let next = env.token(32);
    // One statement, and the primary decides: the new token is inserted
    // only while the presented one is unrotated and its session live, and
    // the `refresh_tokens_rotate` trigger marks the old one rotated. Of
    // two rotations of one token, however stale this PoP's replica, only
    // the first inserts anything.
    //
    // A retry of a refresh whose answer was lost presents a token rotated
    // moments ago whose child was never used. Within the grace the child
    // is rotated instead (the client never got it), so the retry succeeds
    // once. A second use of the same token, any use after the child moved
    // on, and a retry of a token that was itself made by a retry are
    // reuses and end the session.
    let rotated = db
        .query(
            "INSERT INTO refresh_tokens \
               (token_hash, session_id, issued_at, expires_at, parent_hash, by_retry) \
             SELECT ?1, rt.session_id, ?3, rt.expires_at, rt.token_hash, rt.token_hash <> ?2 \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             WHERE rt.rotated_at IS NULL AND rt.expires_at > ?3 AND s.revoked_at IS NULL \
               AND (rt.token_hash = ?2 \
                    OR (rt.parent_hash = ?2 AND rt.by_retry = 0 \
                        AND EXISTS (SELECT 1 FROM refresh_tokens p \
                          WHERE p.token_hash = ?2 AND p.rotated_at >= ?3 - ?4))) \
             RETURNING session_id",
            vec![
                refresh_hash(&next).into(),
                hash.clone().into(),
                env.now.into(),
                REFRESH_RETRY_GRACE_SECS.into(),
            ],
        )
        .await?;
    let Some(sid) = rotated
        .first()
        .and_then(|r| column(r, 0).as_str().map(str::to_string))
    else {
        return Err(refused_refresh(db, hash, env).await);
    };
    let rows = db
        .query(
            "SELECT s.account_id, s.expires_at, s.revoked_at, a.kind, \
               (SELECT group_concat(role) FROM account_roles r WHERE r.account_id = a.id) \
             FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id = ?1",
            vec![sid.as_str().into()],
        )
        .await?;
    let session = rows.first().and_then(|row| {
        Some((
            column(row, 0).as_i64()?,
            column(row, 1).as_i64()?,
            column(row, 2).clone(),
            column(row, 3).as_str()?.to_string(),
            column(row, 4).clone(),
        ))
    });
    let Some((account, expires, revoked, kind, extra)) = session else {
        return Err(bad_refresh("the session no longer exists; sign in again").into());
    };
    if revoked != SqlValue::Null || expires <= env.now {
        return Err(bad_refresh("the session has ended; sign in again").into());
    }
    Ok(tokens_response(
        account,
        &sid,
        roles_of(&kind, &extra),
        &next,
        expires,
        signer,
        env,
    ))
}

/// Says why a refresh token could not be rotated; a token rotated before
/// means it was copied, so its whole session ends.
async fn refused_refresh(db: &impl Database, hash: Vec<u8>, env: &Env<'_>) -> Fail {
    let rows = match db
        .query(
            "SELECT rt.session_id, rt.rotated_at, s.revoked_at \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             WHERE rt.token_hash = ?1",
            vec![hash.into()],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return e.into(),
    };
    let Some(row) = rows.first() else {
        return bad_refresh("the refresh token is not one we issued; sign in again").into();
    };
    if column(row, 1) == &SqlValue::Null {
        return if column(row, 2) == &SqlValue::Null {
            bad_refresh("the refresh token has expired; sign in again").into()
        } else {
            bad_refresh("the session has ended; sign in again").into()
        };
    }
    let sid = column(row, 0).as_str().unwrap_or_default().to_string();
    let revoke = db
        .query(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'refresh_reuse' \
             WHERE id = ?1 AND revoked_at IS NULL",
            vec![sid.as_str().into(), env.now.into()],
        )
        .await;
    if let Err(e) = revoke {
        return e.into();
    }
    (env.log)(&format!(
        "auth: a rotated refresh token was presented again; session {sid} revoked"
    ));
    bad_refresh(
        "this refresh token was already used, so it may have been copied; \
         the session has been ended everywhere, sign in again",
    )
    .into()
}

fn signed_in<'r>(req: &'r Request) -> Result<&'r Identity, Problem> {
    req.identity.as_ref().ok_or_else(|| {
        Problem::new(
            401,
            "unauthorized",
            "Unauthorized",
            "this route needs a signed-in account; send `Authorization: Bearer <access token>`",
        )
    })
}

async fn logout(req: &Request<'_>, db: &impl Database, env: &Env<'_>) -> Flow {
    let who = signed_in(req)?;
    db.query(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'logout' \
         WHERE id = ?1 AND revoked_at IS NULL",
        vec![who.session.as_str().into(), env.now.into()],
    )
    .await?;
    Ok(Response::no_content())
}

async fn me(req: &Request<'_>, db: &impl Database) -> Flow {
    let who = signed_in(req)?;
    let rows = db
        .query(
            "SELECT a.id, a.email, a.kind, a.vendor_id, a.created_at, \
               (SELECT group_concat(role) FROM account_roles r WHERE r.account_id = a.id) \
             FROM accounts a WHERE a.id = ?1",
            vec![who.account.into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        // Accounts are never deleted through the API: the token was issued
        // at another PoP moments ago and this replica has not caught up.
        return Err(Problem::unavailable(
            "this PoP has not received the account yet (it was created moments ago); \
             retry in a second",
        )
        .with("retry_after", 1)
        .into());
    };
    let kind = column(row, 2).as_str().unwrap_or_default();
    Ok(Response::json(
        200,
        &serde_json::json!({
            "id": column(row, 0).as_i64(),
            "email": column(row, 1).as_str(),
            "kind": kind,
            "vendor_id": column(row, 3).as_i64(),
            "created_at": column(row, 4).as_i64(),
            "roles": roles_of(kind, column(row, 5)),
            "session": { "id": who.session, "token_expires_at": who.expires },
        }),
    ))
}

#[cfg(test)]
mod tests;
