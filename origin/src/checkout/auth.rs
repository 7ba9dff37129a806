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
/// A token verified once is remembered until it expires or the keys
/// change: a shopper's requests carry the same token for minutes, and
/// each signature check costs more than the rest of reading a request.
pub struct Verifier {
    path: Option<PathBuf>,
    loaded: Mutex<Option<(SystemTime, Arc<Keys>)>>,
    verified: Mutex<Verified>,
}

/// Tokens verified with `keys`, and their claims.
#[derive(Default)]
struct Verified {
    keys: Option<Arc<Keys>>,
    tokens: std::collections::HashMap<String, tokens::Claims>,
}

/// Tokens remembered at most; past it the memory starts over.
const MAX_VERIFIED: usize = 4096;

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
            verified: Mutex::new(Verified::default()),
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
        let token = token.trim();
        let keys = self.keys()?;
        let claims = match self.remembered(token, &keys, now) {
            Some(claims) => claims,
            None => {
                let claims = tokens::verify(token, &keys.0, &keys.1, now).map_err(|e| {
                    Problem::new(401, "invalid-token", "Invalid token", e.to_string())
                })?;
                self.remember(token, &keys, &claims);
                claims
            }
        };
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

impl Verifier {
    /// The claims of `token` if it was verified with these `keys` and
    /// has not expired since (its other time checks only pass with time).
    fn remembered(&self, token: &str, keys: &Arc<Keys>, now: i64) -> Option<tokens::Claims> {
        let verified = self.verified.lock().expect("verified lock");
        if !verified.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            return None;
        }
        let claims = verified.tokens.get(token)?;
        let leeway = keys.1.leeway_secs.clamp(0, tokens::MAX_LEEWAY_SECS);
        (now <= claims.exp.saturating_add(leeway)).then(|| claims.clone())
    }

    fn remember(&self, token: &str, keys: &Arc<Keys>, claims: &tokens::Claims) {
        let mut verified = self.verified.lock().expect("verified lock");
        if !verified.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys))
            || verified.tokens.len() >= MAX_VERIFIED
        {
            verified.tokens.clear();
            verified.keys = Some(keys.clone());
        }
        verified.tokens.insert(token.to_string(), claims.clone());
    }
}

/// Whether `who`'s session is live at the identity primary: a signature
/// proves only who signed (the same rule a PoP's gate applies to its
/// replica).
pub async fn session_is_live(
    identity: &impl db_writer::Sql,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(signer: &tokens::Signer, exp: i64) -> String {
        tokens::sign(
            signer,
            &tokens::Claims {
                iss: "edgeshop".into(),
                aud: "edgeshop-api".into(),
                sub: "42".into(),
                iat: 1_000,
                exp,
                nbf: None,
                jti: "j".into(),
                sid: "s".into(),
                roles: vec!["shopper".into()],
            },
        )
    }

    fn publish(path: &std::path::Path, signer: &tokens::Signer, modified_secs: u64) {
        let jwks = serde_json::json!({ "keys": [signer.public_jwk()] }).to_string();
        std::fs::write(path, format!("token_jwks = '''{jwks}'''\n")).unwrap();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn a_remembered_token_still_expires_and_is_forgotten_when_the_keys_change() {
        let dir = std::env::temp_dir().join(format!("verifier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vars = dir.join("variables.toml");
        let (old, new) = (
            tokens::Signer::from_seed("k1", [1; 32]),
            tokens::Signer::from_seed("k2", [2; 32]),
        );
        publish(&vars, &old, 1_000_000);
        let v = Verifier::new(Some(vars.clone()));
        let t = format!("Bearer {}", token(&old, 2_000));
        assert_eq!(v.verify(Some(&t), 1_500).unwrap().account, 42);
        assert_eq!(v.verify(Some(&t), 1_600).unwrap().account, 42, "remembered");
        let expired = v.verify(Some(&t), 2_000 + 31).unwrap_err();
        assert_eq!(expired.status, 401);
        // A rotation away from the key that signed it: no longer valid,
        // however recently it was verified.
        publish(&vars, &new, 1_000_100);
        assert!(v.verify(Some(&t), 1_500).is_err());
        let fresh = format!("Bearer {}", token(&new, 2_000));
        assert!(v.verify(Some(&fresh), 1_500).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
