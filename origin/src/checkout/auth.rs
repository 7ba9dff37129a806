//! Who is calling an origin API (checkout, orders, the vendor API): the
//! origin verifies the access token itself (keys from the same variables
//! file the PoPs read) and checks the session against the identity
//! primary. It trusts nothing a PoP says.

use problem::Problem;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokens::{KeySet, Policy};

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub account: i64,
    pub session: String,
    pub roles: Vec<String>,
}

/// Verifies bearer tokens with keys re-read when the variables file
/// changes (a key rotation reaches the origin like it reaches PoPs).
pub struct Verifier {
    path: Option<PathBuf>,
    loaded: Mutex<Option<(SystemTime, Arc<Keys>)>>,
}

/// The keys and the claims they must carry.
type Keys = (KeySet, Policy);

#[derive(serde::Deserialize)]
struct Vars {
    token_jwks: Option<String>,
    token_issuer: Option<String>,
    token_audience: Option<String>,
    token_leeway_secs: Option<String>,
}

impl Verifier {
    pub fn new(path: Option<PathBuf>) -> Verifier {
        Verifier {
            path,
            loaded: Mutex::new(None),
        }
    }

    fn keys(&self) -> Result<Arc<Keys>, Problem> {
        let unavailable = |why: String| {
            tracing::error!("checkout cannot verify tokens: {why}");
            Problem::unavailable("checkout cannot verify sign-ins right now; try again shortly")
        };
        let Some(path) = &self.path else {
            return Err(unavailable(
                "the origin was started without --variables-file".into(),
            ));
        };
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let mut loaded = self.loaded.lock().expect("verifier lock");
        if let Some((at, keys)) = &*loaded
            && *at == modified
        {
            return Ok(keys.clone());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let vars: Vars =
            toml::from_str(&text).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let jwks = vars
            .token_jwks
            .ok_or_else(|| unavailable(format!("{} has no token_jwks", path.display())))?;
        let keys = KeySet::from_jwks(&jwks).map_err(|e| unavailable(e.to_string()))?;
        let policy = Policy {
            issuer: vars.token_issuer.unwrap_or_else(|| "edgeshop".into()),
            audience: vars.token_audience.unwrap_or_else(|| "edgeshop-api".into()),
            leeway_secs: vars
                .token_leeway_secs
                .and_then(|s| s.parse().ok())
                .unwrap_or(30)
                .clamp(0, tokens::MAX_LEEWAY_SECS),
        };
        let keys = Arc::new((keys, policy));
        *loaded = Some((modified, keys.clone()));
        Ok(keys)
    }

    /// The caller of a request with this `Authorization` header value.
    pub fn verify(&self, authorization: Option<&str>, now: i64) -> Result<Shopper, Problem> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Problem::new(
                    401,
                    "unauthenticated",
                    "Sign-in required",
                    "sign in and send your access token as `Authorization: Bearer <token>`",
                )
            })?;
        let keys = self.keys()?;
        let claims = tokens::verify(token.trim(), &keys.0, &keys.1, now)
            .map_err(|e| Problem::new(401, "invalid-token", "Invalid token", e.to_string()))?;
        let account = claims.sub.parse::<i64>().map_err(|_| {
            Problem::new(
                401,
                "invalid-token",
                "Invalid token",
                "the token does not name an account",
            )
        })?;
        Ok(Shopper {
            account,
            session: claims.sid,
            roles: claims.roles,
        })
    }
}

/// Whether `who`'s session is live at the identity primary: a signature
/// proves only who signed (the same rule a PoP's gate applies to its
/// replica).
pub async fn session_is_live(
    identity: &libsql::Connection,
    who: &Shopper,
    now_secs: i64,
) -> Result<bool, libsql::Error> {
    let mut rows = identity
        .query(
            auth_core::gate::LIVE_SESSION,
            libsql::params![who.session.clone(), who.account, now_secs],
        )
        .await?;
    Ok(match rows.next().await? {
        Some(row) => row.get::<i64>(0)? == 1,
        None => false,
    })
}

/// The 401 for a token whose session has ended.
pub fn session_ended() -> Problem {
    Problem::new(
        401,
        "invalid-token",
        "Invalid token",
        auth_core::gate::SESSION_ENDED,
    )
}
