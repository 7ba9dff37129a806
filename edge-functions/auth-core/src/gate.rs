//! The middleware's decision for one request: who is calling (a verified
//! bearer token, or nobody) and whether the route lets them in.
//!
//! A token that is present but bad, expired or revoked is always a 401,
//! whatever the route needs: a client with a broken token must learn so,
//! not be served as anonymous.

use crate::identity::Identity;
use crate::response::Response;
use crate::rules::Requirement;
use edge_sql::{Database, DbError};
use problem::Problem;
use tokens::{KeySet, Policy, TokenError};

/// The realm in every challenge.
pub const REALM: &str = "edgeshop";

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    /// The RFC 6750 error code (`invalid_request`, `invalid_token`,
    /// `insufficient_scope`), absent when no credentials were sent.
    pub error: Option<&'static str>,
    pub detail: String,
}

impl Denied {
    fn invalid_token(detail: impl Into<String>) -> Denied {
        Denied {
            status: 401,
            error: Some("invalid_token"),
            detail: detail.into(),
        }
    }

    /// The problem response, with a `WWW-Authenticate` challenge.
    pub fn response(&self) -> Response {
        let (kind, title) = match self.status {
            401 => ("unauthorized", "Unauthorized"),
            403 => ("forbidden", "Forbidden"),
            _ => ("bad-request", "Bad request"),
        };
        let mut challenge = format!("Bearer realm=\"{REALM}\"");
        if let Some(error) = self.error {
            // The description is our own text; keep it a quoted-string.
            let description: String = self
                .detail
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect();
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
        }
        Response::problem(Problem::new(self.status, kind, title, self.detail.clone()))
            .with_header("www-authenticate", challenge)
    }
}

/// Reads and verifies the bearer token in `authorization`, if any.
/// The session is checked separately ([`check_session`]), since it needs
/// the database.
pub fn authenticate(
    authorization: Option<&str>,
    keys: &KeySet,
    policy: &Policy,
    now: i64,
) -> Result<Option<Identity>, Denied> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let token = match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(Denied {
                status: 401,
                error: Some("invalid_request"),
                detail: "the Authorization header must be `Bearer <access token>`".into(),
            });
        }
    };
    let claims = tokens::verify(token, keys, policy, now).map_err(|e| {
        Denied::invalid_token(match e {
            TokenError::Expired => {
                "the access token has expired; get a new one from POST /api/v1/auth/refresh"
                    .to_string()
            }
            other => format!("{other}; sign in again"),
        })
    })?;
    Identity::from_claims(&claims)
        .map(Some)
        .ok_or_else(|| Denied::invalid_token("the token does not name an account; sign in again"))
}

/// Tokens this instance has verified, so a client's repeated token costs a
/// map lookup instead of a signature check. Only successes are kept, each
/// until its `exp` (plus leeway); the session is still checked on every
/// request. The owner must [`VerifiedCache::clear`] it when the key set or
/// policy changes, so a retired key's tokens stop at once.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: std::collections::HashMap<String, Identity>,
}

impl VerifiedCache {
    /// Most tokens kept; past this, expired ones go, then everything.
    pub const CAPACITY: usize = 512;

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// [`authenticate`], remembering successes in `cache`.
pub fn authenticate_cached(
    authorization: Option<&str>,
    keys: &KeySet,
    policy: &Policy,
    now: i64,
    cache: &mut VerifiedCache,
) -> Result<Option<Identity>, Denied> {
    let leeway = policy.leeway_secs.clamp(0, tokens::MAX_LEEWAY_SECS);
    if let Some(value) = authorization
        && let Some(who) = cache.entries.get(value)
    {
        if now <= who.expires.saturating_add(leeway) {
            return Ok(Some(who.clone()));
        }
        cache.entries.remove(value);
    }
    let who = authenticate(authorization, keys, policy, now)?;
    if let (Some(value), Some(who)) = (authorization, &who) {
        if cache.entries.len() >= VerifiedCache::CAPACITY {
            cache
                .entries
                .retain(|_, w| now <= w.expires.saturating_add(leeway));
        }
        if cache.entries.len() >= VerifiedCache::CAPACITY {
            cache.entries.clear();
        }
        cache.entries.insert(value.to_string(), who.clone());
    }
    Ok(who)
}

/// A [`VerifiedCache`] that empties itself when the key set or the policy
/// it verifies under changes, so a retired key's tokens stop at once: what
/// an instance keeps between requests.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: Option<std::rc::Rc<KeySet>>,
    policy: String,
    cache: VerifiedCache,
}

impl Verifier {
    /// [`authenticate_cached`] under `keys` and `policy`; a key set other
    /// than the last one (a new `Rc`: the owner parses one per change of
    /// its text) or another policy starts the cache afresh.
    pub fn authenticate(
        &mut self,
        authorization: Option<&str>,
        keys: &std::rc::Rc<KeySet>,
        policy: &Policy,
        now: i64,
    ) -> Result<Option<Identity>, Denied> {
        let stamp = format!("{policy:?}");
        let same_keys = self
            .keys
            .as_ref()
            .is_some_and(|k| std::rc::Rc::ptr_eq(k, keys));
        if !same_keys || self.policy != stamp {
            self.cache.clear();
            self.keys = Some(keys.clone());
            self.policy = stamp;
        }
        authenticate_cached(authorization, keys, policy, now, &mut self.cache)
    }
}

/// The answer when a token's session cannot be checked (the database did
/// not answer): the request must not pass, and a retry soon may.
pub fn session_unavailable() -> Response {
    Response::problem(Problem::unavailable(
        "the session could not be checked; try again shortly",
    ))
    .with_header("retry-after", "1")
}

/// The statement that decides whether a token's session is live: no row
/// when the session is unknown (never issued, another account's, or not
/// replicated here yet), else 1 when it is unrevoked and before its end,
/// 0 when not. Parameters: session id, account id, now (Unix seconds).
/// The PoP asks its identity replica, the origin its primary.
pub const LIVE_SESSION: &str = "SELECT revoked_at IS NULL AND expires_at > ?3 \
     FROM sessions WHERE id = ?1 AND account_id = ?2";

/// What a client is told when its token names no live session.
pub const SESSION_ENDED: &str =
    "the token's session is not live (signed out, revoked, expired or never issued); sign in again";

/// How long a PoP waits, in steps, for an unknown session to arrive with
/// replication before refusing the token (milliseconds, 2 s in all). A
/// token signed at another PoP a moment ago names a session this replica
/// may not have yet; only a correctly signed token gets this far.
pub const SESSION_ARRIVAL_WAITS_MS: [u64; 6] = [50, 100, 200, 400, 600, 650];

/// Accepts `who` only if its session is live in the local replica
/// ([`LIVE_SESSION`]). A signature proves only who signed: a token minted
/// with a leaked key for an invented `sid` stops here, and so does one
/// whose session was revoked or has ended. An unknown session is looked
/// up again after each of [`SESSION_ARRIVAL_WAITS_MS`] (`sleep` waits that
/// many milliseconds) before the token is refused.
pub async fn check_session<F, Fut>(
    db: &impl Database,
    who: &Identity,
    now: i64,
    sleep: F,
) -> Result<(), GateError>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut waits = SESSION_ARRIVAL_WAITS_MS.iter();
    loop {
        let rows = db
            .query(
                LIVE_SESSION,
                vec![who.session.as_str().into(), who.account.into(), now.into()],
            )
            .await
            .map_err(GateError::Database)?;
        match rows.first().and_then(|r| r.first()) {
            Some(edge_sql::SqlValue::Integer(1)) => return Ok(()),
            None => match waits.next() {
                Some(&ms) => sleep(ms).await,
                None => break,
            },
            Some(_) => break,
        }
    }
    Err(GateError::Denied(Denied::invalid_token(SESSION_ENDED)))
}

#[derive(Debug)]
pub enum GateError {
    Denied(Denied),
    /// The session could not be read; the request must not pass.
    Database(DbError),
}

/// Whether `who` may use a route that needs `need`.
pub fn authorize(need: &Requirement, who: Option<&Identity>) -> Result<(), Denied> {
    match (need, who) {
        (Requirement::Anyone, _) => Ok(()),
        (_, None) => Err(Denied {
            status: 401,
            error: None,
            detail:
                "this route needs a signed-in account; send `Authorization: Bearer <access token>`"
                    .into(),
        }),
        (Requirement::SignedIn, Some(_)) => Ok(()),
        (Requirement::Role(roles), Some(who)) => {
            if roles.iter().any(|r| who.has_role(r)) {
                Ok(())
            } else {
                Err(Denied {
                    status: 403,
                    error: Some("insufficient_scope"),
                    detail: format!(
                        "this route needs the {} role, which this account does not have",
                        roles.join(" or ")
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tokens::Signer, KeySet, Policy) {
        let signer = tokens::Signer::from_seed("k1", [7; 32]);
        let keys =
            KeySet::from_jwks(&serde_json::json!({ "keys": [signer.public_jwk()] }).to_string())
                .unwrap();
        let policy = Policy {
            issuer: "edgeshop".into(),
            audience: "edgeshop-api".into(),
            leeway_secs: 30,
        };
        (signer, keys, policy)
    }

    fn claims(sub: &str) -> tokens::Claims {
        tokens::Claims {
            iss: "edgeshop".into(),
            aud: "edgeshop-api".into(),
            sub: sub.into(),
            iat: 1000,
            exp: 1300,
            nbf: None,
            jti: "j".into(),
            sid: "session-abc".into(),
            roles: vec!["shopper".into()],
        }
    }

    #[test]
    fn no_header_is_anonymous_but_a_bad_one_never_is() {
        let (signer, keys, policy) = setup();
        assert_eq!(authenticate(None, &keys, &policy, 1100), Ok(None));
        let token = tokens::sign(&signer, &claims("42"));
        let who = authenticate(Some(&format!("Bearer {token}")), &keys, &policy, 1100)
            .unwrap()
            .unwrap();
        assert_eq!(who.account, 42);
        assert_eq!(who.session, "session-abc");
        for bad in [
            "Basic dXNlcjpwYXNz".to_string(),
            "Bearer".to_string(),
            "Bearer nope".to_string(),
            format!("Bearer {token}x"),
        ] {
            let d = authenticate(Some(&bad), &keys, &policy, 1100).unwrap_err();
            assert_eq!(d.status, 401, "{bad}");
            let r = d.response();
            assert!(
                r.header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer realm=")
            );
        }
        let expired = authenticate(Some(&format!("Bearer {token}")), &keys, &policy, 1400);
        assert!(expired.unwrap_err().detail.contains("refresh"));
        // Signed by us but not naming an account.
        let odd = tokens::sign(&signer, &claims("admin"));
        assert!(authenticate(Some(&format!("Bearer {odd}")), &keys, &policy, 1100).is_err());
    }

    #[test]
    fn the_cache_answers_like_verification_and_forgets_at_expiry() {
        let (signer, keys, policy) = setup();
        let header = format!("Bearer {}", tokens::sign(&signer, &claims("42")));
        let mut cache = VerifiedCache::default();
        let first = authenticate_cached(Some(&header), &keys, &policy, 1100, &mut cache);
        assert_eq!(cache.len(), 1);
        // Verified from the cache even against an empty key set...
        let empty = KeySet::default();
        let again = authenticate_cached(Some(&header), &empty, &policy, 1100, &mut cache);
        assert_eq!(first, again);
        // ...but not past exp + leeway, and failures are never kept.
        assert!(authenticate_cached(Some(&header), &empty, &policy, 1331, &mut cache).is_err());
        assert!(cache.is_empty());
        let bad = format!("{header}x");
        assert!(authenticate_cached(Some(&bad), &keys, &policy, 1100, &mut cache).is_err());
        assert!(cache.is_empty());
        // Bounded.
        for i in 0..(VerifiedCache::CAPACITY + 10) {
            let t = format!(
                "Bearer {}",
                tokens::sign(&signer, &claims(&(i + 1).to_string()))
            );
            authenticate_cached(Some(&t), &keys, &policy, 1100, &mut cache).unwrap();
            assert!(cache.len() <= VerifiedCache::CAPACITY);
        }
    }

    #[test]
    fn a_verifier_forgets_what_it_verified_when_the_key_set_changes() {
        let (signer, keys, policy) = setup();
        let header = format!("Bearer {}", tokens::sign(&signer, &claims("42")));
        let mut verifier = Verifier::default();
        let keys = std::rc::Rc::new(keys);
        assert!(
            verifier
                .authenticate(Some(&header), &keys, &policy, 1100)
                .is_ok()
        );
        // The same key set: answered from the cache.
        assert!(
            verifier
                .authenticate(Some(&header), &keys, &policy, 1100)
                .is_ok()
        );
        // The key retired (a new set without it): refused at once.
        let retired = std::rc::Rc::new(KeySet::default());
        assert!(
            verifier
                .authenticate(Some(&header), &retired, &policy, 1100)
                .is_err()
        );
    }

    #[test]
    fn roles_decide_between_401_and_403() {
        let shopper = Identity {
            account: 1,
            session: "s".into(),
            roles: vec!["shopper".into()],
            expires: 0,
        };
        let vendor_only = Requirement::Role(vec!["vendor".into()]);
        assert_eq!(authorize(&vendor_only, None).unwrap_err().status, 401);
        let d = authorize(&vendor_only, Some(&shopper)).unwrap_err();
        assert_eq!(d.status, 403);
        assert!(
            d.response()
                .header("www-authenticate")
                .unwrap()
                .contains("insufficient_scope")
        );
        assert!(authorize(&Requirement::SignedIn, Some(&shopper)).is_ok());
        assert!(authorize(&Requirement::Anyone, None).is_ok());
        assert!(authorize(&Requirement::Role(vec!["shopper".into()]), Some(&shopper)).is_ok());
    }
}
